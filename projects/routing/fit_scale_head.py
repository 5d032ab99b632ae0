"""Fit the ``scale`` heads of DSIC as shipped, trained and frozen, before the routing learns.

From ``dsic_gatelr01``'s final weights at ``--seed`` (a finished run in ``--runs``), a DSIC with
``csg_path_gate: scale`` (the row ``dsic_gatelr01_gateft_pathscale``'s model) reads every training
image of the protocol once (eval mode, no flip); each level's head is fitted on the standardised
descriptors by :mod:`routing.scale_head_fit` (lambda chosen on the last 20 % of the training
images, then fitted on all). The probe groups are read only to report the fitted heads, after the
fit. Writes the weights the row ``dsic_gatelr01_gateft_pathscale_fitted`` starts from
(``<runs>/scale_head_fit_seed<seed>.pth``: dsic_gatelr01's weights plus the fitted statistics and
heads) and the fit's record ``benchmarks/results/<protocol>/scale_head_fit/dsic_gatelr01_seed<seed>.json``:

    OMP_NUM_THREADS=1 python projects/routing/fit_scale_head.py --protocol v7 --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "projects" / "routing")]

from instrumented import trained_start  # projects/routing/instrumented.py
from rows import variants  # projects/routing/rows.py: the study's rows and their overrides

from dsic.analysis.probe import probe_images
from dsic.config import load_config
from dsic.demo import ensure_data, train_command
from dsic.inference import read_image
from dsic.protocol import get_protocol
from dsic.results import git_commit
from routing.control import scale_probabilities
from routing.models import build_model
from routing.scale_groups import (
    PRESENCE_NAMES,
    PROBE_PRESENCE,
    SCALE_GROUP_NAMES,
    scale_group,
    scale_presence,
)
from routing.scale_head_fit import (
    accuracy,
    choose_l2,
    collect_descriptors,
    data_loss,
    fit_head,
    install_heads,
    scale_units,
    standardize,
    standardize_stats,
)

ROW = "dsic_gatelr01_gateft_pathscale"  # the model whose heads are fitted (the row's init_from: dsic_gatelr01)
BATCH = 16
NAMES = {"groups": SCALE_GROUP_NAMES, "presence": PRESENCE_NAMES}  # what each output of the head means


def training_images(data: Path, limit: int | None) -> tuple[list[Path], list[list[float]]]:
    """The training images with boxes, in the annotation file's order, and their boxes' areas."""
    ann = json.loads((data / "annotations" / "instances_train.json").read_text())
    areas: dict[int, list[float]] = {}
    for a in ann["annotations"]:
        areas.setdefault(a["image_id"], []).append(a["area"])
    kept = [(data / "train" / im["file_name"], areas[im["id"]]) for im in ann["images"] if areas.get(im["id"])]
    kept = kept[:limit]
    return [f for f, _ in kept], [a for _, a in kept]


def labels_of(areas: list[list[float]], target: str) -> torch.Tensor:
    if target == "groups":
        return torch.tensor([SCALE_GROUP_NAMES.index(scale_group(a)) for a in areas])
    return torch.tensor([scale_presence(a) for a in areas], dtype=torch.float64)


def probe_labels(group: str, count: int, target: str) -> torch.Tensor:
    if target == "groups":
        return torch.full((count,), SCALE_GROUP_NAMES.index(group))
    return torch.tensor([PROBE_PRESENCE[group]] * count, dtype=torch.float64)


def batches(files: list[Path]):
    for i in range(0, len(files), BATCH):
        yield [read_image(f) for f in files[i:i + BATCH]]


def descriptors(model, data: Path, limit: int | None, probe: int, cache: Path) -> dict:
    """Every scale unit's descriptors of the training images (and their areas) and of the probe
    groups; read from ``cache`` when it holds this selection, else computed and written there."""
    key = {"limit": limit, "probe": probe}
    if cache.is_file():
        found = torch.load(cache, weights_only=True)
        if found["key"] == key:
            return found
    files, areas = training_images(data, limit)
    found = {"key": key, "areas": areas, "train": collect_descriptors(model, batches(files)),
             "probe": {g: collect_descriptors(model, batches(fs)) for g, fs in probe_images(data, probe).items()}}
    torch.save(found, cache)
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="v7")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", choices=tuple(NAMES), default="groups", help="csg_scale_target of the heads")
    parser.add_argument("--runs", type=Path, default=None, help="run folders (default runs/<protocol>)")
    parser.add_argument("--images", type=int, default=None, help="training images read (default all)")
    parser.add_argument("--probe", type=int, default=50, help="probe images per group (the report only)")
    parser.add_argument("--results", type=Path, default=None, help="the JSON (default under benchmarks/results)")
    args = parser.parse_args(argv)
    proto = get_protocol(args.protocol)
    runs = args.runs or Path("runs") / proto.name
    trained_start(runs, proto.name, args.seed)  # the row's init_from names it
    data = ensure_data(runs, proto)
    target, names = args.target, NAMES[args.target]
    overrides = variants("scenes", proto.name)[ROW] + [f"model.neck_cfg.csg_scale_target={target}"]
    config, *overrides = train_command(proto, data, overrides, runs / "unused", args.seed, False)
    model = build_model(load_config(config, overrides))
    units = scale_units(model)
    start = time.time()
    found = descriptors(model, data, args.images, args.probe, runs / f"scale_descriptors_seed{args.seed}.pt")
    labels = labels_of(found["areas"], target)
    fits, levels = [], []
    for level, ((_, unit), x) in enumerate(zip(units, found["train"], strict=True)):
        eps = unit.path_norm.eps
        chosen = choose_l2(x, labels, len(names), eps, target=target)
        mean, var = standardize_stats(x)
        z = standardize(x, mean, var, eps)
        weight, bias = fit_head(z, labels, len(names), chosen["l2"], target)
        fits.append({"mean": mean, "var": var, "weight": weight, "bias": bias})
        reading = {}
        for g, px in found["probe"].items():
            pz = standardize(px[level], mean, var, eps)
            logits = pz @ weight.T + bias
            q = scale_probabilities(logits, target).mean(0)
            reading[g] = {"accuracy": round(accuracy(weight, bias, pz, probe_labels(g, len(pz), target), target), 4),
                          "mean_q": [round(float(v), 4) for v in q]}
        levels.append({**chosen, "train_ce": round(data_loss(weight, bias, z, labels, target), 4),
                       "train_accuracy": round(accuracy(weight, bias, z, labels, target), 4), "probe": reading})
    shares = (torch.bincount(labels, minlength=len(names)).double() / len(labels) if target == "groups"
              else labels.mean(0))
    prior = (-(shares * shares.log()).sum() if target == "groups"
             else -(shares * shares.log() + (1 - shares) * (1 - shares).log()).sum())
    stem = "" if target == "groups" else f"_{target}"
    weights_out = runs / f"scale_head_fit{stem}_seed{args.seed}.pth"
    torch.save({"model": install_heads(model.state_dict(), [n for n, _ in units], fits)}, weights_out)
    record = {"protocol": proto.name, "row": "scale_head_fit", "start": "dsic_gatelr01", "seed": args.seed,
              "target": target, "order": list(names), "images": len(labels),
              "group_shares": [round(float(s), 4) for s in shares], "prior_ce": round(float(prior), 4), "levels": levels,
              "commit": git_commit(ROOT), "threads": torch.get_num_threads(), "wall_s": round(time.time() - start, 1)}
    path = args.results or proto.results_dir / "scale_head_fit" / f"dsic_gatelr01{stem}_seed{args.seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    for i, lv in enumerate(levels):
        print(f"level {i}: l2 {lv['l2']}, train loss {lv['train_ce']} (prior {record['prior_ce']}), probe accuracy "
              + ", ".join(f"{g} {r['accuracy']} q {r['mean_q']}" for g, r in lv["probe"].items()))
    print(f"-> {path}\n-> {weights_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
