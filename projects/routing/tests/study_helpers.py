"""What the study's tests share: a tiny detector built by the study's model factory."""

import torch

from routing.models import build_detector


def tiny_detector(neck: str = "dsic_routing", neck_cfg: dict | None = None, seed: int = 0):
    """A resnet_tiny Faster R-CNN with ``neck`` (the study's DSIC by default) at 64 px and 16 channels,
    its weights drawn from ``seed``, built by :func:`routing.models.build_detector`."""
    torch.manual_seed(seed)
    return build_detector("faster_rcnn", "resnet_tiny", neck, num_classes=3, min_size=64, max_size=64,
                          out_channels=16, neck_cfg=neck_cfg)
