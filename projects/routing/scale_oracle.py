"""How deep does the training loss want DSIC as shipped to route by scale? (routing.scale_oracle)

From ``dsic_gatelr01``'s final weights at ``--seed`` (a finished run in ``--runs``), path logits that
read each image's probe group from its boxes are added and trained alone, everything else frozen,
for the protocol's schedule, as benchmarks/run.py trains the routing-learned-second rows (same
config, data order and lr schedule; no evaluation, since the oracle needs targets). Then the probe
groups go through the trained network, each with its own group set, and the record gets the gate
probe's statistics (``W_*``), the learned offsets, the training loss at the start and the end, and
how many images of each group trained them:

    OMP_NUM_THREADS=1 python projects/routing/scale_oracle.py --protocol v7 --seed 0

writes ``benchmarks/results/<protocol>/scale_oracle/dsic_gatelr01_seed<seed>.json``. The path layer
trains at ``--lr-mult`` times the schedule's lr (default 0.65: a one-hot plus the bias has
|x|^2 = 2, the statistics reader's standardised 12 inputs plus the bias 13, so 0.1 x 13 / 2 gives
the step per image of the statistics reader at the gate lr, the rate at which it was stable).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "projects" / "routing")]

from instrumented import train_instrumented, trained_start  # projects/routing/instrumented.py
from rows import variants  # projects/routing/rows.py: the study's rows and their overrides

from dsic.analysis.probe import collect_states, individuality, probe_images
from dsic.demo import ensure_data
from dsic.engine.checkpoint import load_weights_file
from dsic.inference import read_image
from dsic.protocol import get_protocol
from routing.models import build_model
from routing.scale_oracle import ORACLE_GROUPS, ScaleOracle

LR_MULT = 0.65


def mean_loss(log: Path, first: bool, count: int = 100) -> float:
    """The mean training loss of the first (or last) ``count`` iterations in ``log`` (log.jsonl)."""
    losses = [r["loss"] for r in map(json.loads, log.read_text().splitlines()) if "loss" in r]
    part = losses[:count] if first else losses[-count:]
    return round(sum(part) / len(part), 4)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="v7")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr-mult", type=float, default=LR_MULT, help="the path layer's lr / the schedule's")
    parser.add_argument("--runs", type=Path, default=None, help="run folders (default runs/<protocol>)")
    parser.add_argument("--images", type=int, default=50, help="probe images per group")
    parser.add_argument("--results", type=Path, default=None, help="the JSON (default under benchmarks/results)")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run (numbers meaningless)")
    args = parser.parse_args(argv)
    proto = get_protocol(args.protocol)
    runs = args.runs or Path("runs") / proto.name
    start_from = trained_start(runs, proto.name, args.seed)
    data = ensure_data(runs, proto, args.quick)
    run = runs / f"scale_oracle_seed{args.seed}"
    overrides = variants("scenes", proto.name)["dsic_gatelr01"] + [
        f"model.init_from={start_from}", f'train.lr_mults={{"*.csg.control.*.path.*": {args.lr_mult}, "*": 0}}']
    done = train_instrumented(proto, data, overrides, run, args.seed, args.quick, ScaleOracle, ["train.eval_every=0"])
    result = done["result"]

    model = build_model(done["cfg"])  # the trained weights (final.pth: the EMA's when the protocol uses it)
    oracle = ScaleOracle(model)
    model.load_state_dict(load_weights_file(result["final"])["model"])
    paths = probe_images(data, args.images)
    groups = {}
    for group in ORACLE_GROUPS:
        oracle.set_groups([group])
        groups[group] = collect_states(model, [read_image(p) for p in paths[group]])
    record = {"protocol": proto.name, "row": "scale_oracle", "start": "dsic_gatelr01", "seed": args.seed,
              "lr_mult": args.lr_mult, "iterations": result["iteration"], "offsets": [[[round(o, 5) for o in path] for path in level] for level in oracle.offsets()],
              "groups_trained": dict(done["instrument"].trained_on), "loss_first100": mean_loss(run / "log.jsonl", True),
              "loss_last100": mean_loss(run / "log.jsonl", False), "gate_probe": individuality(groups),
              "commit": done["commit"], "threads": torch.get_num_threads(), "wall_s": done["wall_s"]}
    path = args.results or proto.results_dir / "scale_oracle" / f"dsic_gatelr01_seed{args.seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    probe = record["gate_probe"]
    print(f"W's largest small-vs-large difference {probe['W_max_diff']:.3f} at {probe['W_max_diff_at']} "
          f"(effect size {probe['W_effect_size']:.2f}); loss {record['loss_first100']} -> {record['loss_last100']}")
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
