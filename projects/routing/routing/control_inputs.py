"""Do CSG's control units see what routing needs? Their inputs, per probe group.

The probe (:mod:`dsic.analysis.probe`) shows the trained state matrix W barely follows the image, and
:mod:`routing.incentive` that the loss asks it to (small- and large-object images pull some
paths opposite ways). A channel control unit computes w_ik from its descriptor d (GAP + GMP of the
n paths, after ``control_norm``) through a hidden layer h = ReLU(conv(d)) (leaky with
``csg_control_act: leaky_relu``); W can only follow the
image's scale composition if h carries it. :func:`control_inputs` measures, per output level k:

* ``descriptor_accuracy`` / ``hidden_accuracy``: how well d and h tell small-object from
  large-object probe images (5-fold nearest-centroid accuracy on standardised features, as the
  probe's ``W_small_large_accuracy``; chance 0.5);
* ``hidden_alive``: the fraction of hidden units > 0 on some probe image (a leaky unit below zero
  for every image is counted as not alive, though it still passes a tenth of its input);
* ``hidden_separation``: the largest group-mean difference of one hidden unit over its pooled
  within-group std (the effect size the best single unit reaches);
* ``statistics_accuracy`` / ``statistics_separation``: the same accuracy and best single effect
  size for the 3n scale-free statistics of the unit's magnitude maps
  (:func:`routing.control.scale_statistics`, what ``csg_path_gate: statistics`` reads), whether or
  not the unit uses them.

A high descriptor accuracy with a low hidden one places the loss of information in the unit's
hidden layer; both high with a flat W place it in the readout to w_ik.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from dsic.analysis.probe import control_units, effect_sizes, forward_each, nearest_centroid_cv, probe_images

from .control import scale_statistics


@torch.no_grad()
def unit_inputs(model: nn.Module, images: list[torch.Tensor]) -> list[dict[str, np.ndarray]]:
    """Per control unit: ``descriptor`` [N, n*C], ``hidden`` [N, H] and ``statistics`` [N, 3n]
    (the scale statistics of its magnitude maps) of each image."""
    model.eval()
    units = control_units(model)
    seen: list[dict[str, list]] = [{"descriptor": [], "hidden": [], "statistics": []} for _ in units]

    def record(index):
        def hook(_module, inputs, output):
            seen[index]["descriptor"].append(inputs[0].flatten(1).float().cpu().numpy())
        return hook

    def record_hidden(index):
        def hook(_module, _inputs, output):  # ReLU in place: its output is the hidden layer
            seen[index]["hidden"].append(output.flatten(1).float().cpu().numpy().copy())
        return hook

    def record_statistics(index):
        def hook(_module, inputs, _output):  # the unit's inputs: (pooled, magnitudes)
            seen[index]["statistics"].append(scale_statistics(inputs[1]).flatten(1).cpu().numpy())
        return hook

    forward_each(model, images, [(u.channel[0], record(i)) for i, u in enumerate(units)]
                 + [(u.channel[1], record_hidden(i)) for i, u in enumerate(units)]
                 + [(u, record_statistics(i)) for i, u in enumerate(units)])
    return [{k: np.concatenate(v) for k, v in unit.items()} for unit in seen]


def control_inputs(model: nn.Module, data_root: str | Path, limit: int | None = None) -> dict:
    """The statistics of the module doc over the probe's small and large groups (lists per level)."""
    from dsic.data.pixels import read_image

    if not control_units(model):
        raise ValueError("control_inputs: the model has no CSG control units")
    device = next(model.parameters()).device
    paths = probe_images(data_root, limit)
    groups = {g: unit_inputs(model, [read_image(p).to(device) for p in paths[g]]) for g in ("small", "large")}
    out: dict = {"descriptor_accuracy": [], "hidden_accuracy": [], "statistics_accuracy": [], "hidden_alive": [],
                 "hidden_separation": [], "statistics_separation": []}
    for small, large in zip(groups["small"], groups["large"]):
        labels = np.array([0] * len(small["hidden"]) + [1] * len(large["hidden"]))
        for key in ("descriptor", "hidden", "statistics"):
            feats = np.concatenate([small[key], large[key]])
            out[f"{key}_accuracy"].append(round(nearest_centroid_cv(feats, labels), 4))
        hidden = np.concatenate([small["hidden"], large["hidden"]])
        alive = (hidden > 0).any(0)
        out["hidden_alive"].append(round(float(alive.mean()), 4))
        out["hidden_separation"].append(
            round(float(effect_sizes(small["hidden"][:, alive], large["hidden"][:, alive]).max()), 3) if alive.any() else 0.0)
        out["statistics_separation"].append(round(float(effect_sizes(small["statistics"], large["statistics"]).max()), 3))
    out["images"] = {g: len(paths[g]) for g in ("small", "large")}
    return out
