"""PANet (Liu et al., 2018): FPN followed by bottom-up path augmentation.

N_1 = P_1; N_{i+1} = ReLU(conv3x3(ReLU(conv3x3_stride2(N_i)) + P_{i+1})), as the paper's
building block (a stride-2 3x3 conv on the finer map, element-wise sum with the lateral P_{i+1},
a 3x3 conv on the sum, ReLU after each conv). The FPN part is :class:`~dsic.necks.fpn.TopDown`
(torchvision-identical), so ``panet``'s P levels equal ``fpn``'s outputs for the same weights.
Adaptive feature pooling (PANet's RoI-side change) is not part of a neck and is left out, and so
are normalisation layers (as in every neck of this package). If a stride-2 conv does not land
exactly on P_{i+1}'s size (odd sizes from a backbone that floors), it is resized (nearest) first.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones.staged import BackboneSpec
from .base import Neck, conv, fit, init_conv
from .fpn import TopDown


class PANet(Neck):
    """FPN + bottom-up path augmentation (see module docstring); no options."""

    torchvision_fpn_prefix = "fpn."

    def __init__(self, spec: BackboneSpec, out_channels: int = 256, extra: str | None = "pool"):
        super().__init__(spec, out_channels, extra)
        self.fpn = TopDown(self.in_channels, out_channels)
        n = len(self.in_channels)
        self.down = nn.ModuleList(conv(out_channels, out_channels, 3, stride=2) for _ in range(n - 1))
        self.fuse = nn.ModuleList(conv(out_channels, out_channels, 3) for _ in range(n - 1))
        init_conv(self.down)
        init_conv(self.fuse)

    def levels(self, blocks: list[list[Tensor]]) -> list[Tensor]:
        p = self.fpn([b[-1] for b in blocks])
        n = [p[0]]
        for down, fuse, lateral in zip(self.down, self.fuse, p[1:]):
            n.append(F.relu(fuse(F.relu(fit(down(n[-1]), lateral)) + lateral)))
        return n
