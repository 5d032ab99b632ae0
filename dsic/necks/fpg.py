"""FPG: Feature Pyramid Grid (Chen et al., 2020), written from the paper's description.

A grid of ``num_pathways`` parallel bottom-up pathways after pathway 0 (the 1x1 laterals of the
backbone stages). Level i of pathway p sums, then applies ReLU:

* **lateral** (across pathways, same level): 1x1 conv of F_{p-1}[i];
* **same-up** (same pathway, across scales): stride-2 3x3 conv of F_p[i-1] (bottom-up);
* **across-down** (across pathways and scales): nearest upsampling of F_{p-1}[i+1], 1x1 conv;
* **across-skip** (from pathway 0, same level, p > 1): 1x1 conv of F_0[i].

The last pathway is the output, followed by a 3x3 conv per level. The paper stacks 9 pathways at
256 channels; ``num_pathways`` defaults to 3 to stay practical on CPU (options: any >= 1).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones.staged import BackboneSpec
from .base import Neck, conv, init_conv


class Pathway(nn.Module):
    def __init__(self, levels: int, channels: int, skip: bool):
        super().__init__()
        self.lateral = nn.ModuleList(conv(channels, channels, 1) for _ in range(levels))
        self.same_up = nn.ModuleList(conv(channels, channels, 3, stride=2) for _ in range(levels - 1))
        self.across_down = nn.ModuleList(conv(channels, channels, 1) for _ in range(levels - 1))
        self.skip = nn.ModuleList(conv(channels, channels, 1) for _ in range(levels)) if skip else None

    def forward(self, prev: list[Tensor], first: list[Tensor]) -> list[Tensor]:
        out: list[Tensor] = []
        for i, x in enumerate(prev):
            y = self.lateral[i](x)
            if i > 0:
                y = y + self.same_up[i - 1](out[-1])
            if i + 1 < len(prev):
                y = y + self.across_down[i](F.interpolate(prev[i + 1], size=x.shape[-2:], mode="nearest"))
            if self.skip is not None:
                y = y + self.skip[i](first[i])
            out.append(F.relu(y))
        return out


class FPG(Neck):
    def __init__(self, spec: BackboneSpec, out_channels: int = 256, extra: str | None = "pool",
                 num_pathways: int = 3):
        super().__init__(spec, out_channels, extra)
        if num_pathways < 1:
            raise ValueError(f"FPG num_pathways must be >= 1, got {num_pathways}")
        n = len(self.in_channels)
        self.lateral = nn.ModuleList(conv(c, out_channels, 1) for c in self.in_channels)
        self.pathways = nn.ModuleList(Pathway(n, out_channels, skip=p > 0) for p in range(num_pathways))
        self.output = nn.ModuleList(conv(out_channels, out_channels, 3) for _ in range(n))
        init_conv(self)

    def levels(self, blocks: list[list[Tensor]]) -> list[Tensor]:
        first = [f(b[-1]) for f, b in zip(self.lateral, blocks)]
        x = first
        for pathway in self.pathways:
            x = pathway(x, first)
        return [out(y) for out, y in zip(self.output, x)]
