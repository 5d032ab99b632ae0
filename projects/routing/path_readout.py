"""Where W's routing comes from: CSG's path logits or its channel logits, per probe group.

    python projects/routing/path_readout.py runs/v5/dsic_path_gatelr01_seed0 --probe runs/v4/data/synth_scenes \
        --out benchmarks/results/v5/path_readout/dsic_path_gatelr01_seed0.json

Loads ``<run>/config.yaml`` and ``<run>/final.pth`` and prints (and with ``--out`` writes) the JSON
of :func:`routing.path_readout.path_readout`: per entry of W, the small-vs-large difference
routed by the path logits alone and by the channel logits alone, and how much W a path logit buys.
"""

from __future__ import annotations

import sys

from probe_analysis import main

from routing.path_readout import path_readout

if __name__ == "__main__":
    sys.exit(main(__doc__.splitlines()[0], lambda model, cfg, probe, images: path_readout(model, probe, images), 50))
