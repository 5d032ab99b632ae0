"""Backbone pre-training on object crops (protocol v3's resnet_tiny): crops, training, loading."""

import json
import math
from pathlib import Path

import pytest
import torch

from dsic.backbones.zoo import build_backbone
from dsic.cli import main
from dsic.data.crops import extract_crops
from dsic.engine.pretrain import classification_network, pretrain_backbone
from dsic.protocol import get_protocol

pytestmark = pytest.mark.usefixtures("one_thread")


def _files(root):
    return root / "train", root / "annotations" / "instances_train.json"


def test_crops_follow_the_annotations_and_are_deterministic(tiny_synth):
    images, ann_file = _files(tiny_synth)
    crops, labels, cats = extract_crops(images, ann_file, size=32, min_side=8, seed=3)
    again, labels2, _ = extract_crops(images, ann_file, size=32, min_side=8, seed=3)
    other, _, _ = extract_crops(images, ann_file, size=32, min_side=8, seed=4)
    data = json.loads(ann_file.read_text())
    kept = [a for a in data["annotations"] if math.sqrt(a["bbox"][2] * a["bbox"][3]) >= 8]
    assert crops.shape == (len(kept), 3, 32, 32) and crops.dtype == torch.uint8
    ids = sorted(c["id"] for c in data["categories"])
    by_image = sorted(kept, key=lambda a: a["image_id"])  # crops follow image order, then file order
    assert labels.tolist() == [ids.index(a["category_id"]) for a in by_image]
    assert [c["id"] for c in cats] == ids
    assert torch.equal(crops, again) and torch.equal(labels, labels2)
    assert not torch.equal(crops, other)  # the context draws depend on the seed
    assert len(extract_crops(images, ann_file, size=32, limit=3)[0]) == 3


def test_crops_reject_sets_that_give_none(tiny_synth):
    images, ann_file = _files(tiny_synth)
    with pytest.raises(ValueError, match="no annotation gives a crop"):
        extract_crops(images, ann_file, min_side=10_000)
    with pytest.raises(ValueError, match="need size >= 8"):
        extract_crops(images, ann_file, size=4)


def test_pretrained_weights_load_into_the_detector_backbone(tiny_synth, tmp_path):
    images, ann_file = _files(tiny_synth)
    out = tmp_path / "w.pth"
    record = pretrain_backbone(images, ann_file, out, steps=4, batch_size=8, size=32, warmup=2, log=lambda *_: None)
    meta = json.loads(out.with_name("w.pth.json").read_text())
    assert meta["metrics"] == record["metrics"] and 0 <= meta["metrics"]["heldout_accuracy"] <= 1
    assert meta["threads"] == 1 and meta["args"]["steps"] == 4 and meta["wall_s"] > 0
    net = classification_network("resnet_tiny", "gn", 10)
    state = torch.load(out, weights_only=True)["state_dict"]
    body = build_backbone("resnet_tiny", out, "gn", 5)
    loaded = dict(body.named_parameters())
    assert torch.equal(loaded["body.conv1.weight"] if "body.conv1.weight" in loaded else
                       next(v for k, v in loaded.items() if k.endswith("conv1.weight")), state["conv1.weight"])
    assert set(state) == set(net.state_dict())


def test_pretrain_refuses_other_families_and_bad_numbers(tiny_synth, tmp_path):
    with pytest.raises(ValueError, match="not of the ResNet family"):
        classification_network("convnext_tiny", "gn", 10)
    images, ann_file = _files(tiny_synth)
    with pytest.raises(ValueError, match="need steps >= 1"):
        pretrain_backbone(images, ann_file, tmp_path / "x.pth", steps=0)


def test_cli_pretrain_names_a_missing_file(tmp_path, capsys):
    code = main(["data", "pretrain", "--images", str(tmp_path), "--annotations", str(tmp_path / "none.json"),
                 "--out", str(tmp_path / "w.pth"), "--steps", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"dsic: error: --annotations '{tmp_path}/none.json': no such file (--debug shows the traceback)"]
    assert code == 2


def test_cli_pretrain_names_a_missing_images_folder(tiny_synth, tmp_path, capsys, monkeypatch):
    _, ann_file = _files(tiny_synth)
    monkeypatch.chdir(tmp_path)
    for images, said in (("/nope", "--images '/nope': no such folder"),
                         ("nope", f"--images 'nope': no such folder (relative to the current folder {tmp_path})")):
        code = main(["data", "pretrain", "--images", images, "--annotations", str(ann_file), "--out", "w.pth"])
        assert code == 2 and capsys.readouterr().err.splitlines() == [
            f"dsic: error: {said} (--debug shows the traceback)"]


def test_cli_pretrain_checks_out_before_training(tiny_synth, tmp_path, capsys, monkeypatch):
    import dsic.engine.pretrain

    monkeypatch.setattr(dsic.engine.pretrain, "pretrain_backbone", lambda *a, **kw: pytest.fail("trained"))
    images, ann_file = _files(tiny_synth)
    (tmp_path / "file").write_text("")

    def error(out):
        code = main(["data", "pretrain", "--images", str(images), "--annotations", str(ann_file), "--out", str(out)])
        lines = capsys.readouterr().err.splitlines()
        assert code == 2 and len(lines) == 1
        return lines[0].removeprefix("dsic: error: ").removesuffix(" (--debug shows the traceback)")

    assert error(tmp_path) == (f"--out '{tmp_path}': is a folder; expected the weights file to write, "
                               f"e.g. '{tmp_path}/resnet_tiny_gn.pth'")
    assert error(tmp_path / "file" / "w.pth") == f"--out '{tmp_path}/file/w.pth': {tmp_path}/file is a file, not a folder"


def test_cli_errors_of_the_os_read_without_the_errno_prefix():
    from dsic.cli import _describe
    from dsic.engine.checkpoint import CheckpointWriteError

    err = CheckpointWriteError(28, "cannot write w.pth: No space left on device (nothing was written)")
    assert _describe(err) == "cannot write w.pth: No space left on device (nothing was written)"


def test_protocol_v3_passes_the_committed_weights_to_every_run(tmp_path):
    from dsic.demo import train_command

    proto = get_protocol("v3")
    cmd = train_command(proto, tmp_path, ["model.neck=dsic"], tmp_path / "run", 2, quick=False)
    weights = [w for w in cmd if w.startswith("model.pretrained_backbone=")]
    assert len(weights) == 1 and weights[0].endswith("benchmarks/weights/resnet_tiny_gn_crops.pth")
    assert cmd.index(weights[0]) < cmd.index("model.neck=dsic")
    assert str(proto.base_config).endswith("configs/embedded_v3/faster_rcnn_tiny_fpn.yaml")


def test_the_committed_v3_weights_are_there_and_fit_the_benchmark_backbone():
    """A fresh clone must have them (*.pth is git-ignored elsewhere; benchmarks/weights is not)."""
    weights = next(w for w in get_protocol("v3").overrides if w.startswith("model.pretrained_backbone="))
    path = weights.split("=", 1)[1]
    body = build_backbone("resnet_tiny", path, "gn", 5)
    meta = json.loads(Path(f"{path}.json").read_text())
    assert meta["metrics"]["heldout_accuracy"] > 0.9 and meta["backbone"] == "resnet_tiny"
    assert sum(p.numel() for p in body.parameters()) > 2_000_000
