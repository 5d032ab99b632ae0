"""Would routing by image pay? The gradient of the detection loss on CSG's state matrix, per image.

The gate probe (:mod:`dsic.analysis.probe`) measures whether a trained CSG routes images differently.
This module asks the question behind it: does the training loss *want* it to? For one image, the
state matrix is W[i, k] = mean_c act(w_ik[c]); moving every channel of path i -> k by the same
delta changes that image's loss by delta * G[i, k], with

    G[i, k] = sum_c dL / d act(w_ik[c])      (the image's training loss L, all its terms)

If the probe groups' mean G differ in sign at an entry (small-object images want path i -> k more
open, large-object images want it more closed), no fixed W is best for both and a W that follows
the image would lower the loss: there is an incentive to route by image. If the groups' G agree,
a static weighting is what the loss asks for. :func:`routing_incentive` returns, like
:func:`dsic.analysis.individuality`:

* ``G_<group>``: the group mean of G (n_in x n_out, per 1.0 of W), ``G_std_<group>`` its std;
* ``G_max_diff`` / ``G_max_diff_at`` / ``G_effect_size``: the largest |mean_small - mean_large|,
  its entry and its size over the pooled within-group std;
* ``G_effect_sizes``: |mean_small - mean_large| / pooled std for every entry;
* ``G_opposite``: the entries where the small and large groups' means have opposite signs and
  both are at least ``G_scale`` / 10, with ``G_scale`` the median |mean G| over entries and groups;
* ``images``: images per group.

G is the gradient training follows: torchvision's Faster R-CNN detaches its proposals, so the
loss's dependence on W through the proposal boxes is not in it, as it is not in SGD's step.
The model is put in training mode for the loss (torchvision's detectors return losses only
there); its RPN and RoI sampling draw from ``torch.manual_seed(seed + index)`` per image, so the
numbers are repeatable. Nothing is updated: no optimizer step, and buffers that move in training mode
(batch-norm and ``RunningStandardize`` statistics) are put back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from dsic.analysis.probe import GROUP_NAMES, control_units, effect_sizes, largest_difference


def image_gradients(model: nn.Module, samples: list[tuple[torch.Tensor, dict]], seed: int = 0,
                    terms: tuple[str, ...] | None = None) -> np.ndarray:
    """G [N, n_in, n_out] for ``samples`` of (image, target), one image at a time (module doc);
    ``terms``: the loss terms summed (e.g. ``("loss_objectness",)``), None: all of them."""
    units = control_units(model)
    if not units:
        raise ValueError("the model has no CSG control units (neck csg or dsic)")
    kept: list[torch.Tensor | None] = [None] * len(units)

    def keep(index):
        def record(_module, _inputs, output):
            output[0].retain_grad()
            kept[index] = output[0]
        return record

    handles = [u.register_forward_hook(keep(k)) for k, u in enumerate(units)]
    was_training = model.training
    saved = {name: b.detach().clone() for name, b in model.named_buffers()}  # running stats move in train mode
    model.train()
    out = []
    try:
        for index, (image, target) in enumerate(samples):
            torch.manual_seed(seed + index)
            model.zero_grad(set_to_none=True)
            losses = model([image], [target])
            sum(v for name, v in losses.items() if terms is None or name in terms).backward()
            # w of output level k: [1, n_in, C, 1, 1] -> sum over channels per input level i
            out.append(torch.stack([torch.zeros(w.shape[1], dtype=w.dtype) if w.grad is None
                                    else w.grad[0].flatten(1).sum(1) for w in kept], 1).numpy())
    finally:
        for h in handles:
            h.remove()
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(saved[name])
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return np.stack(out)


def incentive_statistics(groups: dict[str, np.ndarray]) -> dict:
    """Statistics (module doc) from ``{group: G [N, n_in, n_out]}`` for small, large (and mixed)."""
    out: dict = {"images": {g: len(v) for g, v in groups.items()}}
    for g, v in groups.items():
        out[f"G_{g}"] = np.round(v.mean(0), 6).tolist()
        out[f"G_std_{g}"] = np.round(v.std(0), 6).tolist()
    diff = largest_difference("G", groups["small"], groups["large"])
    out.update({k: round(v, 6) if isinstance(v, float) else v for k, v in diff.items()})
    small, large = groups["small"].mean(0), groups["large"].mean(0)
    out["G_effect_sizes"] = np.round(effect_sizes(groups["small"], groups["large"]), 3).tolist()
    scale = float(np.median(np.abs(np.stack([v.mean(0) for v in groups.values()]))))
    floor = scale / 10
    opposite = (np.sign(small) != np.sign(large)) & (np.abs(small) >= floor) & (np.abs(large) >= floor)
    out["G_scale"] = round(scale, 6)
    out["G_opposite"] = [[int(i), int(k)] for i, k in zip(*np.nonzero(opposite))]
    return out


def probe_samples(data_root: str | Path, group: str, classes: list[dict] | None, limit: int | None):
    """(image, target) pairs of a probe group (``probe_<group>/`` and its annotations)."""
    from dsic.data.coco import CocoDetection

    root = Path(data_root)
    data = CocoDetection(root / f"probe_{group}", root / "annotations" / f"instances_probe_{group}.json",
                         classes=classes)
    return [data[i] for i in range(min(len(data), limit) if limit else len(data))]


def routing_incentive(model: nn.Module, data_root: str | Path, classes: list[dict] | None = None,
                      limit: int | None = None, seed: int = 0) -> dict:
    """:func:`incentive_statistics` of ``model`` over the probe groups in ``data_root``."""
    groups = {g: image_gradients(model, probe_samples(data_root, g, classes, limit), seed) for g in GROUP_NAMES}
    return incentive_statistics(groups)
