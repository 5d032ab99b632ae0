"""Teaching CSG's ``scale`` path gates to read the image's scale group from its boxes.

A control unit built with ``path_gate: "scale"`` (:class:`routing.control.RoutingControlUnit`) has a head
that predicts, from its standardised descriptor, the probabilities q of the image's scale group
(small, large, mixed: :mod:`routing.scale_groups`), and path logits p_ik = o_ik . q + c_ik with
q detached. The detection loss trains o and c, the routing per group; nothing but the boxes trains
the head, so it can learn scale and nothing else (readers trained by the detection loss alone saw
scale but followed other differences between images: docs/design.md, "A scale reader taught by
the boxes"). :func:`attach_scale_supervision` (called by the builder on every detector) adds the
head's loss in training:

    loss_scale = mean over the scale units of cross_entropy(head logits, group of the image's boxes)

(``csg_scale_target: presence``: the sum over the two outputs of the binary cross-entropy against
whether the image's boxes include a small and a large object, mean over the images)

beside torchvision's losses, so the engine sums, logs and checks it like them. Its weight is 1: q is
detached and the descriptor it reads is detached, so the weight would only scale the head's own
gradient, which its lr factor (``train.lr_mults``) already sets. Images without boxes are left out.
Inference needs no boxes: q comes from the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .scale_groups import SCALE_GROUP_NAMES, scale_group, scale_presence

IGNORE = -100  # cross_entropy's ignore_index: images without boxes


def _areas(target: dict) -> list[float]:
    """``area`` when the target has it (the dataset's, as the probe's rule), else the boxes' width x height."""
    if "area" in target:
        return target["area"].tolist()
    boxes = target["boxes"]
    return ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).tolist()


def group_labels(targets: list[dict]) -> Tensor:
    """The scale group of each target's boxes, as indices into SCALE_GROUP_NAMES (IGNORE without boxes)."""
    groups = [scale_group(_areas(t)) for t in targets]
    return torch.tensor([IGNORE if g is None else SCALE_GROUP_NAMES.index(g) for g in groups], dtype=torch.long)


def presence_labels(targets: list[dict]) -> Tensor:
    """[B, 2] float: whether each target's boxes include a small and a large object (IGNORE in both
    without boxes)."""
    found = [scale_presence(_areas(t)) for t in targets]
    return torch.tensor([(IGNORE, IGNORE) if p is None else p for p in found], dtype=torch.float).reshape(-1, 2)


def scale_loss(logits: Tensor, labels: Tensor, target: str) -> Tensor:
    """A head's loss on a batch in the logits' dtype (images labelled IGNORE left out; at least one
    must be labelled): the training loss, and the fit's (routing.scale_head_fit.head_loss)."""
    labels = labels.to(logits.device)
    if target == "groups":
        return F.cross_entropy(logits, labels, ignore_index=IGNORE)
    keep = labels[:, 0] != IGNORE
    kept = logits[keep]
    return F.binary_cross_entropy_with_logits(kept, labels[keep].to(kept.dtype), reduction="sum") / len(kept)


def scale_units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, unit) of every CSG control unit with a scale head, in the model's order (levels)."""
    from .control import RoutingControlUnit

    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, RoutingControlUnit) and getattr(m, "scale_head", None) is not None]


class ScaleSupervision:
    """The hooks on a detector whose CSG has ``scale`` path gates: before a training forward, the
    batch's group labels from its targets; after it, ``loss_scale`` added to the loss dict."""

    def __init__(self, detector: nn.Module, units: list[nn.Module]):
        targets = {u.scale_target for u in units}
        if len(targets) != 1:
            raise ValueError(f"scale supervision: the scale units predict different targets {sorted(targets)}")
        self.units, self.target = units, targets.pop()
        self.labels: Tensor | None = None
        detector.register_forward_pre_hook(self._before, with_kwargs=True)
        detector.register_forward_hook(self._after, with_kwargs=True)

    def _before(self, module, args, kwargs):
        targets = kwargs.get("targets", args[1] if len(args) > 1 else None)
        if not module.training or targets is None:
            self.labels = None
        else:
            self.labels = group_labels(targets) if self.target == "groups" else presence_labels(targets)

    def _after(self, module, args, kwargs, output):
        labels, self.labels = self.labels, None
        if labels is None or not isinstance(output, dict):
            return None
        losses, labelled = [], bool((labels != IGNORE).any())  # presence: both columns IGNORE together
        for unit in self.units:
            logits = unit.scale_logits
            if logits is None:
                raise RuntimeError("scale supervision: a scale path gate ran no forward in this training step")
            unit.scale_logits = logits.detach()  # keep no graph on the module
            if labelled:
                losses.append(scale_loss(logits.float(), labels, self.target))
            else:  # a batch without boxes: zero, still attached so every rank's graph has the head
                losses.append(logits.float().sum() * 0.0)
        return {**output, "loss_scale": torch.stack(losses).mean()}


def attach_scale_supervision(detector: nn.Module) -> ScaleSupervision | None:
    """Attach :class:`ScaleSupervision` to ``detector`` if its CSG has ``scale`` path gates
    (returns it; ``None`` and no hooks otherwise)."""
    units = [u for _, u in scale_units(detector)]
    return ScaleSupervision(detector, units) if units else None
