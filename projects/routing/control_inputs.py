"""Do CSG's control units see the image's scale? Their descriptors and hidden units per probe group.

    python projects/routing/control_inputs.py runs/v4/dsic_gatelr01_seed0 --probe runs/v4/data/synth_scenes \
        --out benchmarks/results/v4/control_inputs/dsic_gatelr01_seed0.json

Loads ``<run>/config.yaml`` and ``<run>/final.pth`` and prints (and with ``--out`` writes) the JSON
of :func:`routing.control_inputs.control_inputs`: per output level, how well the control
unit's descriptor and hidden layer tell small-object from large-object images.
"""

from __future__ import annotations

import sys

from probe_analysis import main

from routing.control_inputs import control_inputs

if __name__ == "__main__":
    sys.exit(main(__doc__.splitlines()[0], lambda model, cfg, probe, images: control_inputs(model, probe, images), 50))
