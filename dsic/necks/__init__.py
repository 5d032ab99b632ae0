"""Necks: map backbone block outputs to a feature pyramid (``OrderedDict`` of maps).

Every neck is selectable by name through :func:`build_neck`; its keyword options (``neck_cfg``)
are the keyword arguments of its class. :func:`register_neck` adds a neck defined outside the
library (a project registers its necks when it is imported: projects/routing).
"""

from __future__ import annotations

import importlib
import inspect

from ..backbones.staged import BackboneSpec
from ..messages import closest
from .base import EXTRA_LEVELS, Neck

# name -> "module:Class" (imported lazily so one broken neck does not break the others) or a class
NECKS: dict[str, str | type[Neck]] = {
    "fpn": "dsic.necks.fpn:FPN",
    "isg": "dsic.necks.isg:ISGFPN",
    "csg": "dsic.necks.csg:CSGNeck",
    "dsic": "dsic.necks.dsic:DSICNeck",
    "fcfpn": "dsic.necks.fcfpn:FCFPN",
    "panet": "dsic.necks.panet:PANet",
    "fpg": "dsic.necks.fpg:FPG",
    "fpt": "dsic.necks.fpt:FPT",
}
GATED_NECKS = ["isg", "csg", "dsic"]  # the necks with gates (gate_states, the probe, the Fig. 3 figure)


def register_neck(name: str, neck: str | type[Neck], gated: bool = False) -> None:
    """Make ``neck`` (a :class:`Neck` subclass, or ``"module:Class"``) selectable as ``model.neck: name``;
    ``gated``: it has gates (:meth:`Neck.gate_states`). Registering a name twice is refused."""
    if name in NECKS and NECKS[name] is not neck:
        raise ValueError(f"neck {name!r} is already registered ({NECKS[name]})")
    NECKS[name] = neck
    if gated and name not in GATED_NECKS:
        GATED_NECKS.append(name)


def neck_class(name: str) -> type[Neck]:
    if name not in NECKS:
        raise ValueError(f"unknown neck {name!r}; available: {', '.join(NECKS)}")
    if not isinstance(NECKS[name], str):
        return NECKS[name]
    module, cls = NECKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def neck_options(cls: type[Neck]) -> list[str]:
    """The options ``neck_cfg`` may set: the keyword parameters of ``cls`` (and of the classes it passes
    ``**kwargs`` on to), but factories such as ``control_unit``, which are given in Python."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                  and p.name not in ("self", "spec", "out_channels", "extra", *names) and not callable(p.default)]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
    return names


def build_neck(name: str, spec: BackboneSpec, out_channels: int = 256, extra: str | None = "pool", **cfg) -> Neck:
    """Build neck ``name``; unknown ``cfg`` keys raise a ValueError naming the neck and the key."""
    cls = neck_class(name)
    allowed = neck_options(cls)
    unknown = sorted(set(cfg) - set(allowed))
    if unknown and not allowed:
        raise ValueError(f"neck_cfg: neck {name!r} takes no options, got {unknown}")
    if unknown:
        guess = closest(unknown[0], allowed)
        hint = f" (did you mean {guess!r}?)" if guess else ""
        raise ValueError(f"neck_cfg: neck {name!r} got unknown option(s) {unknown}{hint}; its options are {allowed}")
    return cls(spec, out_channels=out_channels, extra=extra, **cfg)


__all__ = ["EXTRA_LEVELS", "GATED_NECKS", "NECKS", "Neck", "build_neck", "neck_class", "register_neck"]
