"""The ``dsic`` neck: ISG on every returned stage, then CSG across the gated stage outputs.

This is the full Dynamic Sample-Individualized Connector replacing FPN. See :mod:`dsic.necks.isg`
and :mod:`dsic.necks.csg` for the two gates and the choices made where the paper is vague.
"""

from __future__ import annotations

from torch import Tensor

from ..backbones.staged import BackboneSpec
from .base import Neck
from .csg import CSG
from .isg import ISG


class DSICNeck(Neck):
    """The ``dsic`` neck: ISG on every returned stage, then CSG across the gated stage outputs."""

    needs_blocks = True

    def __init__(self, spec: BackboneSpec, out_channels: int = 256, extra: str | None = "pool",
                 isg_mode: str = "tanh", isg_reduction: int = 16, isg_control: str = "pooled",
                 isg_init: str = "identity", csg_mode: str = "tanh", select_mode: str = "sigmoid",
                 csg_reduction: int = 4, output_conv: bool = True, csg_control_norm: str = "none",
                 csg_gain: str = "input", csg_path_gate: bool | str = False, csg_signal_std: float = 0.01,
                 csg_control_act: str = "relu", csg_norm_momentum: float = 0.05,
                 csg_scale_target: str = "groups", csg_scale_code: str = "outputs"):
        super().__init__(spec, out_channels, extra)
        self.isg = ISG(spec, isg_mode, isg_reduction, isg_control, isg_init)
        self.csg = CSG(self.in_channels, out_channels, csg_mode, select_mode, csg_reduction, output_conv,
                       csg_control_norm, csg_gain, csg_path_gate, csg_signal_std, csg_control_act,
                       csg_norm_momentum, csg_scale_target, csg_scale_code)

    def levels(self, blocks: list[list[Tensor]]) -> list[Tensor]:
        return self.csg(self.isg(blocks))

    def gate_states(self) -> dict:
        return {"isg": self.isg.gate_states(), "csg": self.csg.gate_states()}
