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
