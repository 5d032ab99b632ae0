"""COCO bbox / segm evaluation with faster-coco-eval (default) or pycocotools.

Predictions become COCO result records (xywh boxes; category ids mapped back through
``dataset.label_to_cat_id``; masks thresholded at 0.5 and RLE-encoded). Both evaluators match them
to the ground truth with their own code (the ``evaluate`` step); the summary numbers are then read
from the accumulated precision / recall arrays by :func:`summarize` here, the same formula as COCO's
``summarize()`` but also correct when ``max_dets`` is not 100 (pycocotools' own summary hard-codes
100). Metrics are *fractions* in [0, 1] (-1 where an area range has no ground truth), named AP,
AP50, AP75, APs, APm, APl, AR1, AR10, AR<max_dets>, ARs, ARm, ARl. The two evaluators agree to
float precision (the tests compare them to 1e-9).

Under torchrun each rank predicts its shard, the predictions are gathered on rank 0
(``all_gather_object``; an image predicted twice - e.g. padded by a ``DistributedSampler`` - is
kept once), rank 0 evaluates and the metrics are broadcast to every rank.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils
from tqdm import tqdm

from .distributed import DistInfo, all_gather_objects, broadcast_object, unwrap
from .precision import autocast, check_precision

EVALUATORS = ("faster_coco_eval", "pycocotools")
AREAS = ("all", "small", "medium", "large")


def metric_names(max_dets: int = 100) -> tuple[str, ...]:
    return ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", f"AR{max_dets}", "ARs", "ARm", "ARl")


NAMES = metric_names(100)


# --- predictions -> COCO results ---------------------------------------------------------------------

def encode_masks(masks: torch.Tensor, threshold: float = 0.5) -> list[dict]:
    """[N, 1, H, W] (or [N, H, W]) mask probabilities -> N compressed RLEs (``counts`` as str)."""
    if masks.ndim == 4:
        masks = masks[:, 0]
    binary = (masks > threshold).to(torch.uint8).cpu().numpy()
    if len(binary) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def to_coco_results(image_id: int, det: dict, label_to_cat_id) -> list[dict]:
    """One image's detections (xyxy ``boxes``, ``labels`` 1..K, ``scores``, optional ``masks``)
    as COCO result records with the original category ids."""
    boxes = det["boxes"].detach().float().cpu()
    if boxes.numel() == 0:
        return []
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).tolist()
    scores = det["scores"].detach().float().cpu().tolist()
    labels = det["labels"].detach().cpu().tolist()
    cat_ids = [label_to_cat_id(lab) for lab in labels]  # None: a class the ground truth does not have
    out = [{"image_id": int(image_id), "category_id": int(cat), "bbox": box, "score": score}
           for box, score, cat in zip(xywh, scores, cat_ids) if cat is not None]
    if "masks" in det:
        rles = encode_masks(det["masks"])
        for rec, rle in zip(out, [r for r, cat in zip(rles, cat_ids) if cat is not None]):
            rec["segmentation"] = rle
    return out


# --- COCO evaluation ---------------------------------------------------------------------------------

def _prepared_gt(gt: dict) -> dict:
    """A copy of the ground truth the evaluators may modify, with ``iscrowd``/``area`` filled in."""
    anns = []
    for a in gt.get("annotations", []):
        a = dict(a)
        a.setdefault("iscrowd", 0)
        if "area" not in a:
            a["area"] = float(a["bbox"][2] * a["bbox"][3])
        anns.append(a)
    out = {k: v for k, v in gt.items() if k != "annotations"}
    out["annotations"] = anns
    out.setdefault("info", {})
    return out


def _results_for(results: list[dict], iou_type: str) -> list[dict]:
    """Copies (the evaluators write into them) with only the geometry ``iou_type`` is about: segm
    records lose their box, so both evaluators take area and box from the mask."""
    if iou_type == "segm":
        return [{k: copy.deepcopy(v) for k, v in r.items() if k != "bbox"} for r in results if "segmentation" in r]
    return [{k: (list(v) if k == "bbox" else v) for k, v in r.items() if k != "segmentation"} for r in results]


def summarize(precision: np.ndarray, recall: np.ndarray, iou_thrs, max_dets: list[int],
              area_labels=AREAS) -> dict:
    """COCO's 12 summary numbers from accumulated ``precision`` [T, R, K, A, M] and ``recall``
    [T, K, A, M] (entries -1 = no ground truth; a mean over nothing is -1)."""
    iou_thrs = np.asarray(iou_thrs)

    def mean(values):
        valid = values[values > -1]
        return float(np.mean(valid)) if valid.size else -1.0

    def ap(iou=None, area="all", m=-1):
        p = precision[..., area_labels.index(area), m]
        if iou is not None:
            p = p[np.isclose(iou_thrs, iou)]
        return mean(p)

    def ar(area="all", m=-1):
        return mean(recall[..., area_labels.index(area), m])

    vals = [ap(), ap(0.5), ap(0.75), ap(area="small"), ap(area="medium"), ap(area="large"),
            ar(m=0), ar(m=1), ar(m=2), ar("small"), ar("medium"), ar("large")]
    return dict(zip(metric_names(max_dets[-1]), vals))


def coco_eval(gt: dict, results: list[dict], iou_type: str = "bbox", evaluator: str = "faster_coco_eval",
              max_dets: int = 100, img_ids: list[int] | None = None) -> dict:
    """Evaluate COCO ``results`` against the ground-truth COCO dict ``gt`` (not modified).

    ``img_ids`` restricts the evaluation to those images (default: every image of ``gt``).
    No results at all gives 0 for every metric.
    """
    if evaluator not in EVALUATORS:
        raise ValueError(f"unknown evaluator {evaluator!r}; expected one of {', '.join(EVALUATORS)}")
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"unknown iou_type {iou_type!r}; expected bbox or segm")
    if max_dets < 10:
        raise ValueError(f"max_dets must be >= 10 (recall is also reported at 1 and 10), got {max_dets}")
    dets = _results_for(results, iou_type)
    if not dets:
        return dict.fromkeys(metric_names(max_dets), 0.0)
    gt = _prepared_gt(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        if evaluator == "faster_coco_eval":
            from faster_coco_eval import COCO, COCOeval_faster

            coco_gt = COCO(gt, print_function=lambda *a, **k: None)
            coco_dt = coco_gt.loadRes(dets)
            ev = COCOeval_faster(coco_gt, coco_dt, iou_type, print_function=lambda *a, **k: None)
        else:
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval

            coco_gt = COCO()
            coco_gt.dataset = gt
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes(dets)
            ev = COCOeval(coco_gt, coco_dt, iou_type)
        if img_ids is not None:
            ev.params.imgIds = sorted(int(i) for i in img_ids)
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
    return summarize(np.asarray(ev.eval["precision"]), np.asarray(ev.eval["recall"]), ev.params.iouThrs,
                     ev.params.maxDets, tuple(ev.params.areaRngLbl))


# --- inference over a loader -------------------------------------------------------------------------

@torch.inference_mode()
def predict(model, loader, device=None, label_to_cat_id=None, progress: bool = False,
            precision: str = "fp32") -> dict[int, list]:
    """``{image_id: COCO result records}`` for every image ``loader`` yields in this process
    (images without detections included, with an empty list); the model runs under ``precision``'s
    autocast (:mod:`dsic.engine.precision`), its coordinates and scores in fp32."""
    model = unwrap(model)
    device = device or next(model.parameters(), torch.empty(0)).device
    label_to_cat_id = label_to_cat_id or loader.dataset.label_to_cat_id
    was_training = model.training
    model.eval()
    results: dict[int, list] = {}
    try:
        for images, targets in tqdm(loader, desc="eval", disable=not progress, leave=False):
            with autocast(device, precision, warn=False, model=model):
                outputs = model([im.to(device, non_blocking=True) for im in images])
            for target, det in zip(targets, outputs):
                image_id = int(target["image_id"])
                results[image_id] = to_coco_results(image_id, det, label_to_cat_id)
    finally:
        model.train(was_training)
    return results


def merge_predictions(parts: list[dict[int, list]]) -> tuple[list[int], list[dict]]:
    """Per-rank ``{image_id: records}`` -> (sorted image ids, records in image order); an image
    present in several parts (sampler padding) is kept once."""
    merged: dict[int, list] = {}
    for part in parts:
        for image_id, records in part.items():
            merged.setdefault(image_id, records)
    ids = sorted(merged)
    return ids, [r for i in ids for r in merged[i]]


def evaluate(model, data_loader, evaluator: str = "faster_coco_eval", iou_types=("bbox",), max_dets: int = 100,
             info: DistInfo | None = None, results_path: str | Path | None = None, progress: bool = False,
             precision: str = "fp32") -> dict:
    """Predict on ``data_loader`` (its dataset a :class:`~dsic.data.coco.CocoDetection`) and run the
    COCO evaluation of each of ``iou_types``.

    Returns ``{iou_type: {metric: fraction}}`` (see the module doc), on every rank. Only the images
    the loader covers are evaluated. ``results_path`` (rank 0) receives the COCO results JSON.
    ``precision``: fp32 | bf16 | fp16 (CUDA), the autocast the model predicts under.
    """
    if evaluator not in EVALUATORS:
        raise ValueError(f"unknown evaluator {evaluator!r}; expected one of {', '.join(EVALUATORS)}")
    info = info or DistInfo()
    dataset = data_loader.dataset
    local = predict(model, data_loader, None, dataset.label_to_cat_id, progress, precision)
    parts = all_gather_objects(local, info)
    metrics = None
    if info.is_main:
        img_ids, results = merge_predictions(parts)
        if results_path is not None:
            results_path = Path(results_path)
            results_path.parent.mkdir(parents=True, exist_ok=True)
            results_path.write_text(json.dumps(results))
        metrics = {t: coco_eval(dataset.coco.dataset, results, t, evaluator, max_dets, img_ids) for t in iou_types}
    return broadcast_object(metrics, info)


def main_eval(config_path, checkpoint, overrides=None, evaluator: str | None = None,
              precision: str = "fp32") -> dict | None:
    """``dsic eval``: evaluate ``checkpoint`` on the config's val split (single process or under
    torchrun) in ``precision`` (fp32 | bf16 | fp16, checked for the device before the model is built);
    ``config_path`` None takes the checkpoint's config. Labels map to the val JSON's category ids
    through the model's classes (``model.classes``; see :mod:`dsic.data.classes`).
    Writes ``output_dir/eval.json`` and ``output_dir/results_eval.json``; returns the metrics on
    rank 0 (None on the other ranks)."""
    from ..config import load_config
    from .builders import make_eval_loader
    from .checkpoint import load_checkpoint
    from .distributed import cleanup, init_distributed
    from .loading import checkpoint_config, load_trained

    cfg = (load_config(config_path, overrides) if config_path is not None
           else checkpoint_config(checkpoint, load_checkpoint(checkpoint), None, overrides))
    evaluator = evaluator or cfg["eval"]["evaluator"]
    info = init_distributed(cfg["device"])
    try:
        check_precision(precision, info.device)
        # the checkpoint's classes, checked against the val annotations before anything runs
        model, cfg, _ = load_trained(checkpoint, config_path, overrides, str(info.device), split="val")
        loader = make_eval_loader(cfg, info)
        out = Path(cfg["output_dir"])
        metrics = evaluate(model, loader, evaluator, cfg["eval"]["iou_types"], cfg["eval"]["max_dets"], info,
                           out / "results_eval.json" if info.is_main else None, progress=_show_progress(info),
                           precision=precision)
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "eval.json").write_text(json.dumps(metrics, indent=2))
            return metrics
        return None
    finally:
        cleanup(info)


def _show_progress(info: DistInfo) -> bool:
    import os
    import sys

    return info.is_main and sys.stderr.isatty() and not os.environ.get("CI")
