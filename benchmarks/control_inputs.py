"""Do CSG's control units see the image's scale? Their descriptors and hidden units per probe group.

    python benchmarks/control_inputs.py runs/v4/dsic_gatelr01_seed0 --probe runs/v4/data/synth_scenes \
        --out benchmarks/results/v4/control_inputs/dsic_gatelr01_seed0.json

Loads ``<run>/config.yaml`` and ``<run>/final.pth`` and prints (and with ``--out`` writes) the JSON
of :func:`dsic.models.control_inputs.control_inputs`: per output level, how well the control
unit's descriptor and hidden layer tell small-object from large-object images.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsic.inference import load_model
from dsic.models.control_inputs import control_inputs
from dsic.results import git_commit


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run folder (config.yaml, final.pth)")
    parser.add_argument("--probe", type=Path, required=True, help="a synth folder with probe groups")
    parser.add_argument("--images", type=int, default=50, help="images per probe group")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    start = time.time()
    model, _, _ = load_model(args.run / "config.yaml", args.run / "final.pth", device="cpu")
    stats = control_inputs(model, args.probe, args.images)
    stats.update(run=args.run.name, commit=git_commit(Path(__file__).resolve().parents[1]),
                 threads=torch.get_num_threads(), wall_s=round(time.time() - start, 1))
    text = json.dumps(stats, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
