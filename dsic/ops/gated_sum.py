"""The gated sum of one CSG output level, with a backward in fewer passes.

    P = sum_{i < m} (w_i * M_i) * s_i  +  sum_{i >= m} M_i * s_i

``w``: channel signals [B, m, C, 1, 1]; ``maps``: n >= m paths M_i [B, C, H, W]; ``s``: pixel
signals [B, n, H, W]. The first m paths are gated by w_i here; the others arrive gated already
(CSG gates its upsampled paths at the source resolution, where the product is cheaper).

Gradients, with G = dL/dP and T_i = G * M_i:

    dL/dM_i = G * s_i * w_i          dL/dw_i = sum_hw T_i * s_i          dL/ds_i = sum_c T_i * w_i
    (pre-gated paths: dL/dM_i = G * s_i,  dL/ds_i = sum_c T_i)

Plain autograd keeps the product w_i * M_i of every path for the backward and needs two products
and a reduction for each of dL/dw_i and dL/ds_i; :class:`GatedSum` keeps only w, M, s, forms one
product T_i per path and reads both signal gradients from it as batched matrix-vector products.
It is used only when a gradient is wanted and the code is not traced or scripted; otherwise
(inference, export) :func:`gated_sum` runs the plain formula.
"""

from __future__ import annotations

import torch
from torch import Tensor


def plain_gated_sum(w: Tensor, maps: list[Tensor], s: Tensor) -> Tensor:
    """The formula in plain differentiable operators (traceable, scriptable)."""
    m = w.shape[1]
    p = (w[:, 0] * maps[0]).mul_(s[:, :1]) if m > 0 else maps[0] * s[:, :1]  # in place: one buffer less
    for i in range(1, len(maps)):
        p = p.addcmul_(w[:, i] * maps[i] if i < m else maps[i], s[:, i : i + 1])  # += (w_i M_i) s_i, fused
    return p


def reusing_gated_sum(w: Tensor, maps: list[Tensor], s: Tensor) -> Tensor:
    """The formula without autograd, every product w_i * M_i written into one scratch buffer: on the
    CPU a fresh full-resolution tensor costs its page faults, ten times the multiply itself."""
    m = w.shape[1]
    p = torch.mul(w[:, 0], maps[0]).mul_(s[:, :1]) if m > 0 else torch.mul(maps[0], s[:, :1])
    scratch = torch.empty_like(p) if m > 1 else None
    for i in range(1, len(maps)):
        x = torch.mul(w[:, i], maps[i], out=scratch) if i < m else maps[i]
        p.addcmul_(x, s[:, i : i + 1])
    return p


class GatedSum(torch.autograd.Function):
    """:func:`plain_gated_sum` with the backward of the module docstring."""

    @staticmethod
    def forward(ctx, w: Tensor, s: Tensor, *maps: Tensor) -> Tensor:
        ctx.save_for_backward(w, s, *maps)
        return reusing_gated_sum(w, list(maps), s)

    @staticmethod
    def backward(ctx, grad: Tensor):
        w, s, *maps = ctx.saved_tensors
        grad = grad.contiguous()
        b, c = grad.shape[:2]
        m = w.shape[1]
        grad_w = torch.empty_like(w) if ctx.needs_input_grad[0] else None
        grad_s = torch.empty_like(s, memory_format=torch.contiguous_format) if ctx.needs_input_grad[1] else None
        ones = grad.new_ones(b, 1, c)  # sum_c as a matrix-vector product: 5x faster than sum(1) over NCHW
        grad_maps = []
        for i, x in enumerate(maps):
            si = s[:, i : i + 1]
            t = torch.mul(grad, x)  # T_i; its buffer then holds dL/dM_i (one full-resolution allocation per path)
            if grad_s is not None:
                weights = w[:, i].reshape(b, 1, c) if i < m else ones
                grad_s[:, i] = torch.bmm(weights, t.view(b, c, -1)).view_as(grad_s[:, i])
            if grad_w is not None and i < m:
                grad_w[:, i] = torch.bmm(t.view(b, c, -1), si.reshape(b, -1, 1)).view(b, c, 1, 1)
            if ctx.needs_input_grad[2 + i]:
                torch.mul(grad, si, out=t)
                grad_maps.append(t.mul_(w[:, i]) if i < m else t)
            else:
                grad_maps.append(None)
        return grad_w, grad_s, *grad_maps


def gated_sum(w: Tensor, maps: list[Tensor], s: Tensor) -> Tensor:
    """P = sum_{i < m} (w_i * M_i) * s_i + sum_{i >= m} M_i * s_i (see the module docstring)."""
    if torch.jit.is_scripting() or torch.jit.is_tracing() or any(x.dtype != s.dtype for x in (w, *maps)):
        return plain_gated_sum(w, maps, s)  # mixed dtypes: autocast's promotions, as the plain operators do them
    if torch.is_grad_enabled() and (w.requires_grad or s.requires_grad or any(x.requires_grad for x in maps)):
        return GatedSum.apply(w, s, *maps)
    return reusing_gated_sum(w, maps, s)
