"""COCO bbox / segm evaluation with faster-coco-eval (default) or pycocotools (same numbers).

Metrics are COCO's 12 summary numbers as *fractions* in [0, 1] (-1 where a size range has no
ground truth), named AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl. Masks are
thresholded at 0.5 and RLE-encoded. Under torchrun every rank predicts its shard, predictions are
gathered on rank 0 (samples duplicated by the sampler's padding are dropped) and rank 0 evaluates.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils
from tqdm import tqdm

from .distributed import DistInfo, all_gather_objects, broadcast_object

NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def to_coco_results(image_id: int, det: dict, label_to_cat_id) -> list[dict]:
    """One image's detections as COCO result records (xywh boxes, original category ids)."""
    boxes = det["boxes"].detach().cpu().float()
    if boxes.numel() == 0:
        return []
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).tolist()
    scores = det["scores"].detach().cpu().tolist()
    labels = det["labels"].detach().cpu().tolist()
    out = [{"image_id": int(image_id), "category_id": int(label_to_cat_id(lab)), "bbox": [round(v, 3) for v in b],
            "score": float(s)} for b, s, lab in zip(xywh, scores, labels)]
    if "masks" in det:
        masks = (det["masks"][:, 0] > 0.5).cpu().numpy().astype(np.uint8)
        for rec, m in zip(out, masks):
            rle = mask_utils.encode(np.asfortranarray(m))
            rle["counts"] = rle["counts"].decode("ascii")
            rec["segmentation"] = rle
    return out


def coco_eval(gt: dict, results: list[dict], iou_type: str = "bbox", evaluator: str = "faster_coco_eval",
              max_dets: int = 100) -> dict:
    """Evaluate ``results`` against the ground-truth COCO dict ``gt``; returns :data:`NAMES` -> float."""
    if not results:
        return {name: 0.0 for name in NAMES}
    if iou_type == "segm":
        results = [r for r in results if "segmentation" in r]
    gt = dict(gt, annotations=[dict(a) for a in gt.get("annotations", [])])
    with contextlib.redirect_stdout(io.StringIO()):
        if evaluator == "faster_coco_eval":
            from faster_coco_eval import COCO, COCOeval_faster

            coco_gt = COCO(gt)
            coco_dt = coco_gt.loadRes(results)
            ev = COCOeval_faster(coco_gt, coco_dt, iou_type)
        elif evaluator == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval

            coco_gt = COCO()
            coco_gt.dataset = gt
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes(results)
            ev = COCOeval(coco_gt, coco_dt, iou_type)
        else:
            raise ValueError(f"unknown evaluator {evaluator!r}; expected faster_coco_eval or pycocotools")
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(NAMES, ev.stats[:12])}


@torch.inference_mode()
def predict(model, loader, device, label_to_cat_id, info: DistInfo | None = None, progress: bool = False) -> list:
    """COCO result records of every image ``loader`` yields on this process."""
    model.eval()
    results: dict[int, list] = {}
    for images, targets in tqdm(loader, desc="eval", disable=not progress, leave=False):
        outputs = model([im.to(device) for im in images])
        for target, det in zip(targets, outputs):
            image_id = int(target["image_id"])
            results[image_id] = to_coco_results(image_id, det, label_to_cat_id)
    return list(results.items())


def evaluate(model, loader, iou_types=("bbox",), evaluator: str = "faster_coco_eval", max_dets: int = 100,
             info: DistInfo | None = None, results_path: str | Path | None = None, progress: bool = False):
    """Predict on ``loader`` (its dataset a :class:`~dsic.data.coco.CocoDetection`) and evaluate.

    Returns ``{iou_type: metrics}`` on every rank (computed on rank 0, broadcast).
    """
    info = info or DistInfo()
    dataset = loader.dataset
    device = next(model.parameters()).device
    local = predict(model, loader, device, dataset.label_to_cat_id, info, progress)
    metrics = None
    if info.is_main:
        merged: dict[int, list] = {}
        for part in all_gather_objects(local, info):
            merged.update(dict(part))  # padded duplicates collapse on image_id
        results = [r for image_id in sorted(merged) for r in merged[image_id]]
        if results_path is not None:
            Path(results_path).parent.mkdir(parents=True, exist_ok=True)
            Path(results_path).write_text(json.dumps(results))
        metrics = {t: coco_eval(dataset.coco.dataset, results, t, evaluator, max_dets) for t in iou_types}
    else:
        all_gather_objects(local, info)
    return broadcast_object(metrics, info)


def main_eval(config_path, checkpoint, overrides=None, evaluator: str | None = None) -> dict | None:
    """``dsic eval``: evaluate ``checkpoint`` on the config's val split; prints and returns metrics."""
    from ..config import load_config
    from .builders import build_model, make_loader
    from .checkpoint import load_checkpoint
    from .distributed import cleanup, init_distributed

    cfg = load_config(config_path, overrides)
    info = init_distributed(cfg["device"])
    try:
        model = build_model(cfg).to(info.device)
        state = load_checkpoint(checkpoint)
        model.load_state_dict(state.get("model", state))
        loader = make_loader(cfg, "val", info)
        out = Path(cfg["output_dir"])
        metrics = evaluate(model, loader, cfg["eval"]["iou_types"], evaluator or cfg["eval"]["evaluator"],
                           cfg["eval"]["max_dets"], info, out / "results_eval.json" if info.is_main else None,
                           progress=info.is_main)
        if info.is_main:
            (out / "eval.json").write_text(json.dumps(metrics, indent=2))
        return metrics if info.is_main else None
    finally:
        cleanup()
