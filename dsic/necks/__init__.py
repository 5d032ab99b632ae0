"""Necks: map backbone block outputs to a feature pyramid (``OrderedDict`` of maps).

Every neck is selectable by name through :func:`build_neck`; its keyword options (``neck_cfg``)
are the keyword arguments of its class.
"""

from __future__ import annotations

import importlib
import inspect

from ..backbones.staged import BackboneSpec
from .base import EXTRA_LEVELS, Neck

# name -> "module:Class" (imported lazily so one broken neck does not break the others)
NECKS = {
    "fpn": "dsic.necks.fpn:FPN",
    "isg": "dsic.necks.isg:ISGFPN",
    "csg": "dsic.necks.csg:CSGNeck",
    "dsic": "dsic.necks.dsic:DSICNeck",
    "fcfpn": "dsic.necks.fcfpn:FCFPN",
    "panet": "dsic.necks.panet:PANet",
    "fpg": "dsic.necks.fpg:FPG",
    "fpt": "dsic.necks.fpt:FPT",
}
GATED_NECKS = ("isg", "csg", "dsic")  # the necks with gates (gate_states, the probe, the Fig. 3 figure)


def neck_class(name: str) -> type[Neck]:
    if name not in NECKS:
        raise ValueError(f"unknown neck {name!r}; available: {', '.join(NECKS)}")
    module, cls = NECKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_neck(name: str, spec: BackboneSpec, out_channels: int = 256, extra: str | None = "pool", **cfg) -> Neck:
    """Build neck ``name``; unknown ``cfg`` keys raise a ValueError naming the neck and the key."""
    cls = neck_class(name)
    params = inspect.signature(cls.__init__).parameters
    allowed = [p for p in params if p not in ("self", "spec", "out_channels", "extra")]
    unknown = sorted(set(cfg) - set(allowed))
    if unknown and not allowed:
        raise ValueError(f"neck_cfg: neck {name!r} takes no options, got {unknown}")
    if unknown:
        from ..config import closest

        guess = closest(unknown[0], allowed)
        hint = f" (did you mean {guess!r}?)" if guess else ""
        raise ValueError(f"neck_cfg: neck {name!r} got unknown option(s) {unknown}{hint}; its options are {allowed}")
    return cls(spec, out_channels=out_channels, extra=extra, **cfg)


__all__ = ["EXTRA_LEVELS", "NECKS", "Neck", "build_neck", "neck_class"]
