"""Which parameters train, and at what lr: SGD parameter groups with weight decay and lr factors.

Two ways to give parameters their own lr, both applied by the scheduler as ``group["lr_mult"]``:

* ``train.gate_lr_mult``: every parameter that computes a gate signal (CSG's control units, ISG's
  stage gates; :func:`gate_parameters`);
* ``train.lr_mults``: a mapping from glob patterns over parameter names (as
  ``model.named_parameters()`` spells them, e.g. ``backbone.neck.csg.control.*.channel.2.*``) to
  factors, as mmdetection's ``paramwise_cfg.custom_keys`` and detectron2's per-module lr
  overrides. The first pattern that matches a name wins and overrides ``gate_lr_mult``; a pattern
  that matches no trainable parameter is an error (it is a typo, or the model is not the one
  meant). A factor of 0 freezes the parameter (``requires_grad`` off, so no gradient is computed
  for it and the backward pass stops early where it can); ``{"*": 0, "<pattern>": 1}`` trains
  only what the pattern names, since patterns are tried in their order.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

import torch

from ..config import check_lr_mults


def gate_parameters(model: torch.nn.Module) -> set[int]:
    """ids of the parameters that compute gate signals: CSG's control units and ISG's stage gates."""
    from ..necks.csg import ControlUnit
    from ..necks.isg import StageSelectionGate

    return {id(p) for m in model.modules() if isinstance(m, (ControlUnit, StageSelectionGate)) for p in m.parameters()}


def lr_factors(model: torch.nn.Module, gate_lr_mult: float = 1.0, lr_mults: dict | None = None) -> dict[str, float]:
    """The lr factor of every trainable parameter, by name (see the module doc)."""
    patterns = check_lr_mults(lr_mults)
    gates = gate_parameters(model) if gate_lr_mult != 1.0 else set()
    used: set[str] = set()
    factors = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        match = next((pat for pat in patterns if fnmatchcase(name, pat)), None)
        if match is not None:
            used.add(match)
            factors[name] = patterns[match]
        else:
            factors[name] = gate_lr_mult if id(p) in gates else 1.0
    unused = [pat for pat in patterns if pat not in used]
    if unused:
        raise ValueError(f"train.lr_mults: pattern {unused[0]!r} matches no trainable parameter of the model "
                         f"(names as model.named_parameters() gives them, e.g. 'backbone.neck.*')")
    return factors


def freeze_zero_lr(model: torch.nn.Module, factors: dict[str, float]) -> list[str]:
    """Turn off ``requires_grad`` of the parameters whose factor is 0; returns their names."""
    frozen = [name for name, f in factors.items() if f == 0.0]
    params = dict(model.named_parameters())
    for name in frozen:
        params[name].requires_grad_(False)
    return frozen


def parameter_groups(model: torch.nn.Module, weight_decay: float, norm_bias_decay: bool = True,
                     gate_lr_mult: float = 1.0, lr_mults: dict | None = None) -> list[dict]:
    """Trainable parameters as SGD groups, one per lr factor (factor 1 first, without ``lr_mult``;
    the others carry ``lr_mult``); parameters whose factor is 0 are frozen and left out.
    ``norm_bias_decay`` False: biases and normalisation weights (every parameter with fewer than 2
    dimensions) get no weight decay, each factor's group split in two."""
    factors = lr_factors(model, gate_lr_mult, lr_mults)
    freeze_zero_lr(model, factors)
    by_factor: dict[float, list] = {1.0: []}
    for name, p in model.named_parameters():
        if p.requires_grad:
            by_factor.setdefault(factors[name], []).append(p)
    groups = []
    for factor, members in by_factor.items():
        extra = {} if factor == 1.0 else {"lr_mult": factor}
        if norm_bias_decay:
            groups.append({"params": members, "weight_decay": weight_decay, **extra})
            continue
        groups.append({"params": [p for p in members if p.ndim > 1], "weight_decay": weight_decay, **extra})
        groups.append({"params": [p for p in members if p.ndim <= 1], "weight_decay": 0.0, **extra})
    return [g for g in groups if g["params"]]
