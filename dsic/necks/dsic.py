"""The ``dsic`` neck: ISG on every returned stage, then CSG across the gated stage outputs.

This is the full Dynamic Sample-Individualized Connector replacing FPN. See :mod:`dsic.necks.isg`
and :mod:`dsic.necks.csg` for the two gates and the choices made where the paper is vague.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from ..backbones.staged import BackboneSpec
from .base import Neck
from .csg import CSG, ControlUnit
from .isg import ISG


class DSICNeck(Neck):
    """The ``dsic`` neck: ISG on every returned stage, then CSG across the gated stage outputs."""

    needs_blocks = True

    def __init__(self, spec: BackboneSpec, out_channels: int = 256, extra: str | None = "pool", *,
                 isg_mode: str = "tanh", isg_reduction: int = 16, isg_control: str = "pooled",
                 isg_init: str = "identity", csg_mode: str = "tanh", select_mode: str = "sigmoid",
                 csg_reduction: int = 4, output_conv: bool = True,
                 control_unit: Callable[..., nn.Module] = ControlUnit):
        super().__init__(spec, out_channels, extra)
        self.isg = ISG(spec, mode=isg_mode, reduction=isg_reduction, control=isg_control, init=isg_init)
        self.csg = CSG(self.in_channels, out_channels, mode=csg_mode, select_mode=select_mode,
                       reduction=csg_reduction, output_conv=output_conv, control_unit=control_unit)

    def levels(self, blocks: list[list[Tensor]]) -> list[Tensor]:
        return self.csg(self.isg(blocks))

    def gate_states(self) -> dict:
        return {"isg": self.isg.gate_states(), "csg": self.csg.gate_states()}
