"""FC-FPN: every input level connected to every output level, without gates.

The ungated universal set of CSG (the paper's FC-FPN baseline): the same resampling as CSG
(:class:`~dsic.necks.csg.Resampler`: 1x1 laterals, chained stride-2 3x3 convs down, bilinear up)
and a plain sum P_k = sum_i M_ik, then a 3x3 output conv per level. Comparing it with ``csg``
isolates what the gates add over dense connectivity.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..backbones.staged import BackboneSpec
from .base import Neck, conv, init_conv
from .csg import Resampler


class FCFPN(Neck):
    def __init__(self, spec: BackboneSpec, out_channels: int = 256, extra: str | None = "pool"):
        super().__init__(spec, out_channels, extra)
        self.paths = Resampler(self.in_channels, out_channels)
        self.output = nn.ModuleList(conv(out_channels, out_channels, 3) for _ in self.in_channels)
        init_conv(self.output)

    def levels(self, blocks: list[list[Tensor]]) -> list[Tensor]:
        return [out(sum(paths)) for out, paths in zip(self.output, self.paths([b[-1] for b in blocks]))]
