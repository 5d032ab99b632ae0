"""The ``dsic_routing`` neck: DSIC with the study's control units (:class:`routing.control.RoutingControlUnit`),
their options prefixed ``csg_`` as the other CSG options of the ``dsic`` neck are."""

from __future__ import annotations

import functools

from dsic.backbones.staged import BackboneSpec
from dsic.necks.dsic import DSICNeck

from .control import RoutingControlUnit


class RoutingDSICNeck(DSICNeck):
    """:class:`dsic.necks.dsic.DSICNeck` (its options in ``dsic_options``) with :class:`RoutingControlUnit`."""

    def __init__(self, spec: BackboneSpec, out_channels: int = 256, extra: str | None = "pool", *,
                 csg_control_norm: str = "none", csg_path_gate: bool | str = False, csg_signal_std: float = 0.01,
                 csg_control_act: str = "relu", csg_norm_momentum: float = 0.05, csg_scale_target: str = "groups",
                 csg_scale_code: str = "outputs", **dsic_options):
        unit = functools.partial(RoutingControlUnit, control_norm=csg_control_norm, path_gate=csg_path_gate,
                                 signal_std=csg_signal_std, control_act=csg_control_act,
                                 norm_momentum=csg_norm_momentum, scale_target=csg_scale_target,
                                 scale_code=csg_scale_code)
        super().__init__(spec, out_channels, extra, control_unit=unit, **dsic_options)
