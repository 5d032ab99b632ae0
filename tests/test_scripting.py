"""TorchScript of dsic detectors, and necks fed like torchvision's FeaturePyramidNetwork."""

from collections import OrderedDict

import pytest
import torch

from dsic.backbones import build_backbone
from dsic.models import build_detector
from dsic.necks import build_neck


def tiny_detector(neck):
    torch.manual_seed(0)
    model = build_detector("faster_rcnn", "resnet_tiny", neck, num_classes=3, norm="bn", trainable_layers=5,
                           out_channels=32, min_size=96, max_size=160, detector_cfg={"box_score_thresh": 0.0})
    return model.eval()


@pytest.mark.parametrize("neck", ["fpn", "dsic"])
def test_scripted_detector_matches_eager_at_two_sizes(neck):
    from dsic.backbones import StagedBackbone
    from dsic.export import script_model

    model = tiny_detector(neck)
    keys = list(model.state_dict())
    scripted = script_model(model)
    # the model given is left as it is (torch.jit.script alone would swap in the prepared forms)
    assert isinstance(model.backbone.body, StagedBackbone) and list(model.state_dict()) == keys
    g = torch.Generator().manual_seed(1)
    for shape in ((3, 96, 80), (3, 120, 150)):
        images = [torch.rand(*shape, generator=g)]
        with torch.no_grad():
            eager = model(images)[0]
            _, (script,) = scripted(images)
        assert len(eager["boxes"]) > 0
        torch.testing.assert_close(script["boxes"], eager["boxes"], rtol=0, atol=1e-4)
        torch.testing.assert_close(script["scores"], eager["scores"], rtol=0, atol=1e-5)
        assert torch.equal(script["labels"], eager["labels"])


@pytest.mark.parametrize("name", ["fpn", "csg", "fcfpn", "panet", "fpg", "fpt"])
def test_stage_output_necks_accept_ordered_dict_and_list(name):
    body = build_backbone("resnet_tiny", None, "bn", 5, [1, 2, 3, 4])
    body.keep_blocks = False
    neck = build_neck(name, body.spec, 32, "pool").eval()
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        blocks = body(x)
        expected = neck(blocks)
        maps = [b[-1] for b in blocks]
        from_list = neck(maps)
        from_dict = neck(OrderedDict((f"c{i + 2}", m) for i, m in enumerate(maps)))
    assert list(expected) == ["0", "1", "2", "3", "pool"]
    for key in expected:
        torch.testing.assert_close(from_list[key], expected[key], rtol=0, atol=0)
        torch.testing.assert_close(from_dict[key], expected[key], rtol=0, atol=0)


def test_wrong_neck_inputs_get_clear_errors():
    body = build_backbone("resnet_tiny", None, "bn", 5, [1, 2, 3, 4])
    fpn = build_neck("fpn", body.spec, 32, "pool")
    maps = [b[-1] for b in body(torch.rand(1, 3, 64, 64))]
    with pytest.raises(ValueError, match=r"^FPN expects 4 stages, got 3$"):
        fpn(maps[:3])
    with pytest.raises(ValueError, match=r"^FPN: stage 1 must be a \[B, 64, H, W\] map, got shape \[1, 32, 8, 8\]$"):
        fpn([maps[0], maps[0][:, :, ::2, ::2], maps[2], maps[3]])
    with pytest.raises(TypeError, match="FPN expects a list of 4 feature maps .* got Tensor"):
        fpn(maps[0])
    dsic = build_neck("dsic", body.spec, 32, "pool")
    with pytest.raises(TypeError, match=r"DSICNeck needs the output of every block of each stage"):
        dsic(maps)
