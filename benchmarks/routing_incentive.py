"""Would routing by image pay? Per-image gradients of the training loss on CSG's state matrix W.

    python benchmarks/routing_incentive.py runs/v4/dsic_gatelr01_seed0 --probe runs/v4/data/synth_scenes \
        --images 30 --out benchmarks/results/v4/incentive/dsic_gatelr01_seed0.json

Loads ``<run>/config.yaml`` and ``<run>/final.pth`` and prints (and with ``--out`` writes) the JSON
of :func:`dsic.models.incentive.routing_incentive`: per probe group the mean dL/dW[i, k], the largest
small-vs-large difference with its effect size, and the entries where the two groups pull W in
opposite directions (an incentive to route by image that a static W cannot follow).
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
from dsic.models.incentive import routing_incentive
from dsic.results import git_commit


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run folder (config.yaml, final.pth)")
    parser.add_argument("--probe", type=Path, required=True, help="a synth folder with probe groups")
    parser.add_argument("--images", type=int, default=30, help="images per probe group")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    start = time.time()
    model, cfg, _ = load_model(args.run / "config.yaml", args.run / "final.pth", device="cpu")
    stats = routing_incentive(model, args.probe, cfg["model"].get("classes"), args.images)
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
