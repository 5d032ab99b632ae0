"""Train one row of a scenes protocol exactly as benchmarks/run.py does (same config, overrides,
seed, data order and lr schedule), with routing.unit_dynamics recording each CSG control unit's
life and branch gradients at every iteration; no evaluation. ``--iters N`` stops after N iterations
(the schedule is the full run's, so they are the full run's first N). Writes the windowed summary
and the per-iteration records to
``benchmarks/results/<protocol>/unit_dynamics/<row>_seed<seed>.json``.

    OMP_NUM_THREADS=1 python projects/routing/unit_dynamics.py --protocol v7 --row dsic_path_gatelr01 --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "projects" / "routing")]

from instrumented import train_instrumented  # projects/routing/instrumented.py
from rows import variants  # projects/routing/rows.py: the study's rows and their overrides

from dsic.demo import ensure_data
from dsic.protocol import get_protocol
from routing.unit_dynamics import UnitDynamics, per_iteration


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="v7")
    parser.add_argument("--row", required=True, help="a row of benchmarks/run.py scenes --protocol P")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iters", type=int, default=0, help="stop after this many iterations (0: the whole run)")
    parser.add_argument("--window", type=int, default=50, help="iterations averaged per summary entry")
    parser.add_argument("--out", type=Path, default=Path("runs/dynamics"), help="run folders")
    parser.add_argument("--results", type=Path, default=None, help="the JSON (default under benchmarks/results)")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    args = parser.parse_args(argv)
    proto = get_protocol(args.protocol)
    rows = variants("scenes", proto.name)
    if args.row not in rows:
        raise SystemExit(f"--row: {args.row!r} is not a scenes row of protocol {proto.name} ({', '.join(rows)})")
    data = ensure_data(args.out, proto, args.quick)
    run = args.out / f"{args.row}_seed{args.seed}"
    extra = ["train.eval_every=0"] + ([f"train.max_iters={args.iters}"] if args.iters else [])
    done = train_instrumented(proto, data, rows[args.row], run, args.seed, args.quick, UnitDynamics, extra)
    dyn = done["instrument"]
    stats = {"protocol": proto.name, "row": args.row, "seed": args.seed, "iterations": done["result"]["iteration"],
             "window": args.window, "summary": dyn.summary(args.window), "per_iteration": per_iteration(dyn),
             "commit": done["commit"], "threads": torch.get_num_threads(), "wall_s": done["wall_s"]}
    path = args.results or proto.results_dir / "unit_dynamics" / f"{args.row}_seed{args.seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stats) + "\n")
    for level, unit in enumerate(stats["summary"]):
        print(f"unit {level}: alive {unit['alive'][0]:.2f} -> {unit['alive'][-1]:.2f}, "
              f"path/channel gradient {unit['ratio'][0]:.2f} -> {unit['ratio'][-1]:.2f}")
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
