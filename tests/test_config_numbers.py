"""Every number is checked where it enters: finite, within float32 (the precision it is used in),
in the free-form model.detector_cfg / model.neck_cfg too; a failure after training started leaves
no checkpoint that promises a resume the same failure would stop."""

import pytest

from dsic.cli import main
from dsic.config import ConfigError, load_config
from dsic.engine.train import NonFiniteLossError, train

from .test_engine_train import cfg_for, factory

pytestmark = pytest.mark.usefixtures("one_thread")

BEYOND = "is out of range: beyond float32's largest number 3.403e+38 (the precision it is used in)"


@pytest.mark.parametrize("override, message", [
    ("train.base_lr=1e39", f"'train.base_lr' = 1e+39 {BEYOND}"),
    ("train.ema_tau=-1e39", f"'train.ema_tau' = -1e+39 {BEYOND}"),
    ("train.base_lr=1000000000000000000000000000000000000000", f"'train.base_lr' = {10**39} {BEYOND}"),
    ("model.anchor_sizes=[16, 1e39]", f"'model.anchor_sizes' = [16, 1e+39] {BEYOND}"),
    ("model.detector_cfg.box_score_thresh=1e39", f"'model.detector_cfg.box_score_thresh' = 1e+39 {BEYOND}"),
    ("model.detector_cfg.box_nms_thresh=.nan", "'model.detector_cfg.box_nms_thresh' = nan is not a finite number"),
    ("model.neck_cfg={csg: {temperature: .inf}}", "'model.neck_cfg.csg.temperature' = inf is not a finite number"),
    ("train.lr_mults={'backbone.*': 1e39}", f"'train.lr_mults.backbone.*' = 1e+39 {BEYOND}"),
])
def test_numbers_a_float32_cannot_hold_are_refused_naming_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert str(err.value) == f"override {override!r}: {message}"


def test_the_issue_case_on_the_command_line_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["train", "train.base_lr=1e39", f"output_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err == (f"dsic: error: override 'train.base_lr=1e39': 'train.base_lr' = 1e+39 {BEYOND} "
                   "(--debug shows the traceback)\n")
    assert not list(tmp_path.iterdir())


def test_an_lr_the_batch_scaling_overflows_is_refused_before_training(tiny_synth, tmp_path):
    cfg = cfg_for(tiny_synth, tmp_path, "train.base_lr=3e38", "train.base_batch_size=1")
    with pytest.raises(ConfigError, match=r"^train.base_lr = 3e\+38 gives an lr of 1.2e\+39 \(x batch_size 4 x 1 "
                                          r"process\(es\) / base_batch_size 1\): beyond float32's largest number"):
        train(cfg, factory())
    assert not (tmp_path / "interrupted.pth").exists()


def test_a_failure_before_any_update_writes_no_checkpoint_to_resume(tiny_synth, tmp_path, capsys):
    """Resuming from it would meet the same error at the same place: nothing is written, and said so."""
    with pytest.raises(RuntimeError, match="boom"):
        train(cfg_for(tiny_synth, tmp_path), factory(fail_at=1, error=RuntimeError))
    assert not (tmp_path / "interrupted.pth").exists()
    assert ("training stopped at iteration 0 (RuntimeError: boom) before any update; nothing new to save "
            "(interrupted.pth not written)") in capsys.readouterr().err


def test_a_failure_after_updates_says_what_resuming_needs(tiny_synth, tmp_path, capsys):
    with pytest.raises(RuntimeError, match="boom"):
        train(cfg_for(tiny_synth, tmp_path), factory(fail_at=3, error=RuntimeError))
    err = capsys.readouterr().err
    assert (f"training stopped at iteration 2 (RuntimeError: boom); state saved to {tmp_path / 'interrupted.pth'} "
            "(--resume continues from it once the cause of the error is removed)") in err


def test_a_non_finite_loss_does_not_promise_a_plain_resume(tiny_synth, tmp_path, capsys):
    with pytest.raises(NonFiniteLossError):
        train(cfg_for(tiny_synth, tmp_path), factory(nan_at=3))
    err = capsys.readouterr().err
    assert "(--resume continues from it)" not in err
    assert ("state saved to {} (--resume with the same settings meets it again: lower train.base_lr or set "
            "train.grad_clip first)".format(tmp_path / "interrupted.pth")) in err
