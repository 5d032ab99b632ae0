"""Messages point at the cause: the override (not the file) that set a bad value, every mistyped key
at once, the checkpoint's classes against a model override at eval, init_from for detector weights."""

import pytest

from dsic.cli import main
from dsic.config import ConfigError, load_config


def test_an_invalid_override_is_named_not_the_file(tmp_path):
    cfg = tmp_path / "my.yaml"
    cfg.write_text("model: {neck: fpn}\n")
    with pytest.raises(ConfigError, match=r"^override 'model.neck=dsci': 'model.neck' = 'dsci', expected one of "
                                          r".*\(did you mean 'dsic'\?\)$"):
        load_config(cfg, ["model.neck=dsci"])
    with pytest.raises(ConfigError, match=r"^override 'model={neck: dsci}': 'model.neck' = 'dsci'"):
        load_config(cfg, ["model={neck: dsci}"])
    cfg.write_text("model: {neck: dsci}\n")  # set by the file: the file is named
    with pytest.raises(ConfigError, match=rf"^{cfg}: 'model.neck' = 'dsci'"):
        load_config(cfg, ["train.epochs=1"])


def test_every_mistyped_key_of_a_config_is_reported_at_once(tmp_path, capsys):
    cfg = tmp_path / "my.yaml"
    cfg.write_text("model: {nek: fpn}\ntrain: {bse_lr: 0.01, epochs: two}\n")
    expected = (f"4 problems: {cfg}: unknown key 'model.nek' (did you mean 'model.neck'?); {cfg}: unknown key "
                f"'train.bse_lr' (did you mean 'train.base_lr'?); {cfg}: 'train.epochs' must be int, got 'two'; "
                "override 'train.momentum=2': 'train.momentum' = 2 is out of range (must be >= 0 and < 1)")
    with pytest.raises(ConfigError) as err:
        load_config(cfg, ["train.momentum=2", "train.seed=1"])
    assert str(err.value) == expected and len(err.value.problems) == 4
    assert main(["train", str(cfg), "train.momentum=2"]) == 2
    assert capsys.readouterr().err == f"dsic: error: {expected} (--debug shows the traceback)\n"


def test_one_problem_reads_as_before(tmp_path):
    cfg = tmp_path / "my.yaml"
    cfg.write_text("train: {bse_lr: 0.01}\n")
    with pytest.raises(ConfigError, match=rf"^{cfg}: unknown key 'train.bse_lr' \(did you mean 'train.base_lr'\?\)$"):
        load_config(cfg)


def test_eval_refuses_an_override_of_the_classes_the_checkpoint_was_trained_on(checkpoint, tiny_synth, tmp_path,
                                                                               capsys):
    """The weights fix the classes: model.num_classes=4 was silently ignored (exit 0)."""
    from .conftest import tiny_overrides

    cfg = tmp_path / "my.yaml"
    cfg.write_text("{}\n")
    argv = ["eval", str(cfg), str(checkpoint), *tiny_overrides(tiny_synth, tmp_path / "out"), "model.num_classes=4"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"dsic: error: override 'model.num_classes=4': {checkpoint} was trained on 10 classes (category ids [1..10]), "
        f"which its weights fix; to train on other classes, start a run from it with model.init_from={checkpoint} "
        "(--debug shows the traceback)\n")
    assert not (tmp_path / "out").exists()


def test_other_model_overrides_apply_to_the_checkpoints_model_and_say_so(checkpoint, capsys):
    from dsic.inference import load_trained

    model, cfg, _ = load_trained(checkpoint, None, ["model.detector_cfg.box_score_thresh=0.3", "model.num_classes=10"],
                                 "cpu")
    assert model.roi_heads.score_thresh == 0.3 and cfg["model"]["num_classes"] == 10
    assert capsys.readouterr().err == (f"[dsic] model settings applied to {checkpoint}'s model: "
                                       "model.detector_cfg.box_score_thresh=0.3, model.num_classes=10\n")


def test_a_detector_checkpoint_as_pretrained_backbone_suggests_init_from(checkpoint):
    from dsic.backbones import build_backbone

    with pytest.raises(ValueError, match=rf"unexpected keys .*; it holds a detector's weights: give it as "
                                         rf"model.init_from={checkpoint}$"):
        build_backbone("resnet_tiny", checkpoint, "gn")
