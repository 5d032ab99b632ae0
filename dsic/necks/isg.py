"""Intra-scale Selection Gate (ISG), and the ``isg`` neck = ISG + FPN.

For a stage with blocks B_1..B_n (all of the same shape):

* **Coarse Selection.** A control unit sees the n-1 *former* blocks B_1..B_{n-1} and gives one
  channel signal b_j in R^C per former block; B^CS = sum_j G(b_j, B_j) with the coarse mode
  (softmax competes over j). The control unit is not shared between stages. Its layout
  (``control``) is a real question the paper leaves open:

  - ``pooled`` (default): GAP + GMP of each former block -> concat -> 1x1 conv -> ReLU -> 1x1 conv.
    Pooling comes first, so the control costs no full-resolution conv and no concat copy.
  - ``conv``: the paper's order taken literally: concat -> 1x1 conv -> ReLU -> GAP + GMP -> 1x1 conv
    (about 1.5 GFLOPs more for ResNet-50 at 512x512).
* **Fine Selection.** a = max(tanh(GAP(B^CS) + GMP(B^CS)), 0) (parameter-free, as in the paper) and
  C' = G(a, B^CS) + G(1 - a, B_n): a per-channel blend of the coarse selection and the last block.

Choices the paper leaves open (configurable):

* ``mode`` (coarse activation), default ``tanh``, the paper's best gate mode.
* ``reduction``: hidden = max(C // reduction, 16) channels in the control unit (default 16, like SE).
* **Initialisation (``isg_init``)**, a real question: Fine Selection's a = max(tanh(GAP + GMP), 0)
  saturates at 1 on post-ReLU features unless B^CS is small, and then C' = B^CS skips the last
  block B_n, whose gradient (1 - a) vanishes: with signals starting at 1/(n-1) a from-scratch
  ResNet loses the last block of every stage. ``identity`` (default): the coarse signals start
  closed (act(b_j) ~ 0: bias act^-1(0), weights std 0.001), so B^CS ~ 0, a ~ 0 and C' ~ B_n, ISG
  starts as the plain backbone and opens paths as it learns (softmax cannot close all paths and
  starts at 1/(n-1)). ``mean``: act(b_j) = 1/(n-1), B^CS starts as the mean of the former blocks.
* A stage with a single block has nothing to select: ISG passes it through.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..backbones.staged import BackboneSpec
from ..ops.gate import bias_for, check_mode, gate, gate_activation, global_pool
from .base import Neck
from .fpn import TopDown

COARSE_MODES = ("softmax", "sigmoid", "tanh")
CONTROLS = ("pooled", "conv")
INITS = ("identity", "mean")


class StageSelectionGate(nn.Module):
    """ISG for one stage with ``num_blocks`` blocks of ``channels`` channels."""

    def __init__(self, channels: int, num_blocks: int, *, mode: str = "tanh", reduction: int = 16,
                 control: str = "pooled", init: str = "identity"):
        super().__init__()
        self.mode = check_mode(mode, COARSE_MODES, "ISG coarse mode")
        self.control = check_mode(control, CONTROLS, "ISG control")
        check_mode(init, INITS, "ISG init")
        self.channels = channels
        self.num_former = num_blocks - 1
        self.states: dict[str, Tensor] = {}
        if self.num_former < 1:
            return
        hidden = max(channels // reduction, 16)
        self.squeeze = nn.Sequential(
            nn.Conv2d(channels * self.num_former, hidden, 1, bias=control == "pooled"), nn.ReLU(inplace=True)
        )
        self.signals = nn.Conv2d(hidden, channels * self.num_former, 1)
        nn.init.kaiming_uniform_(self.squeeze[0].weight, a=1)
        if self.squeeze[0].bias is not None:
            nn.init.zeros_(self.squeeze[0].bias)
        nn.init.normal_(self.signals.weight, std=0.001)
        target = 0.0 if init == "identity" else 1.0 / self.num_former
        nn.init.constant_(self.signals.bias, bias_for(self.mode, target))

    def coarse_signals(self, former: list[Tensor]) -> Tensor:
        """Activated b_j, [B, n-1, C, 1, 1]."""
        if self.control == "pooled":
            z = self.squeeze(torch.cat([global_pool(x) for x in former], 1))
        else:
            z = global_pool(self.squeeze(torch.cat(former, 1)))
        b = self.signals(z).unflatten(1, (self.num_former, self.channels))
        return gate_activation(b, self.mode, dim=1)

    def forward(self, blocks: list[Tensor]) -> Tensor:
        last = blocks[-1]
        if self.num_former < 1:
            return last
        former = blocks[:-1]
        b = self.coarse_signals(former)
        coarse = gate(b[:, 0], former[0])
        for j in range(1, self.num_former):
            coarse = coarse.addcmul_(former[j], b[:, j])  # += G(b_j, B_j), fused
        a = gate_activation(global_pool(coarse), "relu_tanh")  # Fine Selection, [B, C, 1, 1]
        self.states = {"b": b.detach().flatten(2), "a": a.detach().flatten(1)}
        # G(a, B^CS) + G(1 - a, B_n) == B_n + a * (B^CS - B_n): one fused lerp
        return torch.lerp(last, coarse, a)


class ISG(nn.Module):
    """One :class:`StageSelectionGate` per returned stage; maps block lists to stage outputs C'_i."""

    def __init__(self, spec: BackboneSpec, *, mode: str = "tanh", reduction: int = 16, control: str = "pooled",
                 init: str = "identity"):
        super().__init__()
        for channels in spec.block_channels:
            if len(set(channels)) != 1:
                raise ValueError(f"ISG needs blocks of equal channels within a stage, got {channels}")
        self.stages = nn.ModuleList(
            StageSelectionGate(c[-1], len(c), mode=mode, reduction=reduction, control=control, init=init)
            for c in spec.block_channels
        )

    def forward(self, blocks: list[list[Tensor]]) -> list[Tensor]:
        return [isg(b) for isg, b in zip(self.stages, blocks)]

    def gate_states(self) -> dict:
        """``a``: Fine Selection per stage [B, C]; ``b``: coarse signals per stage [B, n-1, C]."""
        return {
            "a": [s.states.get("a") for s in self.stages],
            "b": [s.states.get("b") for s in self.stages],
        }


class ISGFPN(Neck):
    """The ``isg`` neck: ISG on every returned stage, then torchvision's FPN."""

    needs_blocks = True
    torchvision_fpn_prefix = "fpn."

    def __init__(self, spec: BackboneSpec, out_channels: int = 256, extra: str | None = "pool", *,
                 isg_mode: str = "tanh", isg_reduction: int = 16, isg_control: str = "pooled",
                 isg_init: str = "identity"):
        super().__init__(spec, out_channels, extra)
        self.isg = ISG(spec, mode=isg_mode, reduction=isg_reduction, control=isg_control, init=isg_init)
        self.fpn = TopDown(self.in_channels, out_channels)

    def levels(self, blocks: list[list[Tensor]]) -> list[Tensor]:
        return self.fpn(self.isg(blocks))

    def gate_states(self) -> dict:
        return {"isg": self.isg.gate_states()}
