"""FCOS and RetinaNet never return the background label 0, whatever its score."""

import pytest
import torch

from dsic.models import build_detector


@pytest.mark.parametrize("arch", ["fcos", "retinanet"])
def test_background_is_never_detected(arch):
    torch.manual_seed(0)
    model = build_detector(arch, backbone="resnet_tiny", neck="fpn", num_classes=3, out_channels=64,
                           norm="gn", min_size=160, max_size=160, detector_cfg={"score_thresh": 0.0})
    model.eval()
    bias = model.head.classification_head.cls_logits.bias
    with torch.no_grad():
        bias[0] = 20.0  # the background scores ~1 everywhere: torchvision alone would detect it
    images = [torch.rand(3, 160, 160)]
    with torch.no_grad():
        (det,) = model(images)
    assert len(det["labels"]) > 0 and det["labels"].min() >= 1
    with torch.no_grad():
        bias[0] = -20.0  # with the background silent, the foreground detections are what they were
        (ref,) = model(images)
    assert torch.equal(det["labels"], ref["labels"]) and torch.allclose(det["scores"], ref["scores"])
    assert torch.allclose(det["boxes"], ref["boxes"])


def test_retinanet_head_norm_gn_is_torchvisions_v2_head_and_the_default_stays_plain():
    kw = {"backbone": "resnet_tiny", "neck": "fpn", "num_classes": 3, "out_channels": 64, "norm": "gn",
          "min_size": 128, "max_size": 128}
    torch.manual_seed(0)
    plain = build_detector("retinanet", **kw)
    torch.manual_seed(0)
    gn = build_detector("retinanet", detector_cfg={"head_norm": "gn"}, **kw)
    norms = [m for m in gn.head.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 8 and all(m.num_groups == 32 for m in norms)  # 4 convs x (classification, regression)
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in plain.head.modules())
    outside = [{k for k in m.state_dict() if not k.startswith("head.")} for m in (plain, gn)]
    assert outside[0] == outside[1]  # the head alone differs (its convs lose their bias to the norm)
    for a, b in zip(plain.backbone.parameters(), gn.backbone.parameters()):
        assert torch.equal(a, b)  # paired initialisation: the same backbone and neck at the same seed
    gn.train()
    target = {"boxes": torch.tensor([[10.0, 10.0, 60.0, 70.0]]), "labels": torch.tensor([2])}
    losses = gn([torch.rand(3, 128, 128)], [target])
    sum(losses.values()).backward()
    assert gn.head.classification_head.conv[0][1].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="^detector_cfg.head_norm = 'bn': expected null"):
        build_detector("retinanet", detector_cfg={"head_norm": "bn"}, **kw)
