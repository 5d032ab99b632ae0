"""Did the control units' hidden units die by their own weights or by their inputs?

    python projects/routing/unit_drift.py runs/v7/dsic_gatelr01_seed0 --probe runs/v7/data/synth_scenes_6400 \
        --out benchmarks/results/v7/unit_drift/dsic_gatelr01_seed0.json

Loads ``<run>/config.yaml`` and ``<run>/final.pth``, rebuilds the run's initial model (its seed, then
the builder, as training does) and puts initial and trained weights on initial and trained
descriptors. It prints (and with ``--out`` writes) the JSON of
:func:`routing.unit_drift.unit_drift` over the small-, large- and mixed-object probe images.
"""

from __future__ import annotations

import sys

from probe_analysis import main

from dsic.analysis.probe import GROUP_NAMES, probe_images
from dsic.engine.checkpoint import seed_everything
from dsic.inference import read_image
from routing.models import build_model
from routing.unit_drift import unit_drift


def analyse(model, cfg, probe, images):
    seed_everything(cfg["train"]["seed"])
    initial = build_model(cfg)
    paths = probe_images(probe, images)
    return unit_drift(model, initial, [read_image(p) for g in GROUP_NAMES for p in paths[g]])


if __name__ == "__main__":
    sys.exit(main(__doc__.splitlines()[0], analyse, 20))
