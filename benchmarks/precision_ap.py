"""AP of a trained run's final.pth evaluated in fp32 and in bf16 (autocast), one JSON per run.

    python benchmarks/precision_ap.py runs/demo/dsic_seed0 [RUN_DIR ...] [--precisions fp32,bf16]

Each RUN_DIR needs ``config.yaml`` and ``final.pth`` (what ``dsic train`` writes). The run's own
validation split is evaluated once per precision, in one process, with the run's evaluator; the
run's files are not touched. Written to ``benchmarks/results/precision/<run name>.json`` (``--out``):
COCO bbox metrics per precision, AP(bf16) - AP(fp32) in AP points, the wall time of each
evaluation, torch version, thread count and whether the CPU has native bf16 kernels (without
them bf16 is much slower than fp32, see dsic/engine/precision.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from dsic.config import load_config
from dsic.engine.builders import build_model, make_dataset, make_eval_loader
from dsic.engine.checkpoint import load_checkpoint, model_state
from dsic.engine.distributed import DistInfo
from dsic.engine.evaluate import evaluate
from dsic.engine.precision import PRECISIONS, check_precision, native_bf16_cpu


def measure(run: Path, precisions: list[str], device: str = "cpu", max_images: int | None = None,
            root: Path | None = None) -> dict:
    for name in ("config.yaml", "final.pth"):
        if not (run / name).is_file():
            raise SystemExit(f"{run}: no {name} (a finished dsic training run has both)")
    cfg = load_config(run / "config.yaml")
    cfg["device"] = device
    if root is not None:  # the config's data paths are relative to the folder training ran in
        for split in ("train", "val"):
            for key in ("images", "annotations"):
                if cfg["data"][split][key] and not Path(cfg["data"][split][key]).is_absolute():
                    cfg["data"][split][key] = str(root / cfg["data"][split][key])
    info = DistInfo(device=torch.device(device))
    model = build_model(cfg)
    model.load_state_dict(model_state(load_checkpoint(run / "final.pth")))
    model.to(info.device).eval()
    dataset = make_dataset(cfg, "val")
    if max_images:
        dataset.ids = dataset.ids[:max_images]  # the first N validation images; only they are evaluated
    loader = make_eval_loader(cfg, info, dataset)
    out = {"command": " ".join(["python", *sys.argv]), "run": str(run), "checkpoint": str(run / "final.pth"),
           "images": len(loader.dataset),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
           "native_bf16_cpu": native_bf16_cpu(), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "metrics": {}, "eval_seconds": {}}
    for p in precisions:
        check_precision(p, info.device, warn=False)
        start = time.perf_counter()
        metrics = evaluate(model, loader, cfg["eval"]["evaluator"], cfg["eval"]["iou_types"], cfg["eval"]["max_dets"],
                           info, precision=p)
        out["eval_seconds"][p] = round(time.perf_counter() - start, 1)
        out["metrics"][p] = metrics["bbox"]
        print(f"{run.name} {p}: AP {100 * metrics['bbox']['AP']:.2f} ({out['eval_seconds'][p]} s)", flush=True)
    if "fp32" in out["metrics"]:
        out["ap_delta_points"] = {p: round(100 * (m["AP"] - out["metrics"]["fp32"]["AP"]), 2)
                                  for p, m in out["metrics"].items() if p != "fp32"}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-images", type=int, default=None, help="evaluate the first N validation images only")
    parser.add_argument("--root", type=Path, default=None,
                        help="folder the runs' relative data paths start from (default: the current folder)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "precision")
    args = parser.parse_args(argv)
    precisions = args.precisions.split(",")
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        parser.error(f"unknown precision {bad[0]!r}; expected one of {', '.join(PRECISIONS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    for run in args.runs:
        result = measure(run, precisions, args.device, args.max_images, args.root)
        path = args.out / f"{run.name}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"{path}: AP delta (points) {result.get('ap_delta_points')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
