"""Fitting CSG's ``scale`` heads once, on a trained network's frozen descriptors (a convex problem).

Trained by SGD beside the routing (``loss_scale``, :mod:`routing.scale_supervision`), the heads
ended underfit in one schedule, and a faster head lr fitted worse (docs/design.md, "The scale head
at 0.5x"). Here each head is fitted before the routing learns:

1. :func:`collect_descriptors` runs the network's backbone and neck (eval mode, one batch at a
   time, no gradient) over images and keeps each scale unit's descriptor (the concatenated GAP +
   GMP of its n paths, [N, n*C]), the input its head reads after ``path_norm``;
2. :func:`standardize_stats` gives the per-entry mean and variance of the fitting images, written
   into ``path_norm`` (:class:`routing.control.RunningStandardize`, its ``eps``), so the head sees
   exactly what it saw in the fit;
3. :func:`fit_head`: logistic regression on the standardised descriptors, the head's own loss
   (``csg_scale_target``: ``groups``, multinomial over small / large / mixed; ``presence``, one
   binary regression per output: any object small, any object large) + lambda/2 |W|^2 (the bias
   not penalised), minimised by L-BFGS in float64 until the gradient's max norm is below ``tol``
   (convex: the minimum, not an SGD end point);
4. :func:`choose_l2`: lambda by the loss of held-out images (the last ``held_out`` share of the
   fitting images, in their order), from a fixed grid; the head is then fitted on all.

:func:`install_heads` writes the statistics and the fitted heads into a detector state dict.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from .scale_supervision import scale_loss, scale_units

L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # lambda of the fit, chosen by held-out cross-entropy


@torch.no_grad()
def collect_descriptors(model: nn.Module, batches: Iterable[list[Tensor]]) -> list[Tensor]:
    """Per scale unit, the descriptors [N, n*C] (float64) of the images in ``batches`` (lists of
    [3, H, W] tensors), from the detector's transform, backbone and neck in eval mode."""
    units = scale_units(model)
    if not units:
        raise ValueError("the model has no scale path gates (csg_path_gate: scale)")
    kept: list[list[Tensor]] = [[] for _ in units]

    def keeper(level):
        def hook(module, args):
            kept[level].append(torch.cat(args[0], 1).flatten(1).double())
        return hook

    handles = [unit.register_forward_pre_hook(keeper(i)) for i, (_, unit) in enumerate(units)]
    was_training = model.training
    model.eval()
    try:
        for images in batches:
            model.backbone(model.transform(images)[0].tensors)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return [torch.cat(k) for k in kept]


def standardize_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-entry mean and (population) variance of ``x`` [N, F]: RunningStandardize's statistics."""
    return x.mean(0), x.var(0, unbiased=False)


def standardize(x: Tensor, mean: Tensor, var: Tensor, eps: float) -> Tensor:
    """RunningStandardize's output: (x - mean) / sqrt(var + eps)."""
    return (x - mean) * torch.rsqrt(var + eps)


def head_loss(weight: Tensor, bias: Tensor, x: Tensor, y: Tensor, l2: float, target: str = "groups") -> Tensor:
    """The fit's objective: the head's loss in training (:func:`routing.scale_supervision.scale_loss`:
    ``groups``, mean cross-entropy of softmax(x W^T + b) against class indices ``y``; ``presence``,
    binary cross-entropy of each sigmoid against ``y`` [N, K] in {0, 1}, summed over the K outputs,
    mean over images) plus l2 / 2 * |W|^2."""
    return scale_loss(x @ weight.T + bias, y, target) + 0.5 * l2 * weight.pow(2).sum()


def fit_head(x: Tensor, y: Tensor, outputs: int, l2: float, target: str = "groups", tol: float = 1e-7,
             max_iter: int = 2000) -> tuple[Tensor, Tensor]:
    """The minimiser (weight [outputs, F], bias [outputs]) of :func:`head_loss` on ``x`` [N, F] and
    ``y`` (class indices [N] for ``groups``, 0/1 [N, outputs] for ``presence``), by L-BFGS in float64
    from zero (the loss is convex, so this is its minimum)."""
    if l2 <= 0:
        raise ValueError(f"l2 must be > 0 (the fit of separable groups has no minimum without it), got {l2}")
    x = x.double()
    weight = torch.zeros(outputs, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(outputs, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter, tolerance_grad=tol,
                            tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = head_loss(weight, bias, x, y, l2, target)
        loss.backward()
        return loss

    opt.step(closure)
    return weight.detach(), bias.detach()


def data_loss(weight: Tensor, bias: Tensor, x: Tensor, y: Tensor, target: str = "groups") -> float:
    """:func:`head_loss` without the penalty."""
    return float(head_loss(weight, bias, x.double(), y, 0.0, target))


def accuracy(weight: Tensor, bias: Tensor, x: Tensor, y: Tensor, target: str = "groups") -> float:
    """The share of images whose label the head gets right (``presence``: every output's side of 0.5)."""
    logits = x.double() @ weight.T + bias
    if target == "groups":
        return float((logits.argmax(1) == y).double().mean())
    return float(((logits > 0) == y.bool()).all(1).double().mean())


def choose_l2(x: Tensor, y: Tensor, outputs: int, eps: float, held_out: float = 0.2,
              grid: tuple[float, ...] = L2_GRID, target: str = "groups") -> dict:
    """Lambda from ``grid`` with the lowest held-out loss: the first ``1 - held_out`` of the rows
    fit (standardised by their own statistics), the rest score. Returns ``{"l2", "scores": [{"l2",
    "train_ce", "held_out_ce", "held_out_accuracy"}]}`` (ce: :func:`data_loss`)."""
    cut = round(len(x) * (1 - held_out))
    if not 0 < cut < len(x):
        raise ValueError(f"held_out={held_out} leaves no images on one side of {len(x)}")
    mean, var = standardize_stats(x[:cut])
    fit_x, val_x = standardize(x[:cut], mean, var, eps), standardize(x[cut:], mean, var, eps)
    scores = []
    for l2 in grid:
        w, b = fit_head(fit_x, y[:cut], outputs, l2, target)
        scores.append({"l2": l2, "train_ce": round(data_loss(w, b, fit_x, y[:cut], target), 4),
                       "held_out_ce": round(data_loss(w, b, val_x, y[cut:], target), 4),
                       "held_out_accuracy": round(accuracy(w, b, val_x, y[cut:], target), 4)})
    best = min(scores, key=lambda s: s["held_out_ce"])
    return {"l2": best["l2"], "scores": scores}


def install_heads(state: dict, units: list[str], fits: list[dict]) -> dict:
    """A copy of the detector ``state`` dict with, for each unit name in ``units``, its
    ``path_norm`` statistics (``mean``, ``var``, marked initialised) and scale head (``weight``,
    ``bias``) from ``fits`` (one dict per unit, float64 tensors, cast to float32)."""
    out = dict(state)
    for name, fit in zip(units, fits, strict=True):
        out[f"{name}.path_norm.running_mean"] = fit["mean"].float()
        out[f"{name}.path_norm.running_var"] = fit["var"].float()
        out[f"{name}.path_norm.initialized"] = torch.tensor(True)
        out[f"{name}.scale_head.weight"] = fit["weight"].float()[..., None, None]
        out[f"{name}.scale_head.bias"] = fit["bias"].float()
    return out
