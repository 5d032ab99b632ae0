"""FCOS and RetinaNet that never detect the background.

torchvision's one-stage detectors score every one of their ``num_classes`` outputs at inference, the
background's index 0 included (dsic builds K + 1 outputs, labels 1..K: :mod:`dsic.models.builder`).
Training never makes index 0 positive, so its score stays low, but below the default score
threshold it still takes candidate slots and yields detections labelled 0, which no dataset
category matches: an FCOS evaluated at a score threshold of 0.05 stopped with "label 0 is outside
1..K". Here index 0's logits are set to -inf before the detections are decoded, so its score is 0
and it never passes the threshold. Weights and state-dict keys are torchvision's.

RetinaNet also takes ``head_norm`` (``model.detector_cfg.head_norm``): ``None`` (default) is
torchvision's original head, without normalisation, whose COCO checkpoints load; ``"gn"`` puts
GroupNorm (32 groups) after each of the head's convs, as torchvision's ``retinanet_resnet50_fpn_v2``
and FCOS's head do. On the CPU benchmark the plain head's classification loss stayed at its starting
value for 150-250 of 800 iterations (docs/breadth.md).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torchvision.models import detection
from torchvision.models.detection.retinanet import RetinaNetHead, _default_anchorgen

HEAD_NORMS = (None, "gn")


def _without_background(head_outputs: dict[str, list[torch.Tensor]]) -> dict[str, list[torch.Tensor]]:
    logits = []
    for level in head_outputs["cls_logits"]:  # [N, anchors, K + 1] per level
        level = level.clone()
        level[..., 0] = float("-inf")
        logits.append(level)
    return {**head_outputs, "cls_logits": logits}


class FCOS(detection.FCOS):
    def postprocess_detections(self, head_outputs, anchors, image_sizes):
        return super().postprocess_detections(_without_background(head_outputs), anchors, image_sizes)


class RetinaNet(detection.RetinaNet):
    def __init__(self, backbone, num_classes, *args, head_norm: str | None = None, **kwargs):
        if head_norm not in HEAD_NORMS:
            raise ValueError(f"detector_cfg.head_norm = {head_norm!r}: expected null (torchvision's head) or 'gn'")
        if head_norm == "gn" and kwargs.get("head") is None:
            anchors = kwargs.get("anchor_generator") or _default_anchorgen()
            kwargs["anchor_generator"] = anchors
            kwargs["head"] = RetinaNetHead(backbone.out_channels, anchors.num_anchors_per_location()[0], num_classes,
                                           norm_layer=partial(nn.GroupNorm, 32))
        super().__init__(backbone, num_classes, *args, **kwargs)

    def postprocess_detections(self, head_outputs, anchors, image_shapes):
        return super().postprocess_detections(_without_background(head_outputs), anchors, image_shapes)
