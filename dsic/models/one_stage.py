"""FCOS and RetinaNet that never detect the background.

torchvision's one-stage detectors score every one of their ``num_classes`` outputs at inference, the
background's index 0 included (dsic builds K + 1 outputs, labels 1..K: :mod:`dsic.models.builder`).
Training never makes index 0 positive, so its score stays low, but below the default score
threshold it still takes candidate slots and yields detections labelled 0, which no dataset
category matches: an FCOS evaluated at a score threshold of 0.05 stopped with "label 0 is outside
1..K". Here index 0's logits are set to -inf before the detections are decoded, so its score is 0
and it never passes the threshold. Weights and state-dict keys are torchvision's.
"""

from __future__ import annotations

import torch
from torchvision.models import detection


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
    def postprocess_detections(self, head_outputs, anchors, image_shapes):
        return super().postprocess_detections(_without_background(head_outputs), anchors, image_shapes)
