"""Did a control unit's hidden layer die by its own weights or by its inputs?

A channel control unit's hidden pre-activation is conv0(d) = W d + b on the descriptor d (GAP + GMP
of its paths). Training changes both: W and b by the unit's own updates, d by everything upstream
(backbone, laterals). :func:`unit_drift` evaluates the pre-activations of a trained model's units
on probe images three ways, per unit:

* ``init_init``: the initial weights on the initial model's descriptors (the start);
* ``init_final``: the initial weights on the trained model's descriptors (only the inputs changed);
* ``final_final``: the trained weights on the trained model's descriptors (the end).

For each: ``alive_*`` (the fraction of hidden units > 0 on some image) and ``pre_*`` (the mean
pre-activation). Also ``descriptor_norm_init`` / ``descriptor_norm_final`` (mean |d| per image),
``descriptor_spread`` (|std of d over images| / |mean of d|, trained model: how much the images'
descriptors differ, relative to what they share) and ``weight_change`` (|W_final - W_init| / |W_init|). A unit alive in ``init_final`` and dead in
``final_final`` died by its own updates; since the pre-activation moves by (dW) d, a small
relative weight change on a large descriptor is enough.

The initial model is rebuilt as training builds it: the run's seed, then the builder
(:class:`dsic.engine.train` seeds before building, so the weights are the run's own start).
"""

from __future__ import annotations

import torch
from torch import nn

from dsic.analysis.probe import control_units

from .control_inputs import unit_inputs


def _round(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]


@torch.no_grad()
def unit_drift(final: nn.Module, initial: nn.Module, images: list[torch.Tensor]) -> dict[str, list[float]]:
    """The statistics of the module doc, each a list over the control units (output levels)."""
    units_final, units_init = control_units(final), control_units(initial)
    if not units_final or len(units_final) != len(units_init):
        raise ValueError("unit_drift: both models need the same CSG control units")
    d_final, d_init = ([torch.from_numpy(u["descriptor"]) for u in unit_inputs(m, images)] for m in (final, initial))
    out: dict[str, list[float]] = {k: [] for k in (
        "alive_init_init", "alive_init_final", "alive_final_final", "pre_init_init", "pre_init_final",
        "pre_final_final", "descriptor_norm_init", "descriptor_norm_final", "descriptor_spread",
        "weight_change")}
    for u_f, u_i, df, di in zip(units_final, units_init, d_final, d_init):
        w_i, b_i = u_i.channel[0].weight.flatten(1).float(), u_i.channel[0].bias.float()
        w_f, b_f = u_f.channel[0].weight.flatten(1).float(), u_f.channel[0].bias.float()
        for name, pre in (("init_init", di @ w_i.T + b_i), ("init_final", df @ w_i.T + b_i),
                          ("final_final", df @ w_f.T + b_f)):
            out[f"alive_{name}"].append(float((pre > 0).any(0).float().mean()))
            out[f"pre_{name}"].append(float(pre.mean()))
        out["descriptor_norm_init"].append(float(di.norm(dim=1).mean()))
        out["descriptor_norm_final"].append(float(df.norm(dim=1).mean()))
        out["descriptor_spread"].append(float(df.std(0).norm() / df.mean(0).norm()))
        out["weight_change"].append(float((w_f - w_i).norm() / w_i.norm()))
    return {k: _round(v) for k, v in out.items()}
