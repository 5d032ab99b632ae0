import json
import math

import pytest
import torch

from dsic.config import load_config
from dsic.engine.checkpoint import load_checkpoint, save_atomic
from dsic.engine.evaluate import coco_eval
from dsic.engine.schedule import WarmupMultiStep, scaled_lr
from dsic.engine.train import train

from .conftest import tiny_overrides


def test_lr_policy_numbers():
    policy = WarmupMultiStep([100, 150], gamma=0.1, warmup_iters=10, warmup_factor=0.001)
    assert policy(0) == pytest.approx(0.001)
    assert policy(5) == pytest.approx(0.001 * 0.5 + 0.5)
    assert policy(10) == 1.0 and policy(99) == 1.0
    assert policy(100) == pytest.approx(0.1) and policy(150) == pytest.approx(0.01)
    assert scaled_lr(0.02, 2, 8, 16) == pytest.approx(0.02)
    assert scaled_lr(0.02, 2, 1, 16) == pytest.approx(0.0025)


def test_atomic_save_leaves_no_partial_file(tmp_path):
    path = tmp_path / "ck.pth"
    save_atomic({"a": torch.ones(3)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_atomic({"a": torch.zeros(3), "b": Unpicklable()}, path)
    assert torch.equal(load_checkpoint(path)["a"], torch.ones(3))  # the old checkpoint survives
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pth"]  # and no temporary file is left
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_checkpoint(tmp_path / "missing.pth")


def test_exact_resume_matches_an_uninterrupted_run(tiny_synth, tmp_path):
    full = train(load_config(None, tiny_overrides(tiny_synth, tmp_path / "full", "train.epochs=2",
                                                  "model.neck=dsic", "train.steps=[1]")))
    load_config(None, [])  # no state leaks between runs
    half = tiny_overrides(tiny_synth, tmp_path / "half", "train.epochs=2", "model.neck=dsic", "train.steps=[1]")
    train(load_config(None, half + ["train.max_iters=3"]))  # stops after epoch 1 (3 iterations / epoch)
    assert load_checkpoint(tmp_path / "half" / "last.pth")["epoch"] == 1
    train(load_config(None, half), resume=True)
    a = load_checkpoint(tmp_path / "full" / "final.pth")["model"]
    b = load_checkpoint(tmp_path / "half" / "final.pth")["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in log if "lr" in r]
    assert lrs[-1] == pytest.approx(0.001)  # decayed at the end of epoch 1
    assert full["output_dir"] == str(tmp_path / "full")


def test_non_finite_loss_stops_with_the_iteration_and_saves(tiny_synth, tmp_path):
    cfg = load_config(None, tiny_overrides(tiny_synth, tmp_path, "train.epochs=1", "model.neck=fpn",
                                           "train.base_lr=1e12", "train.warmup_iters=0"))
    with pytest.raises(FloatingPointError, match=r"non-finite loss at iteration \d+ \(epoch 1\)"):
        train(cfg)
    assert (tmp_path / "interrupted.pth").is_file()
    state = load_checkpoint(tmp_path / "interrupted.pth")
    assert {"model", "optimizer", "iteration", "rng", "config"} <= set(state)


GT = {
    "images": [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 5, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 6, "bbox": [50, 50, 40, 30], "area": 1200, "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 5, "bbox": [0, 0, 99, 99], "area": 9801, "iscrowd": 0},
    ],
    "categories": [{"id": 5, "name": "a"}, {"id": 6, "name": "b"}],
}


def test_perfect_detections_give_ap_one_with_both_evaluators():
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
               for a in GT["annotations"]]
    for evaluator in ("faster_coco_eval", "pycocotools"):
        m = coco_eval(GT, results, "bbox", evaluator)
        assert m["AP"] == pytest.approx(1.0) and m["AP50"] == pytest.approx(1.0)
    assert coco_eval(GT, [], "bbox")["AP"] == 0.0


def test_both_evaluators_give_identical_numbers():
    g = torch.Generator().manual_seed(0)
    results = []
    for a in GT["annotations"]:
        for j in range(4):
            jitter = (torch.rand(4, generator=g) * 8 - 4).tolist()
            box = [max(0.0, v + d) for v, d in zip(a["bbox"], jitter)]
            results.append({"image_id": a["image_id"], "category_id": 5 if j % 3 else 6, "bbox": box,
                            "score": float(torch.rand(1, generator=g))})
    fast = coco_eval(GT, results, "bbox", "faster_coco_eval")
    ref = coco_eval(GT, results, "bbox", "pycocotools")
    assert 0 < ref["AP"] < 1
    for k in ref:
        assert math.isclose(fast[k], ref[k], abs_tol=1e-9), (k, fast[k], ref[k])
