from pathlib import Path

import pytest

from dsic.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_base_inheritance_and_overrides(tmp_path):
    write(tmp_path / "base" / "b.yaml", "model: {neck: fpn, num_classes: 5}\ntrain: {epochs: 24, schedule: 2x}\n")
    cfg_path = write(tmp_path / "run.yaml", "_base_: base/b.yaml\nmodel: {neck: dsic}\n")
    cfg = load_config(cfg_path, ["train.batch_size=4", "model.neck_cfg={csg_mode: softmax}"])
    assert cfg["model"]["neck"] == "dsic" and cfg["model"]["num_classes"] == 5
    assert cfg["model"]["neck_cfg"] == {"csg_mode": "softmax"}
    assert cfg["train"]["batch_size"] == 4 and cfg["train"]["steps"] == [16, 22]
    assert cfg["output_dir"] == "runs/run" and cfg["eval"]["iou_types"] == ["bbox"]


def test_named_schedule_scales_with_epochs_and_mask_defaults():
    cfg = load_config(None, ["train.epochs=6", "model.arch=mask_rcnn"])
    assert cfg["train"]["steps"] == [4, 6]  # 1x drops at 8/12 and 11/12 of the epochs
    assert cfg["data"]["with_masks"] is True and cfg["eval"]["iou_types"] == ["bbox", "segm"]


def test_unknown_key_names_file_key_and_hint(tmp_path):
    path = write(tmp_path / "x.yaml", "train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"x.yaml: unknown key 'train.epoch' \(did you mean 'train.epochs'\?\)"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"override 'modle.neck=fpn': unknown key 'modle' \(did you mean 'model'\?\)"):
        load_config(None, ["modle.neck=fpn"])


def test_wrong_types_and_choices(tmp_path):
    with pytest.raises(ConfigError, match="'train.epochs' has the wrong type: 'many'"):
        load_config(None, ["train.epochs=many"])
    with pytest.raises(ConfigError, match="'model.arch' = 'yolo', expected one of"):
        load_config(None, ["model.arch=yolo"])
    with pytest.raises(ConfigError, match="'model.neck_cfg' must be a mapping"):
        load_config(None, ["model.neck_cfg=3"])
    with pytest.raises(ConfigError, match="must look like dotted.key=value"):
        load_config(None, ["train.epochs"])
    assert load_config(None, ["train.base_lr=1"])["train"]["base_lr"] == 1  # an int is a fine float


def test_malformed_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*none.yaml"):
        load_config(tmp_path / "none.yaml")
    bad = write(tmp_path / "bad.yaml", "model: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: malformed YAML"):
        load_config(bad)
    loop = write(tmp_path / "loop.yaml", "_base_: loop.yaml\n")
    with pytest.raises(ConfigError, match="inheritance loops"):
        load_config(loop)


def test_every_shipped_config_loads():
    paths = sorted((ROOT / "configs").glob("*/*.yaml"))
    assert len([p for p in paths if p.parent.name == "coco"]) == 32
    for path in paths:
        if path.parent.name != "_base_":
            cfg = load_config(path)
            assert cfg["model"]["neck"] in ("fpn", "dsic", "isg", "csg") or path.parent.name != "coco"
