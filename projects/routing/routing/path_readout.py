"""Where W's routing comes from: the path logits or the channel logits of CSG's control units.

A control unit with path logits (``csg_path_gate``) computes w_ik[c] = act(z_ik[c] + p_ik): z from
its channel readout, p one logit per path shared by the path's channels, and the state matrix
W[i, k] = mean_c act(z_ik[c] + p_ik). The probe (:mod:`dsic.analysis.probe`) measures how far W
differs between the all-small and all-large probe groups; :func:`path_readout` splits that
difference by its source and says how much W a change of p buys. Per entry [i][k] (input path i,
output level k, the probe's layout):

* ``p_diff`` / ``p_effect``: the path logit's group-mean difference (small - large) and its
  effect size (0 everywhere without path logits);
* ``W_diff``: W's group-mean difference (the probe's number, recomputed here);
* ``W_diff_path_only``: the same with every image's z replaced by its mean over all probe images
  (only p follows the image): what the path logits alone route;
* ``W_diff_channels_only``: p replaced by its mean over the probe images (only z follows it);
* ``W_slope``: dW/dp, the mean over images and channels of act'(z + p) (softmax: its diagonal,
  a(1 - a)); a W difference of D needs a path-logit difference of about D / ``W_slope``.

The two counterfactual differences need not add up to ``W_diff`` (act is not linear), but each is
exact for its own question. Differences are small minus large, signed.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dsic.analysis.probe import control_units, effect_sizes, forward_each, probe_images
from dsic.ops.gate import gate_activation


@torch.no_grad()
def unit_logits(model: nn.Module, images: list[torch.Tensor]) -> list[dict[str, np.ndarray]]:
    """Per control unit: channel logits ``z`` [N, n, C] and path logits ``p`` [N, n] (zeros without
    path logits) of each image."""
    model.eval()
    units = control_units(model)
    seen: list[dict[str, list]] = [{"z": [], "p": []} for _ in units]

    def record(index, key):
        def hook(_module, _inputs, output):
            seen[index][key].append(output.flatten(1).float().cpu().numpy().copy())
        return hook

    forward_each(model, images, [(u.channel[2], record(i, "z")) for i, u in enumerate(units)]
                 + [(u.path, record(i, "p")) for i, u in enumerate(units) if u.path is not None])
    out = []
    for unit, got in zip(units, seen):
        z = np.concatenate(got["z"]).reshape(-1, unit.n, unit.channels)
        p = np.concatenate(got["p"]) if got["p"] else np.zeros(z.shape[:2], np.float32)
        out.append({"z": z, "p": p})
    return out


def _state(z: np.ndarray, p: np.ndarray, mode: str) -> np.ndarray:
    """W [N, n] = mean_c act(z + p) for z [N, n, C] and p [N, n] (softmax over the n paths)."""
    logits = torch.from_numpy(z + p[:, :, None])
    return gate_activation(logits, mode, dim=1).mean(2).numpy()


def _slope(z: np.ndarray, p: np.ndarray, mode: str) -> np.ndarray:
    """dW/dp [n]: act'(z + p) averaged over images and channels."""
    logits = torch.from_numpy(z + p[:, :, None]).requires_grad_(True)
    with torch.enable_grad():
        act = gate_activation(logits, mode, dim=1)
        if mode == "softmax":  # the diagonal of the Jacobian over paths
            grad = act * (1 - act)
        else:  # element-wise modes: the derivative is the gradient of the sum
            (grad,) = torch.autograd.grad(act.sum(), logits)
    return grad.detach().mean((0, 2)).numpy()


def _group_diff(values: np.ndarray, split: int) -> np.ndarray:
    """Mean of the first ``split`` rows (the small group) minus the mean of the rest (the large)."""
    return values[:split].mean(0) - values[split:].mean(0)


def path_readout(model: nn.Module, data_root: str | Path, limit: int | None = None) -> dict:
    """The statistics of the module doc over the probe's small and large groups ([i][k] lists)."""
    from dsic.data.pixels import read_image

    units = control_units(model)
    if not units:
        raise ValueError("path_readout: the model has no CSG control units")
    device = next(model.parameters()).device
    paths = probe_images(data_root, limit)
    groups = {g: unit_logits(model, [read_image(p).to(device) for p in paths[g]]) for g in ("small", "large")}
    keys = ("p_diff", "p_effect", "W_diff", "W_diff_path_only", "W_diff_channels_only", "W_slope")
    columns: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    for unit, small, large in zip(units, groups["small"], groups["large"]):
        z = np.concatenate([small["z"], large["z"]])
        p = np.concatenate([small["p"], large["p"]])
        z_mean, p_mean = z.mean(0, keepdims=True), p.mean(0, keepdims=True)
        diff = functools.partial(_group_diff, split=len(small["z"]))
        columns["p_diff"].append(diff(p))
        columns["p_effect"].append(effect_sizes(small["p"], large["p"]))  # 0 where p is constant
        columns["W_diff"].append(diff(_state(z, p, unit.mode)))
        columns["W_diff_path_only"].append(diff(_state(np.broadcast_to(z_mean, z.shape), p, unit.mode)))
        columns["W_diff_channels_only"].append(diff(_state(z, np.broadcast_to(p_mean, p.shape), unit.mode)))
        columns["W_slope"].append(_slope(z, p, unit.mode))
    # columns are per output level k; stacked as [i][k]
    out: dict = {key: np.round(np.stack(cols, 1), 5).tolist() for key, cols in columns.items()}
    out["images"] = {g: len(paths[g]) for g in ("small", "large")}
    return out
