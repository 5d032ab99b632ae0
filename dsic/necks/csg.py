"""Cross-scale Selection Gate (CSG) and the ``csg`` neck (CSG on the plain stage outputs).

CSG connects every input level i to every output level k (docs/design.md, "CSG"):

1. **Resampling.** Each input is reduced to ``out_channels`` by a 1x1 lateral conv L_i. M_ik is L_i
   itself (i = k), bilinear upsampling of L_i (i > k), or (k - i) chained stride-2 3x3 convs
   (i < k, a ReLU between chained convs as in torchvision's P6 -> P7; each chain computed once).
2. **Central control unit** (:class:`ControlUnit`, one per output level, parameters not shared):
   channel signals w_ik = act(1x1 conv(ReLU(1x1 conv(concat_i GAP + GMP of M_ik)))) with the gate
   mode ``mode`` (``softmax`` makes the n paths compete per channel), and pixel selection maps
   s_ik = act(3x3 conv(ReLU(3x3 conv(concat_i znorm(mean_c |M_ik|))))) with ``select_mode``, the
   magnitude maps normalised over space per image so that levels of different scales compare.
3. **Aggregation.** P'_k = gain * sum_i G(w_ik, M_ik) * s_ik, then a 3x3 output conv per level as in
   FPN (``output_conv``).

Signals start open (act(w) ~ 1/n, act(s) ~ 1/2: :func:`dsic.ops.gate.bias_for`) and the fixed gain
1 / (act(w) act(s)) = 2n makes CSG start at the scale of FC-FPN, the ungated sum.

Upsampled paths are gated at the source resolution: w_ik is per channel and bilinear upsampling is
linear per channel, so G(w_ik, up(L_i)) = up(G(w_ik, L_i)). Their descriptors are read there too:
GAP + GMP of L_i and the magnitude map of L_i upsampled to level k.

``control_unit`` is the extension point: a callable taking :class:`ControlUnit`'s keyword arguments
and returning a module with its ``forward`` (projects/routing plugs its units in this way).
:meth:`CSG.gate_states` returns the state matrix W[b, i, k] = mean_c act(w_ik) and the maps s_ik.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones.staged import BackboneSpec
from ..ops.gate import bias_for, check_mode, gate, gate_activation, global_pool
from .base import Neck, conv, fit, init_conv
from .isg import COARSE_MODES


def spatial_znorm(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Normalise each [H, W] map of ``x`` to zero mean and unit std."""
    mean = x.mean((2, 3), keepdim=True)
    std = x.std((2, 3), keepdim=True, unbiased=False) if x.shape[2] * x.shape[3] > 1 else torch.ones_like(mean)
    return (x - mean) / (std + eps)


class ControlUnit(nn.Module):
    """The central control unit of one output level: w_ik and s_ik for its ``num_inputs`` paths."""

    def __init__(self, *, num_inputs: int, channels: int, mode: str = "tanh", select_mode: str = "sigmoid",
                 reduction: int = 4, select_hidden: int = 16):
        super().__init__()
        self.n, self.channels = num_inputs, channels
        self.mode = check_mode(mode, COARSE_MODES, "CSG channel mode")
        self.select_mode = check_mode(select_mode, COARSE_MODES, "CSG selection mode")
        hidden = max(channels // reduction, 16)
        self.channel = nn.Sequential(
            nn.Conv2d(num_inputs * channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, num_inputs * channels, 1)
        )
        self.select = nn.Sequential(
            conv(num_inputs, select_hidden, 3), nn.ReLU(inplace=True), conv(select_hidden, num_inputs, 3)
        )
        init_conv(self)
        for last, m, target in ((self.channel[-1], mode, 1.0 / num_inputs), (self.select[-1], select_mode, 0.5)):
            nn.init.normal_(last.weight, std=0.01)
            nn.init.constant_(last.bias, bias_for(m, target))

    def channel_logits(self, pooled: list[Tensor], magnitudes: list[Tensor]) -> Tensor:
        """w_ik before the gate mode, [B, n, C, 1, 1], from each path's GAP + GMP [B, C, 1, 1]."""
        return self.channel(torch.cat(pooled, 1)).unflatten(1, (self.n, self.channels))

    def forward(self, pooled: list[Tensor], magnitudes: list[Tensor]) -> tuple[Tensor, Tensor]:
        """From each path's GAP + GMP [B, C, 1, 1] and magnitude map [B, 1, H, W], the activated
        w [B, n, C, 1, 1] and s [B, n, H, W]."""
        w = gate_activation(self.channel_logits(pooled, magnitudes), self.mode, dim=1)
        s = gate_activation(self.select(spatial_znorm(torch.cat(magnitudes, 1))), self.select_mode, dim=1)
        return w, s


def initial_opening(mode: str, target: float, paths: int) -> float:
    """act(b) of a signal initialised by ``bias_for(mode, target)`` (softmax: 1 / paths)."""
    if mode == "softmax":
        return 1.0 / paths
    return gate_activation(torch.tensor(bias_for(mode, target)), mode).item()


def magnitude(x: Tensor) -> Tensor:
    """Channel-mean absolute value, [B, 1, H, W]. ``abs`` then ``mean``: on the CPU (NCHW) this is
    8x faster than ``linalg.vector_norm(ord=1, dim=1)``, which reduces over the strided channel axis
    element by element (256 x 128 x 128, one thread: 8 ms against 64 ms)."""
    return x.abs().mean(1, keepdim=True)


def upsample(x: Tensor, size) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class Resampler(nn.Module):
    """Every input level to every output level (shared by CSG and FC-FPN): 1x1 laterals L_i to
    ``out_channels``, chained stride-2 3x3 convs downwards (each chain computed once), bilinear
    upsampling upwards."""

    def __init__(self, in_channels: list[int], out_channels: int):
        super().__init__()
        n = len(in_channels)
        self.lateral = nn.ModuleList(conv(c, out_channels, 1) for c in in_channels)
        self.down = nn.ModuleList(
            nn.ModuleList(conv(out_channels, out_channels, 3, stride=2) for _ in range(n - 1 - i)) for i in range(n)
        )
        init_conv(self)

    def laterals_and_chains(self, feats: list[Tensor]) -> tuple[list[Tensor], list[list[Tensor]]]:
        """L_i and, per output level k, the maps of the sources i <= k at level k (M_kk = L_k and
        the downsampling chains, each computed once)."""
        lat = [f(x) for f, x in zip(self.lateral, feats)]
        at_level = [[] for _ in lat]
        for i, x in enumerate(lat):
            at_level[i].append(x)
            for step, down in enumerate(self.down[i]):
                x = fit(down(x if step == 0 else F.relu(x)), lat[i + step + 1])  # fit: odd sizes
                at_level[i + step + 1].append(x)
        return lat, at_level

    def forward(self, feats: list[Tensor]) -> list[list[Tensor]]:
        """M[k][i]: input i resampled to output level k (every path materialised)."""
        lat, at_level = self.laterals_and_chains(feats)
        return [at_level[k] + [upsample(lat[i], lat[k].shape[-2:]) for i in range(k + 1, len(lat))]
                for k in range(len(lat))]


class CSG(nn.Module):
    """Cross-scale Selection Gate on a list of maps with ``in_channels`` (see the module doc)."""

    def __init__(self, in_channels: list[int], out_channels: int = 256, *, mode: str = "tanh",
                 select_mode: str = "sigmoid", reduction: int = 4, output_conv: bool = True,
                 control_unit: Callable[..., nn.Module] = ControlUnit):
        super().__init__()
        n = len(in_channels)
        self.paths = Resampler(in_channels, out_channels)
        self.control = nn.ModuleList(
            control_unit(num_inputs=n, channels=out_channels, mode=mode, select_mode=select_mode, reduction=reduction)
            for _ in range(n)
        )
        self.output = nn.ModuleList(conv(out_channels, out_channels, 3) for _ in range(n)) if output_conv else None
        if self.output is not None:
            init_conv(self.output)
        self.init_gain = 1.0 / (initial_opening(mode, 1.0 / n, n) * initial_opening(select_mode, 0.5, n))
        self.states: dict = {}

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        lat, at_level = self.paths.laterals_and_chains(feats)
        lat_pooled = [global_pool(x) for x in lat]
        lat_magnitude = [magnitude(x) for x in lat]
        outs, w_matrix, selections = [], [], []
        for k, below in enumerate(at_level):
            size = lat[k].shape[-2:]
            above = range(k + 1, len(lat))
            pooled = [global_pool(m) for m in below[:-1]] + [lat_pooled[k]] + [lat_pooled[i] for i in above]
            mags = [magnitude(m) for m in below[:-1]] + [lat_magnitude[k]] + [
                upsample(lat_magnitude[i], size) for i in above]
            w, s = self.control[k](pooled, mags)
            # the gain multiplies the [B, n, C, 1, 1] signals, not the full-resolution sum
            gw = w * self.init_gain
            p = gate(gw[:, 0], below[0]).mul_(s[:, :1])  # in place: one full-resolution buffer less
            for i in range(1, len(lat)):
                gated = gate(gw[:, i], below[i]) if i <= k else upsample(gate(gw[:, i], lat[i]), size)
                p = p.addcmul_(gated, s[:, i : i + 1])  # += G(w_ik, M_ik) * s_ik, fused
            outs.append(self.output[k](p) if self.output is not None else p)
            w_matrix.append(w.detach().mean((2, 3, 4)))  # [B, n_in]
            selections.append(s.detach())
        self.states = {"w": torch.stack(w_matrix, 2), "s": selections}
        return outs

    def gate_states(self) -> dict:
        """``w``: [B, n_in, n_out] state matrix (channel-mean act(w_ik)); ``s``: per output level k,
        the selection maps [B, n_in, H_k, W_k]."""
        return dict(self.states)


class CSGNeck(Neck):
    """The ``csg`` neck: CSG on the plain stage outputs."""

    def __init__(self, spec: BackboneSpec, out_channels: int = 256, extra: str | None = "pool", *,
                 csg_mode: str = "tanh", select_mode: str = "sigmoid", csg_reduction: int = 4,
                 output_conv: bool = True, control_unit: Callable[..., nn.Module] = ControlUnit):
        super().__init__(spec, out_channels, extra)
        self.csg = CSG(self.in_channels, out_channels, mode=csg_mode, select_mode=select_mode,
                       reduction=csg_reduction, output_conv=output_conv, control_unit=control_unit)

    def levels(self, blocks: list[list[Tensor]]) -> list[Tensor]:
        return self.csg([b[-1] for b in blocks])

    def gate_states(self) -> dict:
        return {"csg": self.csg.gate_states()}
