"""The gate operator G(eps, X) = act(eps) * F(X).

A control signal ``eps`` opens, closes, enhances or suppresses a data-flow path ``X``.
``eps`` is broadcast against ``X``: shape [B, C, 1, 1] gates channels, [B, 1, H, W] gates pixels.

Modes (``act``):

* ``softmax`` - paths compete: the signals of all paths that feed one sum are normalised to
  sum to 1 (over ``dim``, the path axis). Needs the signals of every path at once.
* ``sigmoid`` - each path is opened independently in (0, 1).
* ``tanh``    - each path is gated in (-1, 1): it can be enhanced, closed or *inverted*
  (suppressed with a negative sign). The paper's ablation finds tanh best; it is our default.
* ``relu_tanh`` - max(tanh(eps), 0) in [0, 1): the Fine Selection activation of ISG.

``F`` is the path's transform; here it is an optional module (identity by default) because in
ISG/CSG the transforms (resampling convs) are computed once and shared, then gated.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

GATE_MODES = ("softmax", "sigmoid", "tanh", "relu_tanh")


def check_mode(mode: str, allowed: tuple[str, ...] = GATE_MODES, where: str = "gate mode") -> str:
    if mode not in allowed:
        raise ValueError(f"unknown {where} {mode!r}; expected one of {', '.join(allowed)}")
    return mode


def gate_activation(eps: Tensor, mode: str, dim: int = 1) -> Tensor:
    """act(eps) for a mode. ``dim`` is the path axis used by softmax."""
    if mode == "softmax":
        return torch.softmax(eps, dim=dim)
    if mode == "sigmoid":
        return torch.sigmoid(eps)
    if mode == "tanh":
        return torch.tanh(eps)
    if mode == "relu_tanh":
        return torch.tanh(eps).clamp_min(0.0)
    raise ValueError(f"unknown gate mode {mode!r}; expected one of {', '.join(GATE_MODES)}")


def gate(signal: Tensor, x: Tensor) -> Tensor:
    """Apply an already-activated gate signal to a path (broadcast multiply)."""
    return signal * x


class Gate(nn.Module):
    """G(eps, X) = act(eps) * F(X) as a module.

    Args:
        mode: one of :data:`GATE_MODES`.
        transform: F; ``None`` means identity.
        dim: path axis for ``softmax`` when ``eps`` stacks the signals of several paths.
    """

    def __init__(self, mode: str = "tanh", transform: nn.Module | None = None, dim: int = 1):
        super().__init__()
        self.mode = check_mode(mode)
        self.transform = transform if transform is not None else nn.Identity()
        self.dim = dim

    def forward(self, eps: Tensor, x: Tensor) -> Tensor:
        return gate(gate_activation(eps, self.mode, self.dim), self.transform(x))

    def extra_repr(self) -> str:
        return f"mode={self.mode}"


def bias_for(mode: str, target: float) -> float:
    """A bias b with act(b) == target, to initialise a signal so its path starts open by ``target``.

    ``target`` is clamped inside the activation's open range (tanh: |t| <= 0.9; sigmoid:
    0.05..0.95). For ``softmax`` the answer is 0: equal logits give each of n competing paths 1/n.
    """
    if mode == "softmax":
        return 0.0
    if mode == "sigmoid":
        t = min(max(target, 0.05), 0.95)
        return math.log(t / (1 - t))
    if mode in ("tanh", "relu_tanh"):
        return math.atanh(min(max(target, -0.9), 0.9))
    raise ValueError(f"unknown gate mode {mode!r}; expected one of {', '.join(GATE_MODES)}")


def global_pool(x: Tensor) -> Tensor:
    """GAP + GMP over space, keeping the shape [B, C, 1, 1]."""
    return x.mean((2, 3), keepdim=True) + x.amax((2, 3), keepdim=True)
