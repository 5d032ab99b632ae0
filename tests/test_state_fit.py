"""A state dict that does not fit the model is explained in one line (dsic.models.state_fit)."""

import pytest
import torch

from dsic.cli import main
from dsic.config import dump_config
from dsic.models import build_detector
from dsic.models.state_fit import mismatch_summary

OWN = {"backbone.body.conv1.weight": torch.zeros(8, 3, 3, 3), "backbone.body.bn1.weight": torch.zeros(8),
       "rpn.head.conv.weight": torch.zeros(8, 8, 3, 3), "roi_heads.cls.weight": torch.zeros(11, 8)}


def test_counts_examples_and_shapes():
    given = {**OWN, "extra.weight": torch.zeros(1), "roi_heads.cls.weight": torch.zeros(81, 8)}
    del given["rpn.head.conv.weight"]
    assert mismatch_summary(OWN, given) == ("1 key(s) missing (rpn.head.conv.weight); 1 unexpected (extra.weight); "
                                            "1 of another shape (roi_heads.cls.weight: (81, 8) in the file, "
                                            "(11, 8) in the model)")
    many = {f"k{i}": torch.zeros(1) for i in range(5)}
    assert mismatch_summary({}, many, shown=2) == "5 unexpected (k0, k1, ... (3 more))"


def test_backbone_weights_alone_are_recognised_bare_or_wrapped():
    body = {"conv1.weight": torch.zeros(8, 3, 3, 3), "bn1.weight": torch.zeros(8)}
    hint = ". The file holds backbone weights alone: give it as model.pretrained_backbone"
    assert mismatch_summary(OWN, body).endswith(hint)
    assert mismatch_summary(OWN, {"state_dict": body, "meta": {"backbone": "resnet_tiny"}}).endswith(hint)
    assert hint not in mismatch_summary(OWN, {"rpn.head.conv.weight": torch.zeros(8, 8, 3, 3)})


def test_predict_with_backbone_weights_says_where_they_belong(checkpoint, image_folder, tmp_path, capsys):
    state = torch.load(checkpoint, weights_only=True)
    config = tmp_path / "model.yaml"
    config.write_text(dump_config(state["config"]))
    body = {k[len("backbone.body."):]: v for k, v in state["model"].items() if k.startswith("backbone.body.")}
    weights = tmp_path / "backbone.pth"
    torch.save({"state_dict": body, "meta": {"backbone": "resnet_tiny"}}, weights)
    assert main(["predict", "--config", str(config), str(weights), str(image_folder), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"dsic: error: {weights}: does not fit the configured model" in err
    assert "key(s) missing (backbone.body." in err and "2 unexpected (meta, state_dict)" in err
    assert "The file holds backbone weights alone: give it as model.pretrained_backbone" in err


def test_init_from_of_which_no_tensor_fits_is_refused(tmp_path):
    weights = tmp_path / "backbone.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(10, 8)}, weights)
    with pytest.raises(ValueError, match=rf"^{weights}: none of its 2 tensors fits this detector \(conv1.weight, "
                                         r"fc.weight\); init_from takes detector weights, a backbone's go in "
                                         r"model.pretrained_backbone$"):
        build_detector("faster_rcnn", "resnet_tiny", "fpn", num_classes=3, norm="gn", init_from=str(weights))


def test_pretrained_backbone_file_without_a_state_dict_is_one_line(tmp_path):
    weights = tmp_path / "list.pth"
    torch.save([1, 2, 3], weights)
    with pytest.raises(ValueError, match=rf"^{weights}: holds no state dict of backbone weights \(a list\)$"):
        build_detector("faster_rcnn", "resnet_tiny", "fpn", num_classes=3, norm="gn", pretrained_backbone=str(weights))
