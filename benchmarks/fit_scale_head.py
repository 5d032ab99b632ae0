"""Fit the ``scale`` heads of DSIC as shipped, trained and frozen, before the routing learns.

From ``dsic_gatelr01``'s final weights at ``--seed`` (a finished run in ``--runs``), a DSIC with
``csg_path_gate: scale`` (the row ``dsic_gatelr01_gateft_pathscale``'s model) reads every training
image of the protocol once (eval mode, no flip); each level's head is fitted on the standardised
descriptors by :mod:`dsic.models.scale_head_fit` (lambda chosen on the last 20 % of the training
images, then fitted on all). The probe groups are read only to report the fitted heads, after the
fit. Writes the weights the row ``dsic_gatelr01_gateft_pathscale_fitted`` starts from
(``<runs>/scale_head_fit_seed<seed>.pth``: dsic_gatelr01's weights plus the fitted statistics and
heads) and the fit's record ``benchmarks/results/<protocol>/scale_head_fit/dsic_gatelr01_seed<seed>.json``:

    OMP_NUM_THREADS=1 python benchmarks/fit_scale_head.py --protocol v7 --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from run import variants  # benchmarks/run.py: the rows and their overrides

from dsic.config import load_config
from dsic.demo import ensure_data, train_command
from dsic.engine.builders import build_model
from dsic.inference import read_image
from dsic.models.probe import probe_images
from dsic.models.scale_groups import SCALE_GROUP_NAMES, scale_group
from dsic.models.scale_head_fit import (
    accuracy,
    choose_l2,
    collect_descriptors,
    cross_entropy,
    fit_softmax_regression,
    install_heads,
    scale_units,
    standardize,
    standardize_stats,
)
from dsic.protocol import get_protocol
from dsic.results import git_commit

ROW = "dsic_gatelr01_gateft_pathscale"  # the model whose heads are fitted (the row's init_from: dsic_gatelr01)
BATCH = 16


def training_images(data: Path, limit: int | None) -> tuple[list[Path], torch.Tensor]:
    """The training images with boxes, in the annotation file's order, and their scale groups."""
    ann = json.loads((data / "annotations" / "instances_train.json").read_text())
    areas: dict[int, list[float]] = {}
    for a in ann["annotations"]:
        areas.setdefault(a["image_id"], []).append(a["area"])
    files, labels = [], []
    for im in ann["images"]:
        group = scale_group(areas.get(im["id"], []))
        if group is not None:
            files.append(data / "train" / im["file_name"])
            labels.append(SCALE_GROUP_NAMES.index(group))
    return files[:limit], torch.tensor(labels[:limit])


def batches(files: list[Path]):
    for i in range(0, len(files), BATCH):
        yield [read_image(f) for f in files[i:i + BATCH]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="v7")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=None, help="run folders (default runs/<protocol>)")
    parser.add_argument("--images", type=int, default=None, help="training images read (default all)")
    parser.add_argument("--probe", type=int, default=50, help="probe images per group (the report only)")
    parser.add_argument("--results", type=Path, default=None, help="the JSON (default under benchmarks/results)")
    args = parser.parse_args(argv)
    proto = get_protocol(args.protocol)
    runs = args.runs or Path("runs") / proto.name
    start_from = runs / f"dsic_gatelr01_seed{args.seed}" / "final.pth"
    if not start_from.is_file():
        raise SystemExit(f"{start_from}: no finished dsic_gatelr01 run at seed {args.seed} (train it with "
                         f"benchmarks/run.py scenes --protocol {proto.name} --variants dsic_gatelr01 first)")
    data = ensure_data(runs, proto)
    config, *overrides = train_command(proto, data, variants("scenes", proto.name)[ROW], runs / "unused", args.seed, False)
    model = build_model(load_config(config, overrides))
    units = scale_units(model)
    start = time.time()
    files, labels = training_images(data, args.images)
    descriptors = collect_descriptors(model, batches(files))
    paths = probe_images(data, args.probe)
    probe = {g: collect_descriptors(model, batches(fs)) for g, fs in paths.items()}
    fits, levels = [], []
    for level, ((_, unit), x) in enumerate(zip(units, descriptors, strict=True)):
        eps = unit.path_norm.eps
        chosen = choose_l2(x, labels, len(SCALE_GROUP_NAMES), eps)
        mean, var = standardize_stats(x)
        z = standardize(x, mean, var, eps)
        weight, bias = fit_softmax_regression(z, labels, len(SCALE_GROUP_NAMES), chosen["l2"])
        fits.append({"mean": mean, "var": var, "weight": weight, "bias": bias})
        reading = {}
        for g, px in probe.items():
            pz = standardize(px[level], mean, var, eps)
            y = torch.full((len(pz),), SCALE_GROUP_NAMES.index(g))
            q = (pz @ weight.T + bias).softmax(1).mean(0)
            reading[g] = {"accuracy": round(accuracy(weight, bias, pz, y), 4), "mean_q": [round(float(v), 4) for v in q]}
        levels.append({**chosen, "train_ce": round(cross_entropy(weight, bias, z, labels), 4),
                       "train_accuracy": round(accuracy(weight, bias, z, labels), 4), "probe": reading})
    shares = torch.bincount(labels, minlength=len(SCALE_GROUP_NAMES)).double() / len(labels)
    weights_out = runs / f"scale_head_fit_seed{args.seed}.pth"
    torch.save({"model": install_heads(model.state_dict(), [n for n, _ in units], fits)}, weights_out)
    record = {"protocol": proto.name, "row": "scale_head_fit", "start": "dsic_gatelr01", "seed": args.seed,
              "order": list(SCALE_GROUP_NAMES), "images": len(files), "group_shares": [round(float(s), 4) for s in shares],
              "prior_ce": round(float(-(shares * shares.log()).sum()), 4), "levels": levels,
              "commit": git_commit(ROOT), "threads": torch.get_num_threads(), "wall_s": round(time.time() - start, 1)}
    path = args.results or proto.results_dir / "scale_head_fit" / f"dsic_gatelr01_seed{args.seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    for i, lv in enumerate(levels):
        print(f"level {i}: l2 {lv['l2']}, train CE {lv['train_ce']} (prior {record['prior_ce']}), probe accuracy "
              + ", ".join(f"{g} {r['accuracy']}" for g, r in lv["probe"].items()))
    print(f"-> {path}\n-> {weights_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
