"""FPT: Feature Pyramid Transformer (Zhang et al., 2020), written from the paper, simplified for CPU.

FPT transforms the FPN's outputs P_i (:class:`~dsic.necks.fpn.TopDown`, torchvision-identical)
into a pyramid of the same size with three transformers per level:

* **self-transformer** (ST): non-local interaction inside P_i: queries, keys and values from P_i,
  dot-product similarity;
* **grounding transformer** (GT, top-down): the coarser P_{i+1} grounds the finer P_i: queries
  from P_i, keys/values from P_{i+1}, similarity the negative squared Euclidean distance
  -|q - k|^2 as in the paper (computed as 2 q.k - |k|^2: the |q|^2 term cancels in the softmax
  over keys);
* **rendering transformer** (RT, bottom-up): the finer P_{i-1} renders the coarser P_i, a
  channel-wise interaction as in the paper: Q = P_i, K = V = P_{i-1}; w = GAP(K) re-weights Q
  per channel, Q_att = conv3x3(Q * w), V_dow = conv3x3_stride2(V), output conv3x3(ReLU(Q_att +
  V_dow)) (the ReLU before the last conv is our choice);

and each output level is a 3x3 conv of the concatenation [P_i, ST_i, GT_i, RT_i] back to
``out_channels`` (GT is absent on the coarsest level, RT on the finest).

Attention normalisation is the paper's mixture of softmaxes (MoS): q and k are split into
``softmaxes`` groups, each group gives a softmax over the keys, and the maps are mixed with
weights pi_n = softmax_n(w_n . mean_j k_j) (learned w_n, mean over the key positions);
``softmaxes=1`` is a single softmax. Logits are scaled by 1/sqrt(group width).

Simplifications (documented choices, to keep FPT feasible on CPU):

* keys and values of ST and GT are average-pooled to at most ``kv_size`` x ``kv_size`` positions
  (default 16), so attention costs O(HW * kv_size^2) instead of O((HW)^2);
* query/key width ``out_channels // reduction`` (default 4);
* values are the features themselves, with no value or output projection: attention averaging
  is linear, so 1x1 projections there would be absorbed by the 3x3 fusion conv that follows;
* GT and RT use the adjacent level only (the paper lets a level interact with every coarser /
  finer one), and GT attends globally (no locality-constrained GT, which the paper uses for
  semantic segmentation);
* no normalisation layers.

The attention (logits, softmaxes, weighted sum) is computed in float32 even under autocast, since
the Euclidean logits overflow float16 for large features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones.staged import BackboneSpec
from .base import Neck, conv, fit, init_conv
from .fpn import TopDown


def tokens(x: Tensor) -> Tensor:
    """[B, C, H, W] -> [B, HW, C]."""
    return x.flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Queries from ``x``, keys and values from ``context`` (average-pooled to <= kv_size^2
    positions), dot-product or negative squared Euclidean similarity, mixture of softmaxes."""

    def __init__(self, channels: int, width: int, kv_size: int, euclidean: bool, softmaxes: int = 2):
        super().__init__()
        if softmaxes < 1 or width % softmaxes:
            raise ValueError(f"FPT softmaxes must be >= 1 and divide the query width {width}, got {softmaxes}")
        self.q, self.k = conv(channels, width, 1), conv(channels, width, 1)
        self.mix = nn.Linear(width, softmaxes) if softmaxes > 1 else None
        if self.mix is not None:  # uniform mixture at the start
            nn.init.zeros_(self.mix.weight)
            nn.init.zeros_(self.mix.bias)
        self.kv_size, self.euclidean, self.groups = kv_size, euclidean, softmaxes
        self.scale = (width // softmaxes) ** -0.5

    def pool(self, context: Tensor) -> Tensor:
        h, w = context.shape[-2:]
        if h * w > self.kv_size ** 2:
            context = F.adaptive_avg_pool2d(context, (min(h, self.kv_size), min(w, self.kv_size)))
        return context

    def weights(self, q: Tensor, k: Tensor) -> Tensor:
        """Attention weights [B, HW_q, HW_k] (rows sum to 1) in float32, from the projected queries
        [B, width, H, W] and keys [B, width, h, w]."""
        q = tokens(q).float().unflatten(2, (self.groups, -1)).transpose(1, 2)  # [B, n, HWq, d]
        k = tokens(k).float()  # [B, HWk, width]
        kg = k.unflatten(2, (self.groups, -1)).transpose(1, 2)  # [B, n, HWk, d]
        logits = q @ kg.transpose(-1, -2)
        if self.euclidean:  # -|q - k|^2 up to the per-query constant |q|^2
            logits = 2 * logits - (kg * kg).sum(-1).unsqueeze(-2)
        attn = torch.softmax(logits * self.scale, dim=-1)
        if self.mix is None:
            return attn[:, 0]
        pi = torch.softmax(F.linear(k.mean(1), self.mix.weight.float(), self.mix.bias.float()), dim=-1)
        return torch.einsum("bn,bnqk->bqk", pi, attn)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        context = self.pool(context)
        q, k = self.q(x), self.k(context)
        with torch.autocast(x.device.type, enabled=False):
            y = self.weights(q, k) @ tokens(context).float()
        return y.transpose(1, 2).reshape(x.shape[0], -1, *x.shape[-2:]).to(x.dtype)


class Rendering(nn.Module):
    """RT: the finer level ``low`` renders the coarser ``high`` (see module docstring)."""

    def __init__(self, channels: int):
        super().__init__()
        self.q_conv = conv(channels, channels, 3)
        self.v_down = conv(channels, channels, 3, stride=2)
        self.refine = conv(channels, channels, 3)

    def forward(self, high: Tensor, low: Tensor) -> Tensor:
        w = low.mean((2, 3), keepdim=True)  # GAP(K), K = low
        q_att = self.q_conv(high * w)
        v_dow = fit(self.v_down(low), high)  # V = low
        return self.refine(F.relu(q_att + v_dow))


class FPT(Neck):
    """Feature Pyramid Transformer on the FPN outputs (see module docstring).

    Args:
        reduction: query/key width = ``out_channels // reduction`` (at least 8).
        kv_size: keys/values are average-pooled to at most ``kv_size`` x ``kv_size`` positions.
        softmaxes: number of softmaxes in the mixture (1 = a single softmax).
    """

    torchvision_fpn_prefix = "fpn."

    def __init__(self, spec: BackboneSpec, out_channels: int = 256, extra: str | None = "pool",
                 reduction: int = 4, kv_size: int = 16, softmaxes: int = 2):
        super().__init__(spec, out_channels, extra)
        if kv_size < 1 or reduction < 1:
            raise ValueError(f"FPT kv_size and reduction must be >= 1, got {kv_size}, {reduction}")
        n, c = len(self.in_channels), out_channels
        width = max(c // reduction, 8)
        self.fpn = TopDown(self.in_channels, c)
        self.self_t = nn.ModuleList(Attention(c, width, kv_size, False, softmaxes) for _ in range(n))
        self.ground_t = nn.ModuleList(Attention(c, width, kv_size, True, softmaxes) for _ in range(n - 1))
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
