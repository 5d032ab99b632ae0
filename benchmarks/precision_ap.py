"""AP of trained runs evaluated in fp32 and in bf16, one JSON record per evaluation, and their table.

    python benchmarks/precision_ap.py RUN_DIR [RUN_DIR ...] [--precisions fp32,bf16] [--max-images N]
    python benchmarks/precision_ap.py RUN_DIR --fp32-parts none,heads,anchors,default,default+neck
    python benchmarks/precision_ap.py --table          # regenerate table.md from the records

Each RUN_DIR needs ``config.yaml`` and a checkpoint (``--checkpoint``, default ``final.pth``; what
``dsic train`` writes). The run's validation split (its first ``--max-images``) is evaluated once per
precision in one process, with the run's evaluator; the run's files are not touched. Each
evaluation is written to ``--out`` (default ``benchmarks/results/precision/``) as
``<row>_seed<seed>_<precision>[_<parts>].json`` (see record_name): ``row`` (the run folder's name without
``_seed<N>``), ``arch``, ``neck``, ``seed``, ``precision``, ``fp32_parts``, ``bf16_kernels``,
``metrics`` (COCO bbox, and segm for Mask R-CNN, as fractions), ``vs_fp32`` (box by box against the
fp32 detections of the same images), ``machine`` (dsic.engine.precision.machine()) and how it ran.

``--fp32-parts`` measures which fp32 parts keep bf16's accuracy (bf16 records only):
``none`` (autocast alone: anchors, proposals and boxes in bf16), ``heads`` (the heads' predictions
cast to fp32), ``anchors`` (the anchors made in fp32), ``default`` (both: what dsic eval / predict
do), ``default+neck`` (the neck in fp32 too).

bf16 kernels: on a CPU without native bf16 (AVX512-BF16 / AMX) oneDNN's fallback takes minutes per
image, so by default (``--kernels auto``) the numerics are emulated there
(dsic.engine.precision.EmulatedBf16: bf16 operands, fp32 sums, bf16 results); ``--kernels real``
runs the fallback anyway. The record says which. Records of different machines are never
compared: the table groups by machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torchvision.ops import box_iou

from dsic.config import load_config
from dsic.engine import precision as prec
from dsic.engine.builders import build_model, make_dataset, make_eval_loader
from dsic.engine.checkpoint import load_checkpoint, model_state
from dsic.engine.distributed import DistInfo
from dsic.engine.evaluate import coco_eval, predict

OUT = Path(__file__).resolve().parent / "results" / "precision"
# --fp32-parts: (modules whose outputs are cast to fp32, anchor generators made to work in fp32)
PARTS = {"none": ((), ()), "heads": (prec.FP32_OUTPUTS, ()), "anchors": ((), prec.FP32_ANCHORS),
         "default": (prec.FP32_OUTPUTS, prec.FP32_ANCHORS), "default+neck": (prec.FP32_OUTPUTS, prec.FP32_ANCHORS)}
MATCH_SCORE = 0.3  # fp32 detections compared box by box: those scored at least this


@contextlib.contextmanager
def neck_in_fp32(model):
    """The neck runs with autocast off (its inputs cast to fp32): for measuring its share only."""
    neck = model.backbone.neck
    forward = neck.forward

    def fp32_forward(*args, **kwargs):
        with torch.autocast(next(model.parameters()).device.type, enabled=False):
            return forward(*prec.to_fp32(args), **prec.to_fp32(kwargs))

    neck.forward = fp32_forward
    try:
        yield
    finally:
        del neck.forward


def evaluated_weights(state: dict) -> dict:
    """The weights a run evaluates: a ``final.pth``'s (its ``ema`` is a flag: they are the EMA already), a
    training checkpoint's (``last.pth``, ``interrupted.pth``) EMA when it holds one (a dict), else its model."""
    ema = state.get("ema")
    return model_state(ema["module"] if isinstance(ema, dict) else state)


def xyxy(boxes) -> torch.Tensor:
    """COCO [x, y, w, h] box(es) as an [N, 4] xyxy tensor."""
    b = torch.tensor(boxes, dtype=torch.float64).view(-1, 4)
    return torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], 1)


def box_by_box(ref: list[dict], other: list[dict]) -> dict:
    """fp32 detections scored >= MATCH_SCORE against the other run's detections of the same image and
    category: the IoU of each one's best match and its largest coordinate error (px)."""
    by_image: dict = {}
    for r in other:
        by_image.setdefault((r["image_id"], r["category_id"]), []).append(r["bbox"])
    ious, errors = [], []
    for r in ref:
        if r["score"] < MATCH_SCORE:
            continue
        cands = by_image.get((r["image_id"], r["category_id"]))
        if not cands:
            ious.append(0.0)
            continue
        a, c = xyxy(r["bbox"]), xyxy(cands)
        iou = box_iou(a, c)[0]
        best = int(iou.argmax())
        ious.append(float(iou[best]))
        errors.append(float((a[0] - c[best]).abs().max()))
    return {"compared": len(ious), "score_at_least": MATCH_SCORE,
            "iou_below_0.95": round(sum(i < 0.95 for i in ious) / max(len(ious), 1), 4),
            "iou_median": round(statistics.median(ious), 4) if ious else None,
            "coord_err_px_median": round(statistics.median(errors), 3) if errors else None,
            "coord_err_px_max": round(max(errors), 3) if errors else None}


def evaluate_run(run: Path, precisions: list[str], parts: list[str], checkpoint: str = "final.pth",
                 max_images: int | None = None, root: Path | None = None, kernels: str = "auto",
                 size: int | None = None) -> list[dict]:
    for name in ("config.yaml", checkpoint):
        if not (run / name).is_file():
            raise SystemExit(f"{run}: no {name} (a finished dsic training run has config.yaml and final.pth)")
    cfg = load_config(run / "config.yaml")
    cfg["device"] = "cpu"
    if size:  # images resized to this size instead of the run's (larger coordinates: coarser bf16 spacing)
        cfg["model"]["min_size"] = cfg["model"]["max_size"] = size
    if root is not None:  # the config's data paths are relative to the folder training ran in
        for split in ("train", "val"):
            for key in ("images", "annotations"):
                if cfg["data"][split][key] and not Path(cfg["data"][split][key]).is_absolute():
                    cfg["data"][split][key] = str(root / cfg["data"][split][key])
    info = DistInfo(device=torch.device("cpu"))
    state = load_checkpoint(run / checkpoint)
    model = build_model(cfg)
    model.load_state_dict(evaluated_weights(state))
    model.eval()
    dataset = make_dataset(cfg, "val")
    if max_images:
        dataset.ids = dataset.ids[:max_images]
    loader = make_eval_loader(cfg, info, dataset)
    iou_types = cfg["eval"]["iou_types"]
    emulate = kernels == "emulated" or (kernels == "auto" and not prec.native_bf16_cpu())
    common = {"row": re.sub(r"_seed\d+$", "", run.name), "arch": cfg["model"]["arch"], "neck": cfg["model"]["neck"],
              "seed": cfg["train"]["seed"], "run": str(run), "checkpoint": checkpoint,
              "iteration": state.get("iteration"), "images": len(dataset), "max_images": max_images,
              "size": cfg["model"]["max_size"], "resized": bool(size),
              "threads": torch.get_num_threads(), "machine": prec.machine(), "command": " ".join(["python", *sys.argv])}
    jobs = [(p, "default") for p in precisions if p == "fp32"]
    jobs += [(p, part) for p in precisions if p != "fp32" for part in parts]
    records, fp32_results, fp32_ap = [], None, {}
    for p, part in jobs:
        start = time.perf_counter()
        context = contextlib.ExitStack()
        context.enter_context(mock.patch.object(prec, "FP32_OUTPUTS", PARTS[part][0]))
        context.enter_context(mock.patch.object(prec, "FP32_ANCHORS", PARTS[part][1]))
        if part == "default+neck":
            context.enter_context(neck_in_fp32(model))
        if p == "bf16" and emulate:
            context.enter_context(prec.EmulatedBf16())
        with context:
            per_image = predict(model, loader, info.device, dataset.label_to_cat_id, precision=p)
        results = [r for i in sorted(per_image) for r in per_image[i]]
        metrics = {t: coco_eval(dataset.coco.dataset, results, t, cfg["eval"]["evaluator"], cfg["eval"]["max_dets"],
                                sorted(per_image)) for t in iou_types}
        rec = {**common, "precision": p, "fp32_parts": part if p != "fp32" else None,
               "bf16_kernels": ("emulated" if emulate else "native" if prec.native_bf16_cpu() else "fallback")
               if p == "bf16" else None,
               "metrics": metrics, "eval_seconds": round(time.perf_counter() - start, 1),
               "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        if p == "fp32":
            fp32_results, fp32_ap = results, {t: metrics[t]["AP"] for t in iou_types}
        elif fp32_results is not None:
            rec["vs_fp32"] = box_by_box(fp32_results, results)
            rec["ap_delta_points"] = {t: round(100 * (metrics[t]["AP"] - fp32_ap[t]), 2) for t in iou_types}
        print(f"{run.name} {p} {rec['fp32_parts'] or ''}: AP {100 * metrics['bbox']['AP']:.2f} "
              f"({rec['eval_seconds']} s) {rec.get('vs_fp32', '')}", flush=True)
        records.append(rec)
    return records


def record_name(rec: dict) -> str:
    """``<row>_seed<seed>[_it<iteration>][_<images>img]_<precision>[_<fp32 parts>][_fallback].json``: the
    iteration of a checkpoint other than final.pth, the image count of a part of the split
    (``--max-images``), the size of ``--size``, ``fallback`` for bf16 run through a non-native CPU's kernels,
    ``emulated`` for emulated bf16 on a CPU with native bf16 (elsewhere emulation is the default)."""
    part = f"_{rec['fp32_parts'].replace('+', '_')}" if rec["fp32_parts"] not in (None, "default") else ""
    it = f"_it{rec['iteration']}" if rec["checkpoint"] != "final.pth" else ""
    some = f"_{rec['images']}img" if rec.get("max_images") else ""
    some += f"_{rec['size']}px" if rec.get("resized") else ""
    kernels = "_fallback" if rec["bf16_kernels"] == "fallback" else ""
    if rec["bf16_kernels"] == "emulated" and rec.get("machine", {}).get("native_bf16_cpu"):
        kernels = "_emulated"  # by choice (--kernels emulated) beside the native kernels' record
    return f"{rec['row']}_seed{rec['seed']}{it}{some}_{rec['precision']}{part}{kernels}.json"


def table(records: list[dict]) -> str:
    """Markdown: one section per machine, one line per record; deltas against the fp32 record of the
    same run, checkpoint iteration, images and size on the same machine."""
    lines = []
    # the CPU's model name alone does not tell machines apart (a VM's "AMD EPYC" with and without AVX512-BF16)
    key = lambda r: (r["machine"]["cpu"], r["machine"]["cpu_count"], r["machine"]["torch"],
                     bool(r["machine"].get("native_bf16_cpu")), r["machine"].get("cpu_capability") or "")
    for machine in sorted({key(r) for r in records}):
        recs = sorted((r for r in records if key(r) == machine),
                      key=lambda r: (r["row"], r["seed"], r.get("size") or 0, r["images"], r["precision"] != "fp32",
                                     r["fp32_parts"] or ""))
        capability = f", {machine[4]}" if machine[4] else ""
        lines += [(f"### {machine[0]}, {machine[1]} cores{capability}, native bf16: {'yes' if machine[3] else 'no'}, "
                   f"torch {machine[2]}"),
                  "", ("| row | arch | neck | seed | iteration | images | size | precision | fp32 parts | bf16 kernels | AP | "
                       "AP50 | AP75 | APs | AP - fp32 | APs - fp32 | mask AP | mask AP - fp32 | boxes IoU<0.95 | "
                       "max err px |"),
                  "|" + "---|" * 20]
        for r in recs:
            ref = next((f for f in recs if f["precision"] == "fp32" and f["run"] == r["run"]
                        and f["iteration"] == r["iteration"] and f["images"] == r["images"]
                        and f.get("size") == r.get("size")), None)
            b, vs = r["metrics"]["bbox"], r.get("vs_fp32") or {}

            def delta(metric, iou_type="bbox", r=r, ref=ref):
                if ref is None or ref is r or iou_type not in r["metrics"] or iou_type not in ref["metrics"]:
                    return "-"
                return f"{100 * (r['metrics'][iou_type][metric] - ref['metrics'][iou_type][metric]):+.2f}"

            mask = f"{100 * r['metrics']['segm']['AP']:.2f}" if "segm" in r["metrics"] else "-"
            cells = [r["row"], r["arch"], r["neck"], r["seed"], r["iteration"], r["images"], r.get("size", "-"),
                     r["precision"],
                     r["fp32_parts"] or "-", r["bf16_kernels"] or "-", f"{100 * b['AP']:.2f}", f"{100 * b['AP50']:.2f}",
                     f"{100 * b['AP75']:.2f}", f"{100 * b['APs']:.2f}", delta("AP"), delta("APs"), mask, delta("AP", "segm"),
                     vs.get("iou_below_0.95", "-"), vs.get("coord_err_px_max", "-")]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_table(out: Path) -> Path:
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    records = [r for r in records if "row" in r and "precision" in r]  # not the other JSONs kept there
    path = out / "table.md"
    path.write_text("# fp32 and bf16 AP of trained runs (benchmarks/precision_ap.py; regenerated from the JSON "
                    "records here)\n\n" + table(records))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--fp32-parts", default="default", help=f"bf16 variants, of {', '.join(PARTS)}")
    parser.add_argument("--checkpoint", default="final.pth")
    parser.add_argument("--kernels", choices=("auto", "real", "emulated"), default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-images", type=int, default=None, help="evaluate the first N validation images only")
    parser.add_argument("--size", type=int, default=None, help="resize the images to this size, not the run's")
    parser.add_argument("--root", type=Path, default=None,
                        help="folder the runs' relative data paths start from (default: the current folder)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--table", action="store_true", help="only regenerate OUT/table.md from the records")
    args = parser.parse_args(argv)
    precisions, parts = args.precisions.split(","), args.fp32_parts.split(",")
    bad = [p for p in precisions if p not in ("fp32", "bf16")] + [p for p in parts if p not in PARTS]
    if bad:
        parser.error(f"unknown precision or fp32 part {bad[0]!r}")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    for run in [] if args.table else args.runs:
        for rec in evaluate_run(run, precisions, parts, args.checkpoint, args.max_images, args.root, args.kernels,
                                args.size):
            (args.out / record_name(rec)).write_text(json.dumps(rec, indent=2) + "\n")
    print(write_table(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
