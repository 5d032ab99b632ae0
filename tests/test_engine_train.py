"""Training loop on a tiny stand-in detector: logs, lr values, checkpoints, exact resume, failures."""

import json
import math
import os
import signal

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign

from dsic.config import load_config
from dsic.demo import data_overrides
from dsic.engine.checkpoint import load_checkpoint
from dsic.engine.evaluate import main_eval
from dsic.engine.schedule import late_steps
from dsic.engine.train import NonFiniteLossError, TrainingInterrupted, main_train, train


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: these steps are too small to gain from more, and on a shared CPU the
    thread hand-offs cost far more than the work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Tiny(nn.Module):
    """A 3-conv Faster R-CNN (~20 ms per step) that can fail on its ``fail_at``-th training call."""

    def __init__(self, num_classes: int, fail_at: int | None = None, error=KeyboardInterrupt, nan_at=None):
        super().__init__()
        body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
                             nn.Conv2d(16, 16, 3, 2, 1), nn.GroupNorm(4, 16), nn.ReLU())
        body.out_channels = 16
        self.det = FasterRCNN(
            body, num_classes=None, min_size=96, max_size=96,
            rpn_anchor_generator=AnchorGenerator(((16, 32, 64),), ((0.5, 1.0, 2.0),)),
            box_roi_pool=MultiScaleRoIAlign(["0"], 4, 2), box_head=TwoMLPHead(16 * 16, 32),
            box_predictor=FastRCNNPredictor(32, num_classes + 1), rpn_batch_size_per_image=32,
            box_batch_size_per_image=32, rpn_pre_nms_top_n_train=100, rpn_post_nms_top_n_train=50,
            rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50, box_score_thresh=0.0)
        self.fail_at, self.error, self.nan_at, self.calls = fail_at, error, nan_at, 0

    def forward(self, images, targets=None):
        if self.training:
            self.calls += 1
            if self.calls == self.fail_at:
                raise self.error("boom")
        out = self.det(images, targets)
        if self.training and self.calls == self.nan_at:
            out = {k: v * float("nan") for k, v in out.items()}
        return out


def factory(**kw):
    return lambda cfg: Tiny(cfg["model"]["num_classes"], **kw)


def overrides(data, out, *extra):
    return [
        *data_overrides(data),
        "data.num_workers=0", "model.num_classes=10", "train.batch_size=4", "train.base_batch_size=8",
        "train.base_lr=0.02", "train.warmup_iters=2", "train.warmup_factor=0.1", "train.log_every=1",
        "train.eval_every=0", "train.epochs=3", "train.steps=[2]", f"output_dir={out}", *extra,
    ]


def cfg_for(data, out, *extra):
    return load_config(None, overrides(data, out, *extra))


def read_log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def weights(out, name="final.pth"):
    return load_checkpoint(out / name)["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def full_run(tiny_synth, tmp_path_factory):
    """The uninterrupted reference run: 3 epochs of 3 iterations, lr drop after epoch 2."""
    out = tmp_path_factory.mktemp("full")
    result = train(cfg_for(tiny_synth, out, "train.grad_clip=5.0"), factory())
    return out, result


def test_outputs_log_and_lr_values(full_run):
    out, result = full_run
    assert result["iteration"] == 9 and result["epoch"] == 3 and result["metrics"] is None
    log = [r for r in read_log(out) if "loss" in r]
    assert [r["iter"] for r in log] == list(range(1, 10)) and [r["epoch"] for r in log] == [1] * 3 + [2] * 3 + [3] * 3
    # lr = 0.02 * 4 / 8 = 0.01; warmup 0.1 -> 1 over 2 iterations; x0.1 from epoch 3 (iteration index 6)
    assert [r["lr"] for r in log] == pytest.approx([0.001, 0.0055] + [0.01] * 4 + [0.001] * 3)
    rec = log[0]
    assert {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg", "time", "data_time",
            "grad_norm"} <= set(rec)
    assert rec["loss"] == pytest.approx(sum(rec[k] for k in rec if k.startswith("loss_")))
    last = load_checkpoint(out / "last.pth")
    assert {"model", "optimizer", "scheduler", "scaler", "epoch", "epoch_iter", "iteration", "rng",
            "rng_per_rank", "config"} <= set(last)
    assert (last["epoch"], last["epoch_iter"], last["iteration"]) == (3, 0, 9)
    assert {"python", "numpy", "torch"} <= set(last["rng"]) and len(last["rng_per_rank"]) == 1
    assert last["config"]["train"]["grad_clip"] == 5.0
    final = load_checkpoint(out / "final.pth")
    assert set(final) == {"model", "config", "epoch", "iteration", "ema"} and final["ema"] is False
    assert load_config(out / "config.yaml")["train"]["steps"] == [2]  # the resolved config is a valid config
    assert not list(out.glob(".*tmp")) and not (out / "interrupted.pth").exists()


def test_resume_from_an_epoch_boundary_is_exact(full_run, tiny_synth, tmp_path):
    ref, _ = full_run
    train(cfg_for(tiny_synth, tmp_path, "train.grad_clip=5.0", "train.max_iters=3"), factory())  # stops after epoch 1
    state = load_checkpoint(tmp_path / "last.pth")
    assert (state["epoch"], state["epoch_iter"], state["iteration"]) == (1, 0, 3)
    result = train(cfg_for(tiny_synth, tmp_path, "train.grad_clip=5.0"), factory(), resume=True)
    assert result["iteration"] == 9
    assert_same_weights(weights(ref), weights(tmp_path))
    ref_opt = load_checkpoint(ref / "last.pth")["optimizer"]["state"]
    opt = load_checkpoint(tmp_path / "last.pth")["optimizer"]["state"]
    for k in ref_opt:
        assert torch.equal(ref_opt[k]["momentum_buffer"], opt[k]["momentum_buffer"])
    log, ref_log = read_log(tmp_path), read_log(ref)
    assert [r["iter"] for r in log] == list(range(1, 10))  # no duplicates after resuming
    assert [r["loss"] for r in log] == [r["loss"] for r in ref_log]


def test_resume_in_the_middle_of_an_epoch_is_exact(full_run, tiny_synth, tmp_path):
    ref, _ = full_run
    train(cfg_for(tiny_synth, tmp_path, "train.grad_clip=5.0", "train.max_iters=5"), factory())
    state = load_checkpoint(tmp_path / "last.pth")
    assert (state["epoch"], state["epoch_iter"], state["iteration"]) == (1, 2, 5)
    train(cfg_for(tiny_synth, tmp_path, "train.grad_clip=5.0"), factory(), resume=True)
    assert_same_weights(weights(ref), weights(tmp_path))
    assert [r["loss"] for r in read_log(tmp_path)] == [r["loss"] for r in read_log(ref)]


def test_ctrl_c_saves_the_state_and_resume_continues_exactly(full_run, tiny_synth, tmp_path):
    ref, _ = full_run
    cfg = cfg_for(tiny_synth, tmp_path, "train.grad_clip=5.0")
    with pytest.raises(KeyboardInterrupt):
        train(cfg, factory(fail_at=5))  # interrupted during the 2nd step of epoch 2
    state = load_checkpoint(tmp_path / "interrupted.pth")
    assert (state["epoch"], state["epoch_iter"], state["iteration"]) == (1, 1, 4)
    assert "KeyboardInterrupt" in state["reason"]
    assert load_checkpoint(tmp_path / "last.pth")["iteration"] == 3  # the end of epoch 1
    train(cfg, factory(), resume=True)  # picks the newer interrupted.pth
    assert_same_weights(weights(ref), weights(tmp_path))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_update_waits_for_the_update(full_run, tiny_synth, tmp_path, sig):
    ref, _ = full_run
    count = {"steps": 0}
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def hook(optimizer, args, kwargs):  # the signal arrives inside optimizer.step of iteration 7
        count["steps"] += 1
        if count["steps"] == 7:
            os.kill(os.getpid(), sig)

    handle = register_optimizer_step_post_hook(hook)
    try:
        with pytest.raises(TrainingInterrupted, match=sig.name):
            train(cfg_for(tiny_synth, tmp_path, "train.grad_clip=5.0"), factory())
    finally:
        handle.remove()
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # handlers restored
    state = load_checkpoint(tmp_path / "interrupted.pth")
    assert (state["epoch"], state["epoch_iter"], state["iteration"]) == (2, 1, 7)  # step 7 completed
    train(cfg_for(tiny_synth, tmp_path, "train.grad_clip=5.0"), factory(), resume=True)
    assert_same_weights(weights(ref), weights(tmp_path))


def test_non_finite_loss_names_the_iteration_after_saving(tiny_synth, tmp_path):
    cfg = cfg_for(tiny_synth, tmp_path)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at iteration 5 \(epoch 2\): loss_classifier=nan"
                                                 r".*state before it is saved in .*interrupted.pth"):
        train(cfg, factory(nan_at=5))
    state = load_checkpoint(tmp_path / "interrupted.pth")
    assert state["iteration"] == 4 and "non-finite" in state["reason"]
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert isinstance(NonFiniteLossError("x"), FloatingPointError)


def test_an_exception_mid_epoch_saves_and_reraises(tiny_synth, tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        train(cfg_for(tiny_synth, tmp_path), factory(fail_at=2, error=RuntimeError))
    state = load_checkpoint(tmp_path / "interrupted.pth")
    assert state["iteration"] == 1 and state["reason"] == "RuntimeError: boom"


def test_evaluation_during_training(tiny_synth, tmp_path):
    result = train(cfg_for(tiny_synth, tmp_path, "train.epochs=2", "train.eval_every=1",
                           "train.checkpoint_every=0", "eval.evaluator=pycocotools"), factory())
    for epoch in (1, 2):
        metrics = json.loads((tmp_path / f"eval_epoch{epoch}.json").read_text())
        assert set(metrics) == {"bbox"} and -1 <= metrics["bbox"]["AP"] <= 1
        results = json.loads((tmp_path / f"results_epoch{epoch}.json").read_text())
        assert all(set(r) == {"image_id", "category_id", "bbox", "score"} for r in results)
    assert result["metrics"] == metrics
    evals = [r for r in read_log(tmp_path) if "eval" in r]
    assert [(r["epoch"], r["iter"]) for r in evals] == [(1, 3), (2, 6)] and evals[-1]["eval"] == metrics


def test_max_iters_stops_mid_epoch_and_evaluates(tiny_synth, tmp_path):
    result = train(cfg_for(tiny_synth, tmp_path, "train.max_iters=2", "train.eval_every=5"), factory())
    assert result["iteration"] == 2 and (tmp_path / "eval_epoch1.json").is_file()  # the end always evaluates
    assert load_checkpoint(tmp_path / "last.pth")["epoch_iter"] == 2


def test_max_iters_past_the_schedule_is_said_once(tiny_synth, tmp_path, capsys):
    result = train(cfg_for(tiny_synth, tmp_path, "train.epochs=1", "train.max_iters=50"), factory())
    assert result["iteration"] == 3
    said = [line for line in capsys.readouterr().err.splitlines() if "max_iters" in line]
    assert said == [("[dsic] train.max_iters = 50 is past the end of the schedule (1 epoch x 3 iterations = 3); "
                     "training stops at iteration 3")]


def test_main_train_builds_the_configured_detector(tiny_synth, tmp_path):
    """The config path end to end with the real builder (resnet_tiny + DSIC neck), one step."""
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text("model: {backbone: resnet_tiny, norm: gn, trainable_layers: 5, out_channels: 16,\n"
                        "        min_size: 96, max_size: 96, anchor_sizes: [16, 32, 64, 128, 256]}\n")
    result = main_train(cfg_file, overrides(tiny_synth, tmp_path / "run", "train.max_iters=1"))
    final = load_checkpoint(tmp_path / "run" / "final.pth")
    assert result["iteration"] == 1 and any("neck" in k for k in final["model"])
    assert final["config"]["model"]["neck"] == "dsic"
    assert all(math.isfinite(r["loss"]) for r in read_log(tmp_path / "run"))
    # and main_eval reads the config and the checkpoint back in a single process
    eval_overrides = overrides(tiny_synth, tmp_path / "eval") + ["model.detector_cfg={box_score_thresh: 0.0}"]
    metrics = main_eval(cfg_file, tmp_path / "run" / "final.pth", eval_overrides, evaluator="pycocotools")
    assert set(metrics) == {"bbox"} and 0 <= metrics["bbox"]["AR100"] <= 1
    assert json.loads((tmp_path / "eval" / "eval.json").read_text()) == metrics
    assert len(json.loads((tmp_path / "eval" / "results_eval.json").read_text())) > 0


def test_loader_workers_do_not_change_the_result(full_run, tiny_synth, tmp_path):
    """Augmentation is seeded per sample: 2 loader processes train the same weights as none, and
    a run resumed mid-epoch with workers still matches the uninterrupted run."""
    ref, _ = full_run
    cfg = cfg_for(tiny_synth, tmp_path, "train.grad_clip=5.0", "data.num_workers=2", "train.max_iters=4")
    train(cfg, factory())
    train(cfg_for(tiny_synth, tmp_path, "train.grad_clip=5.0", "data.num_workers=2"), factory(), resume=True)
    assert_same_weights(weights(ref), weights(tmp_path))


def test_a_second_ctrl_c_waits_for_the_checkpoint(tiny_synth, tmp_path, monkeypatch):
    import dsic.engine.train as train_mod

    real_save = train_mod.save_atomic

    def impatient_save(obj, path):  # the user presses Ctrl-C again while the state is being saved
        os.kill(os.getpid(), signal.SIGINT)
        return real_save(obj, path)

    monkeypatch.setattr(train_mod, "save_atomic", impatient_save)
    with pytest.raises(KeyboardInterrupt):
        train(cfg_for(tiny_synth, tmp_path), factory(fail_at=2))
    assert load_checkpoint(tmp_path / "interrupted.pth")["iteration"] == 1


def test_lr_steps_past_the_end_of_training_are_said_once(tiny_synth, tmp_path, capsys):
    """A drop at or past the last iteration never happens (detectron2 warns for SOLVER.STEPS past MAX_ITER)."""
    train(cfg_for(tiny_synth, tmp_path, "train.epochs=1", "train.steps=[0.5,1,3]"), factory())
    said = [line for line in capsys.readouterr().err.splitlines() if "train.steps" in line]
    assert said == [("[dsic] train.steps = [0.5, 1, 3] (in epochs): [1, 3] at or past the end of training "
                    "(iteration 3); the lr is not lowered there")]


def test_late_steps_are_those_at_or_past_the_end():
    assert late_steps([0.5, 1, 3], iters_per_epoch=3, end=3) == [1, 3]
    assert late_steps([0.5, 1], iters_per_epoch=4, end=4) == [1]
    assert late_steps([0.75, 0.9], iters_per_epoch=1600, end=1600) == []
