"""How well a trained ``csg_path_gate: scale`` head reads the probe groups, and how its run's losses moved.

For a finished run of a row with scale path gates (default ``dsic_gatelr01_gateft_pathscale``) in
``--runs``, every probe image goes through the trained network alone; per output level, the head's
predicted group (argmax of its logits) is compared with the image's probe group, and its mean
probabilities per group are kept. From the run's log.jsonl: the detection loss (the sum of the
losses without ``loss_scale``) and ``loss_scale``, each averaged over the first and last 100
iterations (docs/design.md, "A scale reader taught by the boxes", the stability prediction):

    python projects/routing/scale_head.py --protocol v7 --seed 0

writes ``benchmarks/results/<protocol>/scale_head/<row>_seed<seed>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "projects" / "routing")]

from dsic.analysis.probe import probe_images
from dsic.inference import load_model, read_image
from dsic.protocol import get_protocol
from dsic.visualize import read_jsonl
from routing.control import scale_probabilities
from routing.scale_groups import PRESENCE_NAMES, PROBE_PRESENCE, SCALE_GROUP_NAMES
from routing.scale_supervision import attach_scale_supervision

ROW = "dsic_gatelr01_gateft_pathscale"


def loss_ends(log: Path, count: int = 100) -> dict:
    """First and last ``count`` iterations' mean detection loss and loss_scale."""
    recs = [r for r in read_jsonl(log) if "loss_scale" in r]
    if not recs:
        raise SystemExit(f"{log}: no loss_scale logged (not a run with scale path gates)")
    detection = [r["loss"] - r["loss_scale"] for r in recs]
    scale = [r["loss_scale"] for r in recs]

    def mean(xs):
        return round(sum(xs) / len(xs), 4)

    return {"detection_first100": mean(detection[:count]), "detection_last100": mean(detection[-count:]),
            "scale_first100": mean(scale[:count]), "scale_last100": mean(scale[-count:])}


def head_reading(model, paths: dict[str, list[Path]]) -> dict:
    """Per level, the head's accuracy on the probe groups and its mean probabilities per group
    (``presence`` heads: both answers right, and the two sigmoids' means)."""
    supervision = attach_scale_supervision(model)  # None without scale path gates
    if supervision is None:
        raise SystemExit("the model has no scale path gates (csg_path_gate: scale)")
    units, target = supervision.units, supervision.target
    names = SCALE_GROUP_NAMES if target == "groups" else PRESENCE_NAMES
    right = [0] * len(units)
    probs = {g: [torch.zeros(len(names)) for _ in units] for g in paths}
    total = 0
    with torch.no_grad():
        for group, files in paths.items():
            for f in files:
                model([read_image(f)])
                total += 1
                for level, unit in enumerate(units):
                    logits = unit.scale_logits.float()
                    if target == "groups":
                        right[level] += int(logits[0].argmax()) == SCALE_GROUP_NAMES.index(group)
                    else:
                        right[level] += (logits[0] > 0).long().tolist() == list(PROBE_PRESENCE[group])
                    probs[group][level] += scale_probabilities(logits, target)[0] / len(files)
    return {"accuracy": [round(r / total, 4) for r in right], "order": list(names),
            "mean_q": {g: [[round(float(x), 4) for x in q] for q in qs] for g, qs in probs.items()},
            "images": {g: len(files) for g, files in paths.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="v7")
    parser.add_argument("--row", default=ROW)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=None, help="run folders (default runs/<protocol>)")
    parser.add_argument("--images", type=int, default=50, help="probe images per group")
    parser.add_argument("--results", type=Path, default=None, help="the JSON (default under benchmarks/results)")
    args = parser.parse_args(argv)
    proto = get_protocol(args.protocol)
    runs = args.runs or Path("runs") / proto.name
    run = runs / f"{args.row}_seed{args.seed}"
    if not (run / "final.pth").is_file():
        raise SystemExit(f"{run}: no finished run (final.pth) here")
    model, _, _ = load_model(run / "config.yaml", run / "final.pth", device="cpu")
    probe = head_reading(model.eval(), probe_images(proto.data_dir(runs), args.images))
    record = {"protocol": proto.name, "row": args.row, "seed": args.seed, "probe": probe,
              "order": probe.pop("order"), **loss_ends(run / "log.jsonl")}
    path = args.results or proto.results_dir / "scale_head" / f"{args.row}_seed{args.seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"head accuracy per level {record['probe']['accuracy']}; detection loss "
          f"{record['detection_first100']} -> {record['detection_last100']}, loss_scale "
          f"{record['scale_first100']} -> {record['scale_last100']}\n-> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
