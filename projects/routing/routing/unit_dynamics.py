"""When, and through which branch, do CSG's channel control units die in training?

A channel control unit computes h = ReLU(conv0(d)) from its descriptor d and reads w_ik from h
(``channel[2]``), and with ``csg_path_gate: true`` also the path logits p_ik (``path``). A hidden
unit below zero for every image gets no gradient again: it is dead. :class:`UnitDynamics` hooks
every :class:`~dsic.necks.csg.ControlUnit` of a model and records, for each training iteration
(each forward in training mode) and each unit:

* ``alive``: the fraction of hidden units > 0 on at least one image of the batch;
* ``preact``: the mean pre-activation conv0(d) over units and images;
* ``grad_channel`` / ``grad_path``: the norm of dLoss/dh that reaches h through the channel
  signals' layer and through the path-logit layer (0 without path logits), per image (the batch's
  Frobenius norm over sqrt(batch)). Each is the gradient of its own branch alone, taken by a full
  backward hook on that layer.

The question it was written for: a path logit is shared by the C channels of its path, so its
gradient is the sum of C channel gradients; when those agree in sign, the hidden layer receives up
to sqrt(C) times more gradient through ``path`` than through ``channel[2]``. Does that kill P2's
units? On v7 (seed 0) it was 1.7 times, and P2's units died without path logits too (0.52 -> 0.16
alive; with them 0.59 -> 0.03), by the same drift of their pre-activations (docs/design.md, "Why
P2's unit dies with path logits").
:meth:`UnitDynamics.summary` averages the records over windows of iterations.
"""

from __future__ import annotations

import math

from torch import nn

from dsic.analysis.probe import control_units

FIELDS = ("alive", "preact", "grad_channel", "grad_path")


class UnitDynamics:
    """Records :data:`FIELDS` per training iteration for each control unit of ``model`` (the hooks
    stay until :meth:`remove`). ``records[u][field]`` is a list over iterations."""

    def __init__(self, model: nn.Module):
        self.units = control_units(model)
        if not self.units:
            raise ValueError("unit_dynamics: the model has no CSG control units")
        self.records = [{f: [] for f in FIELDS} for _ in self.units]
        # units whose path logits read the hidden layer; the others' grad_path is 0 at every iteration
        self.path_read = [unit.path is not None and unit.path_input == "hidden" for unit in self.units]
        self.handles = []
        for index, unit in enumerate(self.units):
            self.handles.append(unit.channel[0].register_forward_hook(self._forward(index)))
            self.handles.append(unit.channel[2].register_full_backward_hook(self._backward(index, "grad_channel")))
            if self.path_read[index]:
                self.handles.append(unit.path.register_full_backward_hook(self._backward(index, "grad_path")))

    def _forward(self, index: int):
        def hook(module, _inputs, output):  # before the in-place ReLU changes ``output``
            if not module.training:
                return
            pre = output.detach().flatten(1).float()  # [B, hidden]
            rec = self.records[index]
            rec["alive"].append(float((pre > 0).any(0).float().mean()))
            rec["preact"].append(float(pre.mean()))
            if not self.path_read[index]:
                rec["grad_path"].append(0.0)
        return hook

    def _backward(self, index: int, field: str):
        def hook(_module, grad_input, _grad_output):
            grad = grad_input[0]
            value = 0.0 if grad is None else float(grad.detach().float().norm() / math.sqrt(grad.shape[0]))
            self.records[index][field].append(value)
        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def summary(self, window: int = 50) -> list[dict[str, list[float]]]:
        """Per unit, each field averaged over consecutive windows of ``window`` iterations (the last
        window may be shorter), plus ``ratio``: the window's mean of grad_path / grad_channel."""
        out = []
        for rec in self.records:
            n = min(len(v) for v in rec.values())
            unit = {}
            for field, values in rec.items():
                unit[field] = [round(sum(values[s:s + window]) / len(values[s:s + window]), 6)
                               for s in range(0, n, window)]
            ratios = [p / c if c > 0 else 0.0 for p, c in zip(rec["grad_path"][:n], rec["grad_channel"][:n])]
            unit["ratio"] = [round(sum(ratios[s:s + window]) / len(ratios[s:s + window]), 4)
                             for s in range(0, n, window)]
            out.append(unit)
        return out


def per_iteration(dyn: UnitDynamics) -> list[dict[str, list[float]]]:
    """The raw records, trimmed to the iterations every field has (a forward whose backward has not
    run yet is left out)."""
    out = []
    for rec in dyn.records:
        n = min(len(v) for v in rec.values())
        out.append({f: [round(x, 6) for x in v[:n]] for f, v in rec.items()})
    return out

