"""FPG: Feature Pyramid Grid (Chen et al., 2020), written from the paper's description.

The grid has a *backbone pathway* F_0 (1x1 laterals of the stage outputs to ``out_channels``)
and ``num_pathways`` parallel *pyramid pathways* F_1 .. F_P that each run bottom-up (finest level
first). Level i of pathway p (p >= 1) is the sum of these connections:

* **same-up** (within pathway p, across scales): stride-2 3x3 conv of F_p[i-1] (i > 0);
* **across-same** (lateral, across pathways, same level): 1x1 conv of F_{p-1}[i];
* **across-down** (across pathways and scales, top-down): nearest upsampling of F_{p-1}[i+1]
  to level i, then a 3x3 conv (i < n-1);
* **across-skip** (from the backbone pathway, same level): 1x1 conv of F_0[i], for p >= 2 (for
  p = 1 it would duplicate the across-same connection, which already reads F_0).

The paper also describes an across-up connection (F_{p-1}[i-1] -> F_p[i]); it is not
implemented, the grid uses the four connection types above. Every connection is pre-activated, ReLU -> conv, so each map is
stored as the plain sum and its ReLU is computed once and shared by the connections reading it;
the output of level i is a 3x3 conv of ReLU(F_P[i]).

Choices and simplifications (documented, not the paper's exact setting):

* ``num_pathways`` defaults to 3 to stay practical on CPU; the paper stacks 9 (any value >= 1);
* no normalisation layers (the paper uses BN in the grid), as in every other neck of this package,
  and every pathway computes every level (no pruned grid cells);
* the extra levels (``pool`` / ``p6p7``) are added on top of the output by the base class instead of
  being a row of the grid.

Stage maps whose size is not exactly half of the finer one (e.g. odd sizes from a backbone that
floors) are handled: a same-up map is resized (nearest) to the level's size before the sum.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones.staged import BackboneSpec
from .base import Neck, conv, fit, init_conv


class Pathway(nn.Module):
    """One bottom-up pyramid pathway of the grid (connections in the module docstring)."""

    def __init__(self, levels: int, channels: int, skip: bool):
        super().__init__()
        self.across_same = nn.ModuleList(conv(channels, channels, 1) for _ in range(levels))
        self.same_up = nn.ModuleList(conv(channels, channels, 3, stride=2) for _ in range(levels - 1))
        self.across_down = nn.ModuleList(conv(channels, channels, 3) for _ in range(levels - 1))
        self.across_skip = nn.ModuleList(conv(channels, channels, 1) for _ in range(levels)) if skip else None

    def forward(self, prev: list[Tensor], backbone: list[Tensor]) -> list[Tensor]:
        """``prev``: ReLU of the previous pathway's maps; ``backbone``: ReLU of F_0. Returns the
        maps of this pathway as pre-activation sums."""
        out: list[Tensor] = []
        for i, x in enumerate(prev):
            y = self.across_same[i](x)
            if i > 0:
                y = y + fit(self.same_up[i - 1](F.relu(out[-1])), x)
            if i + 1 < len(prev):
                y = y + self.across_down[i](F.interpolate(prev[i + 1], size=x.shape[-2:], mode="nearest"))
            if self.across_skip is not None:
                y = y + self.across_skip[i](backbone[i])
            out.append(y)
        return out


class FPG(Neck):
    """Feature Pyramid Grid on the stage outputs (see module docstring).

    Args:
        num_pathways: pyramid pathways stacked after the backbone pathway (paper: 9; default 3).
    """

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
        backbone = [F.relu(f(b[-1])) for f, b in zip(self.lateral, blocks)]
        x = backbone
        for pathway in self.pathways:
            x = [F.relu(y) for y in pathway(x, backbone)]
        return [out(y) for out, y in zip(self.output, x)]
