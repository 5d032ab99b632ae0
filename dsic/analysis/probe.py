"""Does a gated neck route images differently? Gate states over probe groups, and statistics.

The probe groups come from ``dsic data synth --probe N`` (:func:`dsic.data.synth.generate_probe`):
images whose objects are all small, all large, or mixed. :func:`collect_states` runs a detector on
each image (eval mode, one at a time) and keeps, per image, the CSG state matrix W[i, k]
(channel-mean act(w_ik)), ISG's channel-mean Fine Selection a_i per stage, and which hidden units
of the CSG channel control units were active (> 0). :func:`individuality` turns the groups into
numbers:

* ``W_<group>`` / ``W_std_<group>``: the group mean and within-group std of W (n_in x n_out);
* ``W_max_diff``: the largest |mean_small - mean_large| over the entries of W, at ``W_max_diff_at``
  (i, k), with its effect size ``W_effect_size`` (difference / pooled within-group std, Cohen's d);
* ``a_<group>``: ISG's mean a_i per stage, and ``a_max_diff`` between small and large;
* ``W_group_accuracy``: how well W alone predicts the group (small / large / mixed):
  5-fold cross-validated accuracy of a nearest-centroid classifier on standardised W (chance: 1/3);
  ``W_small_large_accuracy`` the same for small vs large only (chance: 1/2);
* ``S_<group>``, ``S_max_diff``, ``S_max_diff_at``, ``S_effect_size``: the same for the pixel
  selection maps, S[i, k] = spatial mean of s_ik (the other half of CSG's gating, a diagnostic
  beside W, which is the state matrix the goal is stated on);
* ``control_units_alive``: the share of the CSG channel units' hidden ReLUs that are active for
  at least one probe image (dead units make w_ik the same for every image);
* ``w_channel_max_diff``, ``w_channel_max_diff_at`` ([i, k, c]), ``w_channel_effect_size``: the
  same small-vs-large difference for single channels, act(w_ik[c]), before W's mean over channels,
  and ``w_channel_image_std``, the median over channels of act(w_ik[c])'s std over all probe
  images. They tell "the gates follow the image but W's channel mean averages it away" from "the
  gates are the same for every image".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.pixels import read_image
from ..models.states import gate_states
from ..necks.csg import ControlUnit

GROUP_NAMES = ("small", "large", "mixed")


def control_units(model: nn.Module) -> list[nn.Module]:
    """The CSG control units of ``model`` (:class:`dsic.necks.csg.ControlUnit`), one per output level,
    in the order of the levels; empty for necks without CSG."""
    return [m for m in model.modules() if isinstance(m, ControlUnit)]


def forward_each(model: nn.Module, images: list[torch.Tensor], hooks: list[tuple[nn.Module, Callable]]) -> None:
    """Runs ``model`` on each image alone with the forward ``hooks`` ((module, hook) pairs)
    registered, and removes them afterwards, also when the forward fails."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    try:
        for image in images:
            model([image])
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def collect_states(model: nn.Module, images: list[torch.Tensor]) -> dict:
    """Per image: ``W`` [N, n, n] (or None), ``w_channels`` [N, n_out, n_in, C] (act(w_ik[c]), or
    None), ``S`` [N, n, n] (or None), ``a`` [N, stages] (or None) and ``alive`` (per control unit, a
    bool vector of hidden units that were > 0 for some image)."""
    model.eval()
    units = control_units(model)
    relus = [u.channel[1] for u in units]
    alive = [None] * len(relus)
    channels: list[list] = [[] for _ in units]  # per unit, per image: act(w) [n_in, C]

    def hook(index):
        def record(_module, _inputs, output):
            active = (output.flatten(1) > 0).any(0)
            alive[index] = active if alive[index] is None else alive[index] | active
        return record

    def keep(index):
        def record(_module, _inputs, output):
            channels[index].append(output[0][0, :, :, 0, 0].float().cpu().numpy())
        return record

    handles = [r.register_forward_hook(hook(i)) for i, r in enumerate(relus)]
    handles += [u.register_forward_hook(keep(i)) for i, u in enumerate(units)]
    w, a, sel = [], [], []
    try:
        for image in images:
            model([image])
            states = gate_states(model)
            if "csg" in states:
                w.append(states["csg"]["w"][0].float().numpy())
                sel.append(torch.stack([x[0].float().mean((1, 2)) for x in states["csg"]["s"]], 1).numpy())
            if "isg" in states:
                a.append([x[0].float().mean().item() for x in states["isg"]["a"]])
    finally:
        for h in handles:
            h.remove()
    return {"W": np.stack(w) if w else None, "S": np.stack(sel) if sel else None, "a": np.array(a) if a else None,
            "w_channels": np.stack([np.stack(c) for c in channels], 1) if units else None,
            "alive": [x.numpy() for x in alive if x is not None]}


def nearest_centroid_cv(features: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """Stratified ``folds``-fold accuracy of a nearest-centroid classifier on features standardised
    with the training folds' mean and std."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), int)
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        fold_of[rng.permutation(idx)] = np.arange(len(idx)) % folds
    correct = 0
    for f in range(folds):
        train, test = fold_of != f, fold_of == f
        mean, std = features[train].mean(0), features[train].std(0) + 1e-8
        z_train, z_test = (features[train] - mean) / std, (features[test] - mean) / std
        classes = np.unique(labels[train])
        centroids = np.stack([z_train[labels[train] == c].mean(0) for c in classes])
        dist = ((z_test[:, None, :] - centroids[None]) ** 2).sum(-1)
        correct += int((classes[dist.argmin(1)] == labels[test]).sum())
    return correct / len(labels)


def effect_sizes(small: np.ndarray, large: np.ndarray) -> np.ndarray:
    """Per entry of [N, ...] samples of two groups: |mean_small - mean_large| over the pooled
    within-group std (population variances, floored at 1e-12)."""
    pooled = np.sqrt((small.var(0) + large.var(0)) / 2)
    return np.abs(small.mean(0) - large.mean(0)) / np.maximum(pooled, 1e-12)


def largest_difference(name: str, small: np.ndarray, large: np.ndarray) -> dict:
    """``<name>_max_diff`` (the largest |mean_small - mean_large| over the [N, n, n] matrices' entries),
    ``<name>_max_diff_at`` (its entry) and ``<name>_effect_size`` (over the pooled within-group std)."""
    diff = small.mean(0) - large.mean(0)
    i, k = np.unravel_index(np.abs(diff).argmax(), diff.shape)
    return {f"{name}_max_diff": round(float(abs(diff[i, k])), 5), f"{name}_max_diff_at": [int(i), int(k)],
            f"{name}_effect_size": round(float(effect_sizes(small, large)[i, k]), 3)}


def _channel_difference(small: np.ndarray, large: np.ndarray, every: list[np.ndarray]) -> dict:
    """Single-channel statistics of act(w_ik[c]) from [N, n_out, n_in, C] arrays (module doc)."""
    diff = small.mean(0) - large.mean(0)
    k, i, c = np.unravel_index(np.abs(diff).argmax(), diff.shape)
    spread = np.concatenate(every).std(0)
    return {"w_channel_max_diff": round(float(abs(diff[k, i, c])), 5),
            "w_channel_max_diff_at": [int(i), int(k), int(c)],
            "w_channel_effect_size": round(float(effect_sizes(small, large)[k, i, c]), 3),
            "w_channel_image_std": round(float(np.median(spread)), 5)}


def individuality(groups: dict[str, dict]) -> dict:
    """Statistics (module doc) from ``{group: collect_states(...)}`` for the groups small, large
    and mixed. JSON-ready (lists and floats)."""
    out: dict = {}
    ws = {g: groups[g]["W"] for g in GROUP_NAMES if g in groups and groups[g]["W"] is not None}
    if ws:
        for g, w in ws.items():
            out[f"W_{g}"] = np.round(w.mean(0), 5).tolist()
            out[f"W_std_{g}"] = np.round(w.std(0), 5).tolist()
        out.update(largest_difference("W", ws["small"], ws["large"]))
        feats = np.concatenate([w.reshape(len(w), -1) for w in ws.values()])
        labels = np.concatenate([np.full(len(w), n) for n, w in enumerate(ws.values())])
        out["W_group_accuracy"] = round(nearest_centroid_cv(feats, labels), 4)
        two = labels < 2
        out["W_small_large_accuracy"] = round(nearest_centroid_cv(feats[two], labels[two]), 4)
    chans = {g: c for g, v in groups.items() if (c := v.get("w_channels")) is not None}
    if "small" in chans and "large" in chans:
        out.update(_channel_difference(chans["small"], chans["large"], list(chans.values())))
    sel = {g: groups[g].get("S") for g in GROUP_NAMES if g in groups and groups[g].get("S") is not None}
    if sel:
        for g, v in sel.items():
            out[f"S_{g}"] = np.round(v.mean(0), 5).tolist()
        out.update(largest_difference("S", sel["small"], sel["large"]))
    a = {g: groups[g]["a"] for g in GROUP_NAMES if g in groups and groups[g]["a"] is not None}
    if a:
        for g, v in a.items():
            out[f"a_{g}"] = np.round(v.mean(0), 5).tolist()
        out["a_max_diff"] = round(float(np.abs(a["small"].mean(0) - a["large"].mean(0)).max()), 5)
    alive = [x for g in groups.values() for x in g["alive"]]
    if alive:
        units = len(groups[next(iter(groups))]["alive"])
        merged = [np.any([groups[g]["alive"][u] for g in groups], 0) for u in range(units)]
        out["control_units_alive"] = [round(float(m.mean()), 4) for m in merged]
    return out


def probe_images(data_root: str | Path, limit: int | None = None) -> dict[str, list[Path]]:
    """``{group: image paths}`` of a synth folder holding ``probe_<group>/``."""
    root = Path(data_root)
    found = {}
    for g in GROUP_NAMES:
        folder = root / f"probe_{g}"
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no probe group here (make it with `dsic data synth --probe N`)")
        found[g] = sorted(folder.glob("*.jpg"))[:limit]
    return found


def probe_model(model: nn.Module, data_root: str | Path, limit: int | None = None) -> dict:
    """:func:`individuality` of ``model`` over the probe groups in ``data_root``."""
    device = next(model.parameters()).device
    groups = {g: collect_states(model, [read_image(p).to(device) for p in paths])
              for g, paths in probe_images(data_root, limit).items()}
    return individuality(groups)
