"""Faults and bad input end with one clear message, never run code and never lose or mix up a run."""

import json
import os
import re
from pathlib import Path

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from dsic.cli import main
from dsic.engine.checkpoint import CheckpointError, load_checkpoint, load_weights_file, save_atomic
from dsic.engine.train import NonFiniteLossError, train

from .conftest import tiny_overrides
from .test_engine_train import Tiny, cfg_for, factory

pytestmark = pytest.mark.usefixtures("one_thread")


class RunsCode:
    """A pickle that runs a shell command when it is loaded (what a malicious checkpoint holds)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def evil(tmp_path):
    """A checkpoint-looking file whose 'model' runs ``touch marker`` when unpickled; returns (file, marker)."""
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    torch.save({"model": RunsCode(marker), "iteration": 3}, path)
    return path, marker


REFUSED = r"evil.pth: not a plain weights file: it wants to run or build \S*system, which could execute code"


def test_the_safe_loader_refuses_code_and_names_the_file(evil):
    path, marker = evil
    with pytest.raises(CheckpointError, match=REFUSED):
        load_weights_file(path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2])
def test_a_bare_pickle_that_runs_code_is_refused(tmp_path, protocol):
    """Not made by torch.save: a protocol-0 pickle (text) is not a PyTorch file; a binary one is read
    by the weights-only unpickler, which refuses it. Neither runs."""
    import pickle

    marker, path = tmp_path / "code_ran", tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(RunsCode(marker), protocol=protocol))
    reason = "not a PyTorch file" if protocol == 0 else REFUSED
    with pytest.raises(CheckpointError, match=reason):
        load_weights_file(path)
    assert not marker.exists()


@pytest.mark.parametrize("command", ["eval", "predict", "visualize"])
def test_no_cli_entry_point_runs_code_from_a_checkpoint(evil, tiny_synth, tmp_path, command, capsys):
    path, marker = evil
    cfg = tmp_path / "c.yaml"
    cfg.write_text("{}\n")
    overrides = tiny_overrides(tiny_synth, tmp_path / "out")
    image = str(next((tiny_synth / "val").iterdir()))
    argv = {"eval": ["eval", str(cfg), str(path), *overrides],
            "predict": ["predict", str(cfg), str(path), image, "--out", str(tmp_path / "p"), "--set", *overrides],
            "visualize": ["visualize", str(cfg), str(path), image, "--out", str(tmp_path / "v"), "--set", *overrides]}
    assert main(argv[command]) == 2  # one line, exit status 2 (the CLI maps user errors)
    err = capsys.readouterr().err
    assert re.search(REFUSED, err) and err.count("\n") == 1, err
    assert not marker.exists()


@pytest.mark.parametrize("key", ["model.init_from", "model.pretrained_backbone"])
def test_weights_named_in_the_config_cannot_run_code(evil, tiny_synth, tmp_path, key, capsys):
    path, marker = evil
    cfg = tmp_path / "c.yaml"
    cfg.write_text("{}\n")
    argv = ["train", str(cfg), *tiny_overrides(tiny_synth, tmp_path / "out", "train.max_iters=1"), f"{key}={path}"]
    assert main(argv) == 2
    assert re.search(REFUSED, capsys.readouterr().err)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["last.pth", "interrupted.pth", "given"])
def test_resume_cannot_run_code(evil, tiny_synth, tmp_path, name):
    path, marker = evil
    out = tmp_path / "run"
    out.mkdir()
    target = path if name == "given" else out / name
    if name != "given":
        target.write_bytes(path.read_bytes())
    cfg = load_tiny(tiny_synth, out, "train.max_iters=1")
    with pytest.raises(CheckpointError, match=REFUSED.replace("evil.pth", target.name)):
        train(cfg, resume=target if name == "given" else True)
    assert not marker.exists()
    assert not (out / "final.pth").exists()


def load_tiny(data, out, *extra):
    from dsic.config import load_config

    return load_config(None, tiny_overrides(data, out, *extra))


def test_own_checkpoints_load_weights_only(tmp_path):
    """last.pth holds RNG states: they are plain data now, and older ones with NumPy arrays still load."""
    import numpy as np

    from dsic.engine.checkpoint import rng_state

    state = rng_state()
    save_atomic({"rng": state}, tmp_path / "a.pth")
    assert load_weights_file(tmp_path / "a.pth")["rng"]["numpy"][1] == state["numpy"][1]
    save_atomic({"rng": {"numpy": np.random.get_state()}}, tmp_path / "old.pth")
    assert load_weights_file(tmp_path / "old.pth")["rng"]["numpy"][0] == "MT19937"


# --- config: numbers that cannot train ----------------------------------------------------------

@pytest.mark.parametrize("override, message", [
    ("train.base_lr=.nan", "'train.base_lr' = nan is not a finite number"),
    ("train.base_lr=.inf", "'train.base_lr' = inf is not a finite number"),
    ("train.base_lr=1e400", "'train.base_lr' = inf is not a finite number"),
    ("data.hflip_prob=.nan", "'data.hflip_prob' = nan is not a finite number"),
    ("train.steps=[8, .nan]", r"'train.steps' = \[8, nan\] is not a finite number"),
    ("train.momentum=5", r"'train.momentum' = 5 is out of range \(must be >= 0 and < 1\)"),
    ("train.weight_decay=2", r"'train.weight_decay' = 2 is out of range \(must be >= 0 and < 1\)"),
    ("train.gamma=100", r"'train.gamma' = 100 is out of range \(must be >= 0 and <= 1\)"),
])
def test_config_rejects_non_finite_and_out_of_range_numbers(override, message):
    from dsic.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=rf"^override '{re.escape(override)}': {message}$"):
        load_config(None, [override])


# --- the non-finite guard -----------------------------------------------------------------------

class InfGrad(torch.autograd.Function):
    """Identity forward, infinite gradient backward: a finite loss whose gradients are not."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


def strict_json_lines(path):
    def refuse(token):
        raise ValueError(f"{token} is not JSON")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def finite(state):
    return all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


@pytest.mark.parametrize("extra", ["train.grad_clip=null", "train.grad_clip=5.0", "train.amp=bf16"])
def test_a_non_finite_gradient_never_reaches_the_weights(tiny_synth, tmp_path, extra):
    class GradBomb(Tiny):
        def forward(self, images, targets=None):
            out = super().forward(images, targets)
            return {k: InfGrad.apply(v) for k, v in out.items()} if self.training and self.calls == 5 else out

    cfg = cfg_for(tiny_synth, tmp_path, extra)  # bf16 autocast has no loss scaler: the guard checks
    with pytest.raises(NonFiniteLossError, match=r"^non-finite gradient at iteration 5 \(epoch 2\): loss_classifier="
                                                 r"[0-9.e+-]+, .*; in \d+ tensor\(s\): det\..*; the state before it "
                                                 r"is saved in .*interrupted.pth$"):
        train(cfg, lambda c: GradBomb(10))
    state = load_checkpoint(tmp_path / "interrupted.pth")
    assert state["iteration"] == 4 and finite(state) and "non-finite gradient at iteration 5" in state["reason"]
    assert [r["iter"] for r in strict_json_lines(tmp_path / "log.jsonl")] == [1, 2, 3, 4]


def test_weights_that_overflow_are_never_saved_and_resume_uses_the_last_finite_state(tiny_synth, tmp_path):
    count = {"steps": 0}

    def overflow(optimizer, args, kwargs):  # the 5th update overflows one weight tensor
        count["steps"] += 1
        if count["steps"] == 5:
            optimizer.param_groups[0]["params"][0].data.fill_(float("inf"))

    cfg = cfg_for(tiny_synth, tmp_path)
    handle = register_optimizer_step_post_hook(overflow)
    try:
        with pytest.raises(NonFiniteLossError, match=r"^non-finite weights at iteration 5 \(epoch 2\): .*in 1 "
                                                     r"tensor\(s\): det.backbone.0.weight; the last finite state "
                                                     r"is .*last.pth \(the last checkpoint\)$"):
            train(cfg, factory())
    finally:
        handle.remove()
    assert not (tmp_path / "interrupted.pth").exists()
    assert load_checkpoint(tmp_path / "last.pth")["iteration"] == 3
    assert train(cfg, factory(), resume=True)["iteration"] == 9
    assert finite(load_checkpoint(tmp_path / "final.pth"))


def test_a_huge_lr_stops_with_every_saved_state_finite(tiny_synth, tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"^non-finite (loss|gradient|weights) at iteration \d+"):
        train(cfg_for(tiny_synth, tmp_path, "train.base_lr=1e30", "train.warmup_iters=0"), factory())
    saved = [p for p in (tmp_path / "last.pth", tmp_path / "interrupted.pth") if p.exists()]
    assert saved and all(finite(load_checkpoint(p)) for p in saved)
    assert not (tmp_path / "final.pth").exists()
    strict_json_lines(tmp_path / "log.jsonl")


def test_log_lines_are_strict_json(tmp_path):
    from dsic.engine.train import JsonLog

    log = JsonLog(tmp_path / "log.jsonl")
    log.write({"iter": 1, "loss": float("nan"), "grad_norm": float("inf"), "eval": {"bbox": {"AP": float("-inf")}}})
    assert strict_json_lines(tmp_path / "log.jsonl") == [{"iter": 1, "loss": None, "grad_norm": None,
                                                          "eval": {"bbox": {"AP": None}}}]


# --- resume: the right state of the right run ------------------------------------------------------

def test_resume_refuses_another_runs_checkpoint_naming_the_keys(tiny_synth, tmp_path):
    train(cfg_for(tiny_synth, tmp_path, "train.max_iters=2"), factory())
    before = (tmp_path / "final.pth").read_bytes()
    with pytest.raises(CheckpointError, match=r"last.pth belongs to another run \(train.seed: 0 in the checkpoint, "
                                              r"1 now\): resume with that run's config, or train in another "
                                              r"output_dir$"):
        train(cfg_for(tiny_synth, tmp_path, "train.seed=1"), factory(), resume=True)
    with pytest.raises(CheckpointError, match=r"model.min_size: 800 in the checkpoint, 80 now"):
        train(cfg_for(tiny_synth, tmp_path, "model.min_size=80"), factory(), resume=tmp_path / "last.pth")
    assert (tmp_path / "final.pth").read_bytes() == before
    # keys that may change on resume (lr, schedule, epochs) do not make another run
    assert train(cfg_for(tiny_synth, tmp_path, "train.base_lr=0.01"), factory(), resume=True)["iteration"] == 9


def test_a_fresh_run_moves_an_earlier_runs_outputs_aside(tiny_synth, tmp_path, capsys):
    train(cfg_for(tiny_synth, tmp_path, "train.max_iters=2"), factory())
    old_final = (tmp_path / "final.pth").read_bytes()
    result = train(cfg_for(tiny_synth, tmp_path, "train.seed=1", "train.max_iters=1"), factory())
    (moved,) = (tmp_path / "earlier").iterdir()
    assert f"held the outputs of an earlier run (not resumed); moved them to {moved}" in capsys.readouterr().err
    assert sorted(p.name for p in moved.iterdir()) == ["config.yaml", "final.pth", "last.pth", "log.jsonl",
                                                       "run_info.json", "summary.md"]
    assert (moved / "final.pth").read_bytes() == old_final
    assert result["iteration"] == 1 and load_checkpoint(tmp_path / "final.pth")["config"]["train"]["seed"] == 1
    assert [r["iter"] for r in strict_json_lines(tmp_path / "log.jsonl")] == [1]


def spoil(path, how):
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        state = load_checkpoint(path)
        state["model"]["det.backbone.0.weight"].fill_(float("nan"))
        state["iteration"] += 1  # more advanced, but broken
        save_atomic(state, path)


@pytest.mark.parametrize("how", ["truncated", "nan"])
def test_resume_passes_over_a_broken_newest_checkpoint(tiny_synth, tmp_path, capsys, how):
    cfg = cfg_for(tiny_synth, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, factory(fail_at=5))
    spoil(tmp_path / "interrupted.pth", how)
    capsys.readouterr()
    assert train(cfg, factory(), resume=True)["iteration"] == 9
    err = capsys.readouterr().err
    reason = ("cannot read checkpoint [^ ]*interrupted.pth: " if how == "truncated"
              else r"[^ ]*interrupted.pth: 1 weight tensor\(s\) hold NaN or inf \(det.backbone.0.weight\)")
    assert re.search(rf"passing over a checkpoint: {reason}.*; resuming from [^ ]*last.pth instead\n", err), err
    assert "resuming from" in err and "epoch 2, iteration 3" in err
    assert finite(load_checkpoint(tmp_path / "final.pth"))
    # nothing usable at all: a clear error, no training from scratch over the files
    spoil(tmp_path / "last.pth", how)
    spoil(tmp_path / "interrupted.pth", "truncated")
    with pytest.raises(CheckpointError, match="last.pth.*; .*interrupted.pth"):
        train(cfg, factory(), resume=True)


def test_an_interrupted_final_evaluation_runs_on_resume(tiny_synth, tmp_path, monkeypatch):
    import signal

    import dsic.engine.train as train_mod
    from dsic.engine.train import TrainingInterrupted

    cfg = cfg_for(tiny_synth, tmp_path, "train.epochs=1", "train.eval_every=1", "eval.evaluator=pycocotools")
    real = train_mod.evaluate

    def sigterm(*args, **kwargs):
        raise TrainingInterrupted(signal.SIGTERM)

    monkeypatch.setattr(train_mod, "evaluate", sigterm)
    with pytest.raises(TrainingInterrupted):
        train(cfg, factory())
    assert not (tmp_path / "eval_epoch1.json").exists() and not (tmp_path / "final.pth").exists()
    monkeypatch.setattr(train_mod, "evaluate", real)
    result = train(cfg, factory(), resume=True)
    assert result["metrics"] is not None and (tmp_path / "eval_epoch1.json").is_file()
    evals = [r for r in strict_json_lines(tmp_path / "log.jsonl") if "eval" in r]
    assert [(r["epoch"], r["iter"]) for r in evals] == [(1, 3)]
    # resuming the finished run again evaluates nothing twice
    monkeypatch.setattr(train_mod, "evaluate", sigterm)
    assert train(cfg, factory(), resume=True)["metrics"] is None


# --- checkpoints within epochs, temporary files, full disks -------------------------------------

def saves_of(monkeypatch):
    import dsic.engine.train as train_mod

    reasons = []
    real = train_mod.save_atomic

    def record(obj, path):
        reasons.append((path.name, obj.get("reason")))
        return real(obj, path)

    monkeypatch.setattr(train_mod, "save_atomic", record)
    return reasons


def test_checkpoints_every_n_iterations_and_a_kill_loses_at_most_n(tiny_synth, tmp_path, monkeypatch):
    ref = train(cfg_for(tiny_synth, tmp_path / "ref"), factory())
    reasons = saves_of(monkeypatch)
    cfg = cfg_for(tiny_synth, tmp_path / "run", "train.checkpoint_every_iters=2")
    with pytest.raises(RuntimeError, match="boom"):
        train(cfg, factory(fail_at=6, error=RuntimeError))
    assert reasons == [("last.pth", "iteration 2"), ("last.pth", "end of epoch 1"), ("last.pth", "iteration 4"),
                       ("interrupted.pth", "RuntimeError: boom")]
    (tmp_path / "run" / "interrupted.pth").unlink()  # as after kill -9: only the periodic checkpoint
    assert load_checkpoint(tmp_path / "run" / "last.pth")["iteration"] == 4
    train(cfg, factory(), resume=True)
    a, b = load_checkpoint(ref["final"])["model"], load_checkpoint(tmp_path / "run" / "final.pth")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_minutes(tiny_synth, tmp_path, monkeypatch):
    reasons = saves_of(monkeypatch)
    train(cfg_for(tiny_synth, tmp_path / "a", "train.max_iters=4"), factory())  # the default: 10 minutes
    assert reasons == [("last.pth", "end of epoch 1"), ("last.pth", "end of training"), ("final.pth", None)]
    reasons.clear()
    train(cfg_for(tiny_synth, tmp_path / "b", "train.max_iters=4", "train.checkpoint_minutes=1e-9"), factory())
    assert reasons == [("last.pth", "iteration 1"), ("last.pth", "iteration 2"), ("last.pth", "end of epoch 1"),
                       ("last.pth", "end of training"), ("final.pth", None)]


def test_stale_temporary_files_are_removed_at_the_next_start(tiny_synth, tmp_path, capsys):
    tmp_path.mkdir(exist_ok=True)
    for name in (".last.pth.x1y2.tmp", ".interrupted.pth.abc.tmp", "log.jsonl.tmp"):
        (tmp_path / name).write_bytes(b"partial")
    train(cfg_for(tiny_synth, tmp_path, "train.max_iters=1"), factory())
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert "removed 3 temporary file(s) of an interrupted save" in capsys.readouterr().err


def full_disk(monkeypatch):
    """Every checkpoint is written to /dev/full: the write fails with ENOSPC, as on a full disk."""
    import dsic.engine.checkpoint as ckpt_mod

    def mkstemp(prefix, suffix, dir):
        return os.open("/dev/full", os.O_WRONLY), str(Path(dir) / f"{prefix}full{suffix}")

    monkeypatch.setattr(ckpt_mod.tempfile, "mkstemp", mkstemp)


def test_a_full_disk_names_the_path_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from dsic.engine.checkpoint import CheckpointWriteError

    path = save_atomic({"a": torch.ones(3)}, tmp_path / "last.pth")
    full_disk(monkeypatch)
    with pytest.raises(CheckpointWriteError, match=rf"^\[Errno 28\] cannot write {re.escape(str(path))}: No space "
                                                   r"left on device \(the previous file is intact\)$"):
        save_atomic({"a": torch.zeros(1000)}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["a"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]


def test_an_unwritable_folder_names_the_path(tmp_path, monkeypatch):
    import errno

    import dsic.engine.checkpoint as ckpt_mod
    from dsic.engine.checkpoint import CheckpointWriteError

    def denied(**kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", kwargs["dir"])

    monkeypatch.setattr(ckpt_mod.tempfile, "mkstemp", denied)
    with pytest.raises(CheckpointWriteError, match=r"cannot write .*ro/last.pth: Permission denied \(nothing was "
                                                   r"written\)$"):
        save_atomic({"a": 1}, tmp_path / "ro" / "last.pth")


def test_training_on_a_full_disk_stops_with_one_line(tiny_synth, tmp_path, monkeypatch, capsys):
    from dsic.engine.checkpoint import CheckpointWriteError

    full_disk(monkeypatch)
    with pytest.raises(CheckpointWriteError, match=r"cannot write .*last.pth: No space left on device \(nothing "
                                                   r"was written\)$"):
        train(cfg_for(tiny_synth, tmp_path), factory())
    assert "could not save interrupted.pth: [Errno 28] cannot write" in capsys.readouterr().err


def test_sigterm_keeps_the_log_line_of_its_iteration(tiny_synth, tmp_path):
    import signal

    from dsic.engine.train import TrainingInterrupted

    count = {"steps": 0}

    def hook(optimizer, args, kwargs):  # SIGTERM arrives inside the update of iteration 5
        count["steps"] += 1
        if count["steps"] == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    handle = register_optimizer_step_post_hook(hook)
    try:
        with pytest.raises(TrainingInterrupted, match="SIGTERM"):
            train(cfg_for(tiny_synth, tmp_path), factory())
    finally:
        handle.remove()
    assert [r["iter"] for r in strict_json_lines(tmp_path / "log.jsonl")] == [1, 2, 3, 4, 5]
    assert load_checkpoint(tmp_path / "interrupted.pth")["iteration"] == 5


# --- data: every bad image named before training; one rule for boxes; no escaping the folder --------

def bad_images_dataset(root):
    from .helpers import write_coco

    images = [{"id": i, "file_name": f"{i}.png", "width": 8, "height": 8} for i in range(1, 6)]
    anns = [{"id": i, "image_id": i, "category_id": 3, "bbox": [1, 1, 4, 4]} for i in range(1, 6)]
    img_dir, ann = write_coco(root, images, anns)
    (img_dir / "2.png").unlink()                                 # missing
    (img_dir / "3.png").write_bytes(b"")                         # zero bytes
    (img_dir / "4.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")  # corrupt
    from .helpers import write_image

    write_image(img_dir / "5.png", 9, 8)                         # another size than annotated
    return img_dir, ann


def test_every_bad_image_is_named_before_training(tmp_path):
    from dsic.data.coco import CocoDetection
    from dsic.data.errors import DatasetError

    img_dir, ann = bad_images_dataset(tmp_path)
    with pytest.raises(DatasetError) as caught:
        CocoDetection(img_dir, ann)
    lines = str(caught.value).splitlines()
    assert lines[0] == (f"{ann}: 4 of 5 image(s) in {img_dir} cannot be used (set data.verify_images: false to "
                        f"skip this check):")
    assert lines[1] == f"  image 2 {img_dir / '2.png'}: file not found"
    assert lines[2] == f"  image 3 {img_dir / '3.png'}: empty file (0 bytes)"
    assert lines[3].startswith(f"  image 4 {img_dir / '4.png'}: not a readable image (")
    assert lines[4] == f"  image 5 {img_dir / '5.png'}: size 9x8 (WxH), the annotation file says 8x8"
    assert len(CocoDetection(img_dir, ann, verify=False)) == 5  # the check can be switched off


def test_a_run_with_a_bad_image_stops_before_training(tmp_path, tiny_synth):
    from dsic.data.errors import DatasetError

    img_dir, ann = bad_images_dataset(tmp_path / "data")
    cfg = cfg_for(tiny_synth, tmp_path / "run", f"data.train.images={img_dir}", f"data.train.annotations={ann}",
                  f"data.val.images={img_dir}", f"data.val.annotations={ann}", "model.num_classes=2")
    with pytest.raises(DatasetError, match=r"4 of 5 image\(s\)"):
        train(cfg, factory())
    assert not (tmp_path / "run" / "log.jsonl").exists() and not (tmp_path / "run" / "interrupted.pth").exists()


@pytest.mark.parametrize("name", ["../../elsewhere/x.png", "/etc/x.png", "a/../../x.png", "..\\x.png", "C:\\x.png"])
def test_file_name_may_not_leave_the_images_folder(tmp_path, name):
    from dsic.data.coco import load_coco_json
    from dsic.data.errors import DatasetError

    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": name, "width": 8, "height": 8}],
                               "annotations": [], "categories": [{"id": 1}]}))
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(ann))}: image 1 field 'file_name' = "
                                           rf"{re.escape(repr(name))} leaves the images folder"):
        load_coco_json(ann)


def test_a_negative_box_is_an_error_in_training_and_evaluation_alike(tmp_path):
    from dsic.data.coco import CocoDetection
    from dsic.data.errors import DatasetError

    from .helpers import write_coco

    anns = [{"id": 4, "image_id": 1, "category_id": 3, "bbox": [5, 1, -3, 4]}]
    img_dir, ann = write_coco(tmp_path, [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}], anns)
    for remove_empty in (True, False):  # the training and the evaluation dataset
        with pytest.raises(DatasetError, match=r"annotation 4 field 'bbox' = \[5, 1, -3, 4\] has a negative width"):
            CocoDetection(img_dir, ann, remove_empty=remove_empty)


KILLED_RUN = """
import os, signal, sys
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from dsic.engine.train import train
from tests.test_engine_train import cfg_for, factory

data, out, moment = sys.argv[1:]
torch.set_num_threads(1)
if moment == "update":  # kill -9 inside the 5th update
    steps = [0]

    def hook(optimizer, args, kwargs):
        steps[0] += 1
        if steps[0] == 5:
            os.kill(os.getpid(), signal.SIGKILL)

    register_optimizer_step_post_hook(hook)
else:  # kill -9 while last.pth of iteration 4 is being written
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("reason") == "iteration 4":
            f.write(b"half a checkpoint")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *args, **kwargs)

    torch.save = dying_save
train(cfg_for(Path(data), Path(out), "train.checkpoint_every_iters=2"), factory())
"""


@pytest.mark.parametrize("moment, kept", [("update", 4), ("save", 3)])
def test_kill_9_loses_at_most_the_interval_and_resume_is_exact(tiny_synth, tmp_path, moment, kept):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, str(tiny_synth), str(out), moment], cwd=root, env=env, check=False,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr
    assert not (out / "interrupted.pth").exists() and not (out / "final.pth").exists()
    assert load_checkpoint(out / "last.pth")["iteration"] == kept
    assert bool(list(out.glob(".last.pth.*.tmp"))) == (moment == "save")
    cfg = cfg_for(tiny_synth, out, "train.checkpoint_every_iters=2")
    assert train(cfg, factory(), resume=True)["iteration"] == 9
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    ref = train(cfg_for(tiny_synth, tmp_path / "ref", "train.checkpoint_every_iters=2"), factory())
    a, b = load_checkpoint(ref["final"])["model"], load_checkpoint(out / "final.pth")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["iter"] for r in strict_json_lines(out / "log.jsonl")] == list(range(1, 10))


def test_a_resumed_log_is_rewritten_as_strict_json(tmp_path):
    from dsic.engine.train import JsonLog

    path = tmp_path / "log.jsonl"
    path.write_text('{"iter": 1, "loss": NaN}\n{"iter": 2, "loss": 1.5}\n{"iter": 3, "lo\n')  # old NaN, torn line
    JsonLog(path).truncate_after(2)
    assert strict_json_lines(path) == [{"iter": 1, "loss": None}, {"iter": 2, "loss": 1.5}]


def test_the_issue_case_a_new_seed_in_a_finished_runs_folder(tiny_synth, tmp_path):
    """A finished seed-0 run, a fresh seed-1 run interrupted at iteration 5, then a seed-1 resume:
    it continues the seed-1 run, never the old one."""
    train(cfg_for(tiny_synth, tmp_path), factory())
    with pytest.raises(KeyboardInterrupt):
        train(cfg_for(tiny_synth, tmp_path, "train.seed=1"), factory(fail_at=5))
    assert load_checkpoint(tmp_path / "interrupted.pth")["config"]["train"]["seed"] == 1
    assert not (tmp_path / "final.pth").exists()  # the seed-0 outputs were moved aside
    result = train(cfg_for(tiny_synth, tmp_path, "train.seed=1"), factory(), resume=True)
    assert result["iteration"] == 9 and load_checkpoint(tmp_path / "final.pth")["config"]["train"]["seed"] == 1
    (earlier,) = (tmp_path / "earlier").iterdir()
    assert load_checkpoint(earlier / "final.pth")["config"]["train"]["seed"] == 0


def test_a_log_write_on_a_full_disk_names_the_file(tmp_path):
    from dsic.engine.train import JsonLog

    with pytest.raises(OSError, match=r"^\[Errno 28\] No space left on device: '/dev/full'$"):
        JsonLog(Path("/dev/full")).write({"iter": 1})


def test_the_command_line_process_runs_no_code_from_a_checkpoint(evil, tiny_synth, tmp_path):
    import subprocess
    import sys

    path, marker = evil
    cfg = tmp_path / "c.yaml"
    cfg.write_text("{}\n")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "dsic.cli", "eval", str(cfg), str(path),
                           *tiny_overrides(tiny_synth, tmp_path / "out")], cwd=tmp_path, env=env, check=False,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and not marker.exists()
    assert re.search(REFUSED, proc.stderr.strip().splitlines()[-1])
