"""Feature Pyramid Network (Lin et al., 2017), numerically identical to torchvision's.

Parameter names (``inner_blocks.i.0``, ``layer_blocks.i.0``) and initialisation follow
``torchvision.ops.FeaturePyramidNetwork`` so its checkpoints load with ``strict=True``:
lateral 1x1 convs, top-down nearest-neighbour upsampling + add, 3x3 output convs.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones.staged import BackboneSpec
from .base import Neck, conv, init_conv


class TopDown(nn.Module):
    """The FPN pathway on a list of maps with ``in_channels``: returns one map per level."""

    def __init__(self, in_channels: list[int], out_channels: int):
        super().__init__()
        self.inner_blocks = nn.ModuleList(nn.Sequential(conv(c, out_channels, 1)) for c in in_channels)
        self.layer_blocks = nn.ModuleList(nn.Sequential(conv(out_channels, out_channels, 3)) for _ in in_channels)
        init_conv(self)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        # laterals first (a ModuleList is only iterable in TorchScript, not indexable by a variable)
        laterals: list[Tensor] = []
        for i, block in enumerate(self.inner_blocks):
            laterals.append(block(feats[i]))
        inner = laterals[-1]
        tops = [inner]
        for i in range(len(feats) - 2, -1, -1):
            inner = laterals[i] + F.interpolate(inner, size=laterals[i].shape[-2:], mode="nearest")
            tops.insert(0, inner)
        results: list[Tensor] = []
        for i, block in enumerate(self.layer_blocks):
            results.append(block(tops[i]))
        return results


class FPN(Neck):
    """FPN on the stage outputs (last block of each returned stage)."""

    torchvision_fpn_prefix = "fpn."
    scriptable = True

    def __init__(self, spec: BackboneSpec, out_channels: int = 256, extra: str | None = "pool"):
        super().__init__(spec, out_channels, extra)
        self.fpn = TopDown(self.in_channels, out_channels)

    def levels(self, blocks: list[list[Tensor]]) -> list[Tensor]:
        return self.fpn([b[-1] for b in blocks])
