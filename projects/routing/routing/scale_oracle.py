"""How deep does the loss itself want CSG to route by object scale? Path logits fed the answer.

Every reader of the image tried so far (the hidden layer, the descriptor, the paths' scale
statistics) routes only as far as it can tell the image's scale from its inputs and as far as the
loss asks. This separates the two: :class:`ScaleOracle` replaces each control unit's path logits
by a layer that reads the image's **probe group** from its ground-truth boxes, a one-hot over
(small, large, mixed) by the probe's rule (every object's sqrt(area) < 32 px, every one >= 96 px,
anything else; ``projects/routing/train_groups.py``), so p_ik = o_ik[group] + c_ik with 3 + 1 numbers per
path. Trained alone on a network that is otherwise frozen, the offsets settle where the training
loss wants each group routed: the routing a perfect scale reader would learn there, at no cost.
If that stays below the gate goal (a W entry differing by 0.10 between the small and large groups),
no reader of these features can meet the goal without changing them.

It is an instrument, not a model: it needs targets, so training sets the groups from the batch's
targets (a forward pre-hook on the detector), and the probe sets them by hand
(:meth:`ScaleOracle.set_groups`). Images with no object read all zeros (the bias alone).
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import Tensor, nn

from dsic.analysis.probe import control_units

from .scale_groups import SCALE_GROUP_NAMES as ORACLE_GROUPS
from .scale_groups import scale_group

__all__ = ["ORACLE_GROUPS", "ScaleOracle", "scale_group"]


class _Groups:
    """The one-hot groups of the current batch, shared by every control unit (and by copies of the
    model, such as the EMA's)."""

    def __init__(self):
        self.onehot: Tensor | None = None


class _GroupInput(nn.Module):
    """Stands in for a control unit's ``path_norm``: returns the batch's one-hot groups."""

    def __init__(self, groups: _Groups):
        super().__init__()
        self.groups = groups

    def forward(self, descriptor: Tensor) -> Tensor:
        onehot = self.groups.onehot
        if onehot is None or onehot.shape[0] != descriptor.shape[0]:
            raise RuntimeError("scale oracle: no groups set for this batch (set_groups or targets)")
        return onehot.to(descriptor.device, descriptor.dtype)[..., None, None]

    def __deepcopy__(self, memo):
        return _GroupInput(self.groups)


class ScaleOracle:
    """Attaches group-reading path logits to every CSG control unit of a torchvision ``detector``:
    ``unit.path`` becomes a zero-initialised 1x1 conv from the 3 one-hot groups to the n paths
    (named ``...control.<k>.path.weight`` / ``.bias``, as the library's own path logits), so the
    network computes exactly what it did without path logits until the offsets train."""

    def __init__(self, detector: nn.Module):
        self.units = control_units(detector)
        if not self.units:
            raise ValueError("scale oracle: the model has no CSG control units")
        self.groups = _Groups()
        self.trained_on: Counter = Counter()  # images per group that went through a training forward
        for unit in self.units:
            unit.path = nn.Conv2d(len(ORACLE_GROUPS), unit.n, 1)
            nn.init.zeros_(unit.path.weight)
            nn.init.zeros_(unit.path.bias)
            unit.path_input, unit.path_norm = "oracle", _GroupInput(self.groups)
        self.handle = detector.register_forward_pre_hook(self._from_targets, with_kwargs=True)

    def _from_targets(self, _module, args, kwargs):
        targets = kwargs.get("targets", args[1] if len(args) > 1 else None)
        if targets is not None:
            groups = [scale_group(t["area"].tolist()) for t in targets]
            self.trained_on.update(str(g) for g in groups)
            self.set_groups(groups)

    def set_groups(self, groups: list[str | None]) -> None:
        """The groups of the next batch's images, in order (None: an image without objects)."""
        onehot = torch.zeros(len(groups), len(ORACLE_GROUPS))
        for row, group in enumerate(groups):
            if group is not None:
                onehot[row, ORACLE_GROUPS.index(group)] = 1.0
        self.groups.onehot = onehot

    def offsets(self) -> list[list[list[float]]]:
        """Per output level, per input path, the logit each group adds on top of the bias:
        ``[level][path][group]`` in :data:`ORACLE_GROUPS` order."""
        return [unit.path.weight.detach().flatten(1).tolist() for unit in self.units]
