"""FPT: Feature Pyramid Transformer (Zhang et al., 2020), written from the paper, simplified for CPU.

Built on the FPN's outputs P_i (:class:`~dsic.necks.fpn.TopDown`). Each level is transformed by

* **self-transformer** (ST): non-local attention inside the level, queries from P_i, keys and
  values from P_i;
* **grounding transformer** (GT, top-down): queries from the finer P_i, keys/values from the
  coarser P_{i+1}; similarity is the negative squared Euclidean distance, as in the paper
  (-||q - k||^2, whose |q|^2 term cancels in the softmax over keys);
* **rendering transformer** (RT, bottom-up): queries from the coarser P_i, keys/values from the
  finer P_{i-1}: channel weights sigmoid(GAP(K)) re-weight Q, V is brought to P_i's size by a stride-2
  3x3 conv, and their sum is refined by a 3x3 conv;

and the level's output is a 3x3 conv over the concatenation [P_i, ST, GT, RT] (GT missing on the
coarsest level, RT on the finest).

Simplifications (documented choices):

* keys and values of ST and GT are average-pooled to at most ``kv_size`` x ``kv_size`` positions
  (default 16), which keeps attention linear in the number of query pixels;
* a single softmax per attention (the paper's mixture of softmaxes is left out) with query/key
  width ``out_channels // reduction`` (default 4);
* GT and RT use the adjacent level only (the paper lets every higher / lower level interact).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones.staged import BackboneSpec
from .base import Neck, conv, init_conv
from .fpn import TopDown


def tokens(x: Tensor) -> Tensor:
    """[B, C, H, W] -> [B, HW, C]."""
    return x.flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Queries from ``x``, keys/values from ``context`` pooled to <= kv_size^2 positions."""

    def __init__(self, channels: int, width: int, kv_size: int, euclidean: bool):
        super().__init__()
        self.q, self.k = conv(channels, width, 1), conv(channels, width, 1)
        self.v, self.out = conv(channels, channels, 1), conv(channels, channels, 1)
        self.kv_size, self.euclidean, self.scale = kv_size, euclidean, width ** -0.5

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        h, w = context.shape[-2:]
        if h * w > self.kv_size ** 2:
            context = F.adaptive_avg_pool2d(context, (min(h, self.kv_size), min(w, self.kv_size)))
        q, k, v = tokens(self.q(x)), tokens(self.k(context)), tokens(self.v(context))
        logits = q @ k.transpose(1, 2)
        if self.euclidean:  # -|q - k|^2 up to the per-query constant |q|^2
            logits = 2 * logits - (k * k).sum(-1).unsqueeze(1)
        attn = torch.softmax(logits * self.scale, dim=-1)
        y = (attn @ v).transpose(1, 2).reshape(x.shape[0], -1, *x.shape[-2:])
        return self.out(y)


class Rendering(nn.Module):
    """RT: the finer level ``low`` renders the coarser ``high``."""

    def __init__(self, channels: int):
        super().__init__()
        self.q, self.k, self.v = conv(channels, channels, 1), conv(channels, channels, 1), conv(channels, channels, 1)
        self.down = conv(channels, channels, 3, stride=2)
        self.refine = conv(channels, channels, 3)

    def forward(self, high: Tensor, low: Tensor) -> Tensor:
        weights = torch.sigmoid(self.k(low).mean((2, 3), keepdim=True))
        v = self.down(self.v(low))
        if v.shape[-2:] != high.shape[-2:]:
            v = F.interpolate(v, size=high.shape[-2:], mode="nearest")
        return self.refine(F.relu(self.q(high) * weights + v))


class FPT(Neck):
    torchvision_fpn_prefix = "fpn."

    def __init__(self, spec: BackboneSpec, out_channels: int = 256, extra: str | None = "pool",
                 reduction: int = 4, kv_size: int = 16):
        super().__init__(spec, out_channels, extra)
        n, c = len(self.in_channels), out_channels
        width = max(c // reduction, 8)
        self.fpn = TopDown(self.in_channels, c)
        self.self_t = nn.ModuleList(Attention(c, width, kv_size, euclidean=False) for _ in range(n))
        self.ground_t = nn.ModuleList(Attention(c, width, kv_size, euclidean=True) for _ in range(n - 1))
        self.render_t = nn.ModuleList(Rendering(c) for _ in range(n - 1))
        parts = [2 + (i < n - 1) + (i > 0) for i in range(n)]
        self.fuse = nn.ModuleList(conv(p * c, c, 3) for p in parts)
        for module in (self.self_t, self.ground_t, self.render_t, self.fuse):
            init_conv(module)

    def levels(self, blocks: list[list[Tensor]]) -> list[Tensor]:
        p = self.fpn([b[-1] for b in blocks])
        outs = []
        for i, x in enumerate(p):
            parts = [x, self.self_t[i](x, x)]
            if i + 1 < len(p):
                parts.append(self.ground_t[i](x, p[i + 1]))
            if i > 0:
                parts.append(self.render_t[i - 1](x, p[i - 1]))
            outs.append(self.fuse[i](torch.cat(parts, 1)))
        return outs
