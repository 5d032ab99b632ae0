"""Would routing by image pay? Per-image gradients of the training loss on CSG's state matrix W.

    python projects/routing/routing_incentive.py runs/v4/dsic_gatelr01_seed0 --probe runs/v4/data/synth_scenes \
        --images 50 --out benchmarks/results/v4/incentive/dsic_gatelr01_seed0.json

Loads ``<run>/config.yaml`` and ``<run>/final.pth`` and prints (and with ``--out`` writes) the JSON
of :func:`routing.incentive.routing_incentive`: per probe group the mean dL/dW[i, k], the largest
small-vs-large difference with its effect size, and the entries where the two groups pull W in
opposite directions (an incentive to route by image that a static W cannot follow).
"""

from __future__ import annotations

import sys

from probe_analysis import main

from routing.incentive import routing_incentive

if __name__ == "__main__":
    sys.exit(main(__doc__.splitlines()[0], lambda model, cfg, probe, images: routing_incentive(model, probe, cfg["model"].get("classes"), images), 30))
