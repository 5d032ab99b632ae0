"""COCO evaluation: result conversion, both evaluators agree, perfect = 1, empty = 0, loaders."""

import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from torch.utils.data import DataLoader

from dsic.data.coco import CocoDetection, collate_fn
from dsic.engine.evaluate import coco_eval, evaluate, merge_predictions, summarize, to_coco_results

from .helpers import write_coco

CATS = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}, {"id": 11, "name": "eel"}]


def rect_poly(x, y, w, h):
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def make_gt(num_images=6, seed=0, size=160):
    """Images of ``size`` px with 1-5 rectangles / triangles of every COCO size class, a crowd one."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(1, num_images + 1):
        images.append({"id": i, "file_name": f"{i}.png", "width": size, "height": size})
        for j in range(rng.integers(1, 6)):
            w, h = (int(v) for v in rng.choice([6, 12, 20, 40, 70, 110, 130], 2)) if j else (120, 100)
            x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            if rng.random() < 0.3:  # a triangle: mask and box differ
                seg = [[x, y, x + w, y + h, x, y + h]]
            else:
                seg = rect_poly(x, y, w, h)
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, size, size))
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(rng.choice([3, 7, 11])),
                         "bbox": [x, y, w, h], "area": float(mask_utils.area(rle)), "segmentation": seg,
                         "iscrowd": 0})
    anns[-1]["iscrowd"] = 1
    return {"images": images, "annotations": anns, "categories": CATS}


def gt_mask(ann, size):
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], size, size)))


def rle_of(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def perturbed_results(gt, seed=1, size=160):
    """Jittered boxes and shifted masks with random scores, wrong classes, misses and false positives."""
    rng = np.random.default_rng(seed)
    results = []
    for ann in gt["annotations"]:
        if rng.random() < 0.15:
            continue  # a miss
        for _ in range(rng.integers(1, 3)):  # sometimes a duplicate
            x, y, w, h = ann["bbox"]
            jit = rng.normal(0, 0.12, 4) * np.array([w, h, w, h])
            box = [float(x + jit[0]), float(y + jit[1]), float(max(1.0, w + jit[2])), float(max(1.0, h + jit[3]))]
            mask = np.roll(gt_mask(ann, size), tuple(int(v) for v in rng.integers(-3, 4, 2)), axis=(0, 1))
            cat = ann["category_id"] if rng.random() < 0.85 else int(rng.choice([3, 7, 11]))
            results.append({"image_id": ann["image_id"], "category_id": cat, "bbox": box,
                            "score": float(rng.random()), "segmentation": rle_of(mask)})
    for img in gt["images"]:  # false positives
        for _ in range(25):
            x, y = (float(v) for v in rng.integers(0, size - 30, 2))
            mask = np.zeros((size, size), np.uint8)
            mask[int(y):int(y) + 20, int(x):int(x) + 25] = 1
            results.append({"image_id": img["id"], "category_id": 3, "bbox": [x, y, 25.0, 20.0], "score": float(rng.random()),
                            "segmentation": rle_of(mask)})
    return results


def perfect_results(gt, size=160):
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]), "score": 0.9,
             "segmentation": rle_of(gt_mask(a, size))} for a in gt["annotations"] if not a["iscrowd"]]


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_perfect_predictions_give_one_with_both_evaluators(iou_type):
    gt = make_gt()
    for evaluator in ("faster_coco_eval", "pycocotools"):
        m = coco_eval(gt, perfect_results(gt), iou_type, evaluator)
        for name in ("AP", "AP50", "AP75", "AR1" if False else "AR100"):
            assert m[name] == pytest.approx(1.0), (evaluator, name, m)
        assert all(v == pytest.approx(1.0) or v == -1 for k, v in m.items() if k not in ("AR1", "AR10")), m


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
@pytest.mark.parametrize("max_dets", [100, 12])
def test_both_evaluators_give_identical_numbers(iou_type, max_dets):
    gt = make_gt(num_images=8, seed=2)
    results = perturbed_results(gt, seed=3)
    fast = coco_eval(gt, results, iou_type, "faster_coco_eval", max_dets)
    ref = coco_eval(gt, results, iou_type, "pycocotools", max_dets)
    assert set(fast) == set(ref) and f"AR{max_dets}" in ref
    if max_dets < 100:  # fewer detections kept per image and class: other numbers
        assert ref["AP"] != coco_eval(gt, results, iou_type, "pycocotools")["AP"]
    assert 0.1 < ref["AP"] < 0.95 and min(ref["APs"], ref["APm"], ref["APl"]) > 0  # a non-trivial case
    for k in ref:
        assert fast[k] == pytest.approx(ref[k], abs=1e-9), (k, fast[k], ref[k])


def test_summary_matches_pycocotools_own_summary():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = make_gt(num_images=8, seed=4)
    results = perturbed_results(gt, seed=5)
    coco = COCO()
    coco.dataset = json.loads(json.dumps(gt))
    coco.createIndex()
    ev = COCOeval(coco, coco.loadRes([{k: v for k, v in r.items() if k != "segmentation"} for r in results]), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    ours = summarize(ev.eval["precision"], ev.eval["recall"], ev.params.iouThrs, ev.params.maxDets)
    assert list(ours.values()) == pytest.approx(list(ev.stats), abs=1e-12)
    assert ours == pytest.approx(coco_eval(gt, results, "bbox", "pycocotools"), abs=1e-12)


def test_empty_and_partial_predictions():
    gt = make_gt()
    for evaluator in ("faster_coco_eval", "pycocotools"):
        for iou_type in ("bbox", "segm"):
            assert set(coco_eval(gt, [], iou_type, evaluator).values()) == {0.0}
    # restricting to the predicted images: one perfectly predicted image gives 1
    one = [r for r in perfect_results(gt) if r["image_id"] == 1]
    assert coco_eval(gt, one, "bbox", img_ids=[1])["AP50"] == pytest.approx(1.0)
    assert coco_eval(gt, one, "bbox")["AP50"] < 0.6  # the other images' objects count as misses
    assert gt == make_gt()  # the ground truth is not modified
    with pytest.raises(ValueError, match="unknown evaluator 'detectron'"):
        coco_eval(gt, one, "bbox", "detectron")


def test_to_coco_results_converts_boxes_labels_and_masks():
    masks = torch.zeros(2, 1, 20, 30)
    masks[0, 0, 2:6, 3:13] = 0.9
    masks[1, 0, :, :] = 0.4  # below the 0.5 threshold: empty mask
    det = {"boxes": torch.tensor([[3.0, 2.0, 13.0, 6.0], [0.5, 1.5, 30.0, 20.0]]),
           "labels": torch.tensor([1, 3]), "scores": torch.tensor([0.9, 0.25]), "masks": masks}
    out = to_coco_results(42, det, lambda label: [3, 7, 11][label - 1])
    assert [r["category_id"] for r in out] == [3, 11] and [r["image_id"] for r in out] == [42, 42]
    assert out[0]["bbox"] == pytest.approx([3.0, 2.0, 10.0, 4.0]) and out[1]["bbox"] == pytest.approx([0.5, 1.5, 29.5, 18.5])
    assert out[1]["score"] == pytest.approx(0.25)
    decoded = mask_utils.decode({**out[0]["segmentation"], "counts": out[0]["segmentation"]["counts"].encode()})
    assert decoded.shape == (20, 30) and decoded.sum() == 40 and decoded[2:6, 3:13].all()
    assert mask_utils.area(out[1]["segmentation"]) == 0
    json.dumps(out)  # serialisable
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "scores": torch.zeros(0)}
    assert to_coco_results(1, empty, lambda label: label) == []


def test_merge_predictions_keeps_padded_duplicates_once():
    a = {1: [{"image_id": 1, "score": 0.5}], 3: []}
    b = {2: [{"image_id": 2, "score": 0.7}], 1: [{"image_id": 1, "score": 0.5}]}  # 1 padded onto rank 1
    ids, results = merge_predictions([a, b])
    assert ids == [1, 2, 3] and [r["image_id"] for r in results] == [1, 2]


class Oracle(torch.nn.Module):
    """Returns the dataset's own targets (labels 1..K, masks as probabilities) in loader order."""

    def __init__(self, dataset, empty=False):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.targets = [dataset[i][1] for i in range(len(dataset))]
        self.empty = empty
        self.cursor = 0

    def forward(self, images):
        assert not self.training
        out = []
        for _ in images:
            t = self.targets[self.cursor]
            self.cursor += 1
            n = 0 if self.empty else len(t["boxes"])
            out.append({"boxes": t["boxes"][:n], "labels": t["labels"][:n], "scores": torch.full((n,), 0.8),
                        "masks": t["masks"][:n, None].float()})
        return out


@pytest.fixture
def coco_dir(tmp_path):
    gt = make_gt(num_images=5, seed=7)
    images = [dict(im) for im in gt["images"]]
    anns = [a for a in gt["annotations"] if not a["iscrowd"]]
    img_dir, ann_file = write_coco(tmp_path, images, anns, CATS)
    return img_dir, ann_file


@pytest.mark.parametrize("evaluator", ["faster_coco_eval", "pycocotools"])
def test_evaluate_a_loader_end_to_end(coco_dir, tmp_path, evaluator):
    dataset = CocoDetection(*coco_dir, with_masks=True)
    loader = DataLoader(dataset, batch_size=2, collate_fn=collate_fn)
    model = Oracle(dataset).train()
    metrics = evaluate(model, loader, evaluator, ("bbox", "segm"), results_path=tmp_path / "res.json")
    assert model.training  # the mode is restored
    for iou_type in ("bbox", "segm"):
        assert metrics[iou_type]["AP"] == pytest.approx(1.0) and metrics[iou_type]["AP50"] == pytest.approx(1.0)
    results = json.loads((tmp_path / "res.json").read_text())
    n = len(dataset.coco.dataset["annotations"])
    assert len(results) == n and {r["category_id"] for r in results} <= {3, 7, 11}
    assert sorted(r["category_id"] for r in results) == sorted(a["category_id"] for a in dataset.coco.dataset["annotations"])
    empty = evaluate(Oracle(dataset, empty=True).eval(), loader, evaluator, ("bbox", "segm"))
    assert empty == {t: dict.fromkeys(empty[t], 0.0) for t in ("bbox", "segm")}
