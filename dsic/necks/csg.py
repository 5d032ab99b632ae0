"""Cross-scale Selection Gate (CSG) and the ``csg`` neck (CSG on the plain stage outputs).

CSG connects every input level i to every output level k:

1. **Resampling.** Each input is first reduced to ``out_channels`` by a 1x1 lateral conv L_i
   (input levels have different widths). M_ik is then L_i itself (i = k), bilinear upsampling of
   L_i (i > k), or (k - i) stride-2 3x3 convs (i < k). The downsampling chain of a source level is
   computed once and shared by all output levels: M_i,k+1 = conv_ik(relu(M_ik)) (the ReLU between
   chained convs follows torchvision's P6 -> P7; the first conv reads L_i directly).
2. **Central control unit** (one per output level, parameters not shared):

   * channel signals w_ik: GAP + GMP of every path, concat -> 1x1 conv -> ReLU -> 1x1 conv, then
     the gate mode (``softmax`` makes the n input paths compete per channel);
   * pixel selection maps s_ik: the channel-mean magnitude mean_c |M_ik|, z-normalised over space
     per image (so levels of different scales are comparable), concat -> 3x3 conv -> ReLU -> 3x3
     conv, then the selection mode (``sigmoid`` by default; ``softmax`` competes per pixel).

3. **Aggregation.** P'_k = sum_i G(w_ik, M_ik) * s_ik, followed by a 3x3 output conv per level as
   in FPN (``output_conv``, default on).

Upsampled paths are never materialised ungated: because w_ik is per channel and bilinear
upsampling is linear per channel, G(w_ik, up(L_i)) = up(G(w_ik, L_i)), so the gate is applied at
the source resolution. Their descriptors are taken at the source resolution too: GAP + GMP of L_i
and the magnitude map of L_i upsampled to level k (a 1-channel map). This is our definition of the
"magnitude of an upsampled path" (exact for GAP; GMP and |.| commute with bilinear upsampling only
approximately) and saves several full-resolution passes at the finest level.

Signals are initialised open (act(w) ~ 1/n, act(s) ~ 1/2; see :func:`dsic.ops.gate.bias_for`),
where the activations are sensitive, and P'_k is multiplied by the fixed gain 1 / (act(w) act(s))
(= 2n) before its output conv, so that CSG starts at the scale of FC-FPN (the ungated sum). Without
a gain the initial pyramid is 2n times weaker than FPN's and so are the gradients reaching the
backbone (a from-scratch CSG Faster R-CNN then reached 39.9 AP against FPN's 56.3 on the embedded
benchmark). Two options concern how the gates learn, both measured on the embedded benchmark
(BENCHMARKS.md, ``gates`` table):

* ``gain`` (``input`` | ``weights``): the compensation is a fixed factor on P'_k before the output
  convs (``input``, default) or multiplies the output convs' initial weights (``weights``, the
  first implementation). Both are the same function at initialisation, but with ``weights`` the
  output convs' relative update size (lr * grad / weight) is gain^2 (64 for 4 levels) times
  smaller, and DSIC
  trained from scratch reached 48.9 AP against 55.5 with ``input`` (4 runs each, 2 seeds).
* ``control_norm`` (``none`` | ``layer`` | ``running``): the channel unit reads GAP + GMP of the
  paths as they are (``none``, default), normalised per image over all n*C entries (``layer``, no
  affine) or standardised per entry with running statistics over training images (``running``,
  :class:`RunningStandardize`). Unnormalised descriptors are large and, from scratch at lr 0.02,
  most hidden ReLUs of the finer levels' channel units die: w_ik then equals act(bias) for every
  image. ``running`` keeps them alive but cost accuracy on the v2 benchmark (28.2 / 31.3 AP
  against 35.9 for ``none`` at seed 0), ``layer`` revives them only in part; ``none`` stays the
  default (docs/design.md, BENCHMARKS.md).
* ``path_gate``: adds one logit per path shared by its channels, w_ik[c] = act(z_ik[c] + p_ik),
  so that the state matrix can follow the image; measured once, it made W image-dependent but
  noisy and trained badly (off by default). ``true`` / ``"hidden"`` read the logits from the
  unit's hidden layer, ``"descriptor"`` linearly from the descriptor itself: the hidden layer
  tells small- from large-object images worse than the descriptor does
  (:mod:`dsic.models.control_inputs`), so the descriptor form bypasses it (docs/design.md);
  ``"standardized"`` reads them from the descriptor standardised per entry over training images
  (:class:`RunningStandardize`, whatever ``control_norm`` is); ``"statistics"`` reads them
  linearly from three scale-free statistics of each path's magnitude map (:func:`scale_statistics`:
  energy share, peak-to-mean, spatial variation; 3n numbers, standardised likewise), which tell
  small- from large-object images 84-93 % of the time (the n*C descriptor: 91-100 %) without
  its size, so an update moves the logits of different images differently (docs/design.md, "Path
  logits from scale statistics"; measured on v7, off by default). Both descriptor forms were
  measured on protocol v4 (2 seeds each, last layers at 10x the gate lr): the path logits
  saturate (W = +-1), AP drops by 3-11 points and W still does not follow the image's scale
  (docs/design.md, "Two last levers"). ``"scale"`` reads them from the image's predicted **scale
  group**: a head on the standardised descriptor predicts (small, large, mixed) probabilities q,
  trained only by a cross-entropy against the group of the image's boxes (the probe's rule:
  :mod:`dsic.models.scale_supervision`, which adds ``loss_scale`` to the detector's losses), and
  p_ik = o_ik . q + c_ik, q detached, so the detection loss trains only o and c and the head cannot
  follow anything but scale. It needs boxes in training only; inference reads q from the image.
  Measured on v7 as routing learned second (docs/design.md, "A scale reader taught by the boxes").
* ``norm_momentum`` (0.05): the momentum of the running statistics that standardise descriptors
  (``control_norm: running`` and the standardised path gates). 0 keeps statistics as loaded:
  for ``scale`` heads fitted once on the frozen network's descriptors (benchmarks/fit_scale_head.py,
  docs/design.md "A scale head fitted before the routing"), whose input must stay what they were
  fitted on. Without loaded statistics, 0 freezes the first training batch's.
* ``scale_target`` (``groups`` | ``presence``): what a ``scale`` head predicts. ``groups`` (default):
  the probe group, softmax over small / large / mixed. ``presence``: two sigmoids, whether the image
  has an object below 32 px and whether it has one of 96 px or more (:mod:`dsic.models.scale_groups`).
  Fitted on v7, the groups' head called small-object images "mixed" as often as "small" (an image is
  mixed when any one object is 32 px or more, which pooled descriptors hardly see); ``presence`` asks
  two questions that each extreme answers the opposite way (docs/design.md, "Presence instead of
  groups").
* ``scale_code`` (``outputs`` | ``cells``): what the path layer of a ``scale`` gate reads. ``outputs``
  (default): the head's probabilities q. ``cells`` (``presence`` only): the four cells of its two
  answers, (small only, large only, both, neither), the products of the answers' sides
  (:func:`presence_cells`). With ``outputs`` an image with both kinds of object reads (1, 1), so the
  routing of the two extremes is tied to that of the mixed images (70 % of v7's training images)
  through shared offsets; the cells give each a code of its own, as the one-hot groups of the
  oracle that routed 0.20 deep did (docs/design.md, "Cells of the two answers").
* ``control_act`` (``relu`` | ``leaky_relu``): the channel unit's hidden activation. The paper
  says "convs + activations". With ``relu`` (default) the finer levels' hidden units die whenever
  their updates grow: at gate lr 1, with the path-logit layer at 3x the gate lr, or with the last
  layers at 1x (P2 / P3 3-16 % alive), and W's P2 and P3 columns stop following the image.
  ``leaky_relu`` (negative slope 0.1) cannot die: a unit below zero for every image still gets a
  tenth of the gradient (docs/design.md, "Units that cannot die").
* ``signal_std``: the std of the initial weights of the channel signals' last layer (and of the
  path logits), 0.01 by default: the image-dependent part of w_ik starts this small, around the
  bias that opens every path at ~1/n. A larger start makes the gates follow the image from the
  first iteration; measured once at 0.1 (protocol v3, seed 0), that dependence stayed random (not
  by object size) and cost 2.9 AP, so 0.01 stays (docs/design.md, "Does the loss ask for routing
  by image?").

:meth:`CSG.gate_states` returns the n x n state matrix W[b, i, k] = mean_c act(w_ik) per image and
the selection maps s_ik, for visualisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones.staged import BackboneSpec
from ..ops.gate import bias_for, check_mode, gate, gate_activation, global_pool
from .base import Neck, conv, fit, init_conv
from .isg import COARSE_MODES

CONTROL_NORMS = ("none", "layer", "running")
PATH_GATES = (False, True, "hidden", "descriptor", "standardized", "statistics", "scale")  # true = hidden
# "scale" path gates: what a unit's scale head predicts, and how many outputs it has: the probe group
# (small, large, mixed; softmax) or whether the image has a small and a large object (two sigmoids)
SCALE_TARGETS = {"groups": 3, "presence": 2}
# what the path layer reads from q: the head's outputs, or (presence) the four cells of its two answers
SCALE_CODES = {"outputs": None, "cells": 4}
SCALE_STATISTICS = 3  # per path: energy share, peak-to-mean, spatial variation (scale_statistics)
GAINS = ("weights", "input")  # where the 1 / (act(w) act(s)) compensation lives
CONTROL_ACTS = ("relu", "leaky_relu")  # the channel unit's hidden activation
LEAKY_SLOPE = 0.1  # leaky_relu's negative slope (YOLOv3's): a unit below zero still learns at 1/10 the rate


class RunningStandardize(nn.Module):
    """Standardise each entry of a [B, F, 1, 1] descriptor with a running mean and variance over
    training images: statistics are updated in training mode (exponential average of the batch's
    per-entry mean and variance, ``momentum``) and used as they are, in training and evaluation
    alike, so the output does not depend on the batch size and no gradient flows through them.
    The first training batch initialises them; with ``momentum`` 0 they stay as initialised (or as
    loaded: statistics fitted once, benchmarks/fit_scale_head.py). ``eps`` is large on purpose: an
    entry that hardly varies over images is not amplified into noise."""

    def __init__(self, features: int, momentum: float = 0.05, eps: float = 1e-2):
        super().__init__()
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
            raise ValueError(f"CSG norm_momentum must be a number in [0, 1], got {momentum!r}")
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(1)
        if self.training:
            with torch.no_grad():
                stats = flat.float()
                mean = stats.mean(0)
                var = stats.var(0, unbiased=False)
                if bool(self.initialized):
                    if self.momentum:
                        self.running_mean.lerp_(mean, self.momentum)
                        self.running_var.lerp_(var, self.momentum)
                else:
                    self.running_mean.copy_(mean)
                    self.running_var.copy_(var)
                    self.initialized.fill_(True)
        out = (flat - self.running_mean) * torch.rsqrt(self.running_var + self.eps)
        return out.view_as(x)


def scale_statistics(magnitudes: list[Tensor], eps: float = 1e-6) -> Tensor:
    """Three scale-free numbers per path from its magnitude map m = mean_c |M_ik| (n maps
    [B, 1, H, W] at one output level), [B, 3n, 1, 1], detached:

    * energy share: log mean(m) minus its mean over the n paths (which paths carry the energy);
    * peak-to-mean: log(max(m) / mean(m)) (a few strong responses or many);
    * spatial variation: log(std(m) / mean(m)).

    Logs of ratios, so they are O(1) whatever the features' scale, unlike GAP + GMP (norm ~100 on
    v7). Detached: they inform the path logits without training the features they read."""
    m = torch.cat(magnitudes, 1).detach().flatten(2).float()
    mean = m.mean(2).clamp_min(eps)
    log_mean = mean.log()
    share = log_mean - log_mean.mean(1, keepdim=True)
    peak = (m.amax(2).clamp_min(eps) / mean).log()
    spread = (m.std(2, unbiased=False).clamp_min(eps) / mean).log()
    return torch.cat([share, peak, spread], 1)[..., None, None]


def scale_probabilities(logits: Tensor, target: str) -> Tensor:
    """q from a scale head's logits [B, K]: softmax over the groups, or one sigmoid per presence question."""
    return logits.softmax(1) if target == "groups" else logits.sigmoid()


def presence_cells(q: Tensor) -> Tensor:
    """The four cells of two presence answers q = (p_small, p_large) [B, 2] as probabilities [B, 4]:
    (small only, large only, both, neither), each the product of the two answers' sides. Sums to 1;
    one-hot when both answers are sure, so images with both kinds of object get a code of their own."""
    small, large = q[:, :1], q[:, 1:2]
    return torch.cat([small * (1 - large), (1 - small) * large, small * large, (1 - small) * (1 - large)], 1)


def spatial_znorm(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Normalise each [H, W] map of ``x`` to zero mean and unit std."""
    mean = x.mean((2, 3), keepdim=True)
    std = x.std((2, 3), keepdim=True, unbiased=False) if x.shape[2] * x.shape[3] > 1 else torch.ones_like(mean)
    return (x - mean) / (std + eps)


class ControlUnit(nn.Module):
    """Computes w_ik (channel) and s_ik (pixel) for the n inputs of one output level."""

    def __init__(self, num_inputs: int, channels: int, mode: str, select_mode: str,
                 reduction: int = 4, select_hidden: int = 16, control_norm: str = "none",
                 path_gate: bool | str = False, signal_std: float = 0.01, hidden_act: str = "relu",
                 norm_momentum: float = 0.05, scale_target: str = "groups", scale_code: str = "outputs"):
        super().__init__()
        if isinstance(signal_std, bool) or not isinstance(signal_std, (int, float)) or not 0 <= signal_std < float("inf"):
            raise ValueError(f"CSG signal_std must be a number >= 0, got {signal_std}")
        self.n, self.channels = num_inputs, channels
        self.control_norm = check_mode(control_norm, CONTROL_NORMS, "CSG control_norm")
        self.mode = check_mode(mode, COARSE_MODES, "CSG channel mode")
        self.select_mode = check_mode(select_mode, COARSE_MODES, "CSG selection mode")
        self.hidden_act = check_mode(hidden_act, CONTROL_ACTS, "CSG control_act")
        hidden = max(channels // reduction, 16)
        self.norm = RunningStandardize(num_inputs * channels, norm_momentum) if control_norm == "running" else None
        self.channel = nn.Sequential(
            nn.Conv2d(num_inputs * channels, hidden, 1),
            nn.ReLU(inplace=True) if hidden_act == "relu" else nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
            nn.Conv2d(hidden, num_inputs * channels, 1),
        )
        self.select = nn.Sequential(
            conv(num_inputs, select_hidden, 3), nn.ReLU(inplace=True), conv(select_hidden, num_inputs, 3)
        )
        # path-level logits p_ik, shared by the channels of a path: w_ik[c] = act(z_ik[c] + p_ik),
        # read from the hidden layer (true / "hidden") or linearly from the descriptor ("descriptor")
        # or from the descriptor standardised per entry over training images ("standardized")
        # or from the paths' scale statistics standardised likewise ("statistics")
        # or from the probabilities of the image's scale group, predicted from the standardised
        # descriptor by a head trained on the boxes' sizes ("scale": dsic.models.scale_supervision)
        if not (isinstance(path_gate, bool) or (isinstance(path_gate, str) and path_gate in PATH_GATES)):
            raise ValueError(f"CSG path_gate must be one of false, true, hidden, descriptor, standardized, statistics, scale; "
                             f"got {path_gate!r}")
        self.path_input = "hidden" if path_gate is True else path_gate or None
        width = {"hidden": hidden, "statistics": SCALE_STATISTICS * num_inputs}.get(self.path_input, num_inputs * channels)
        # the statistics vary over images by std 0.015-0.23 (v7): a smaller eps than the descriptor's
        self.path_norm = (RunningStandardize(width, norm_momentum, 1e-4 if self.path_input == "statistics" else 1e-2)
                          if self.path_input in ("standardized", "statistics", "scale") else None)
        self.scale_target = check_mode(scale_target, tuple(SCALE_TARGETS), "CSG scale_target")
        self.scale_code = check_mode(scale_code, tuple(SCALE_CODES), "CSG scale_code")
        if self.scale_code == "cells" and self.scale_target != "presence":
            raise ValueError(f"CSG scale_code 'cells' needs scale_target 'presence', got {self.scale_target!r}")
        outputs = SCALE_TARGETS[self.scale_target]
        self.scale_head = nn.Conv2d(width, outputs, 1) if self.path_input == "scale" else None
        self.scale_logits: Tensor | None = None  # the last forward's head logits [B, outputs] (scale only)
        code = SCALE_CODES[self.scale_code] or outputs
        self.path = nn.Conv2d(code if self.scale_head is not None else width, num_inputs, 1) if self.path_input else None
        init_conv(self)
        if self.path is not None:
            nn.init.normal_(self.path.weight, std=signal_std)
            nn.init.zeros_(self.path.bias)
        if self.scale_head is not None:  # uniform group probabilities (presence: 0.5 each) at the start
            nn.init.zeros_(self.scale_head.weight)
            nn.init.zeros_(self.scale_head.bias)
        for last, m, target, std in ((self.channel[-1], self.mode, 1.0 / num_inputs, signal_std),
                                     (self.select[-1], select_mode, 0.5, 0.01)):
            nn.init.normal_(last.weight, std=std)
            nn.init.constant_(last.bias, bias_for(m, target))

    def forward(self, pooled: list[Tensor], magnitudes: list[Tensor]) -> tuple[Tensor, Tensor]:
        """From each path's GAP + GMP [B, C, 1, 1] and magnitude map [B, 1, H, W], returns the
        activated w [B, n, C, 1, 1] and s [B, n, H, W]."""
        descriptor = torch.cat(pooled, 1)
        if self.norm is not None:  # per entry, over training images
            descriptor = self.norm(descriptor)
        elif self.control_norm == "layer":  # per image, over all n*C entries, no affine
            descriptor = F.layer_norm(descriptor.flatten(1), descriptor.shape[1:2]).view_as(descriptor)
        hidden = self.channel[1](self.channel[0](descriptor))
        w = self.channel[2](hidden).unflatten(1, (self.n, self.channels))
        if self.path is not None:  # [B, n, 1, 1, 1]: one logit per path
            if self.path_input == "hidden":
                source = hidden
            elif self.path_input == "statistics":
                source = self.path_norm(scale_statistics(magnitudes).to(descriptor.dtype))
            elif self.path_input == "scale":  # the head learns from the boxes only, the path layer from the loss
                logits = self.scale_head(self.path_norm(descriptor).detach()).flatten(1)
                self.scale_logits = logits if self.training else logits.detach()
                q = scale_probabilities(logits.detach(), self.scale_target)
                source = (presence_cells(q) if self.scale_code == "cells" else q)[..., None, None]
            else:
                source = descriptor if self.path_norm is None else self.path_norm(descriptor)
            w = w + self.path(source).unsqueeze(2)
        w = gate_activation(w, self.mode, dim=1)
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
    """Cross-scale Selection Gate on a list of maps with ``in_channels`` (see module docstring)."""

    def __init__(self, in_channels: list[int], out_channels: int = 256, mode: str = "tanh",
                 select_mode: str = "sigmoid", reduction: int = 4, output_conv: bool = True,
                 control_norm: str = "none", gain: str = "input", path_gate: bool | str = False,
                 signal_std: float = 0.01, control_act: str = "relu", norm_momentum: float = 0.05,
                 scale_target: str = "groups", scale_code: str = "outputs"):
        super().__init__()
        n = len(in_channels)
        self.gain_mode = check_mode(gain, GAINS, "CSG gain")
        self.paths = Resampler(in_channels, out_channels)
        self.control = nn.ModuleList(
            ControlUnit(n, out_channels, mode, select_mode, reduction, control_norm=control_norm, path_gate=path_gate,
                        signal_std=signal_std, hidden_act=control_act, norm_momentum=norm_momentum,
                        scale_target=scale_target, scale_code=scale_code)
            for _ in range(n)
        )
        self.output = nn.ModuleList(conv(out_channels, out_channels, 3) for _ in range(n)) if output_conv else None
        if self.output is not None:
            init_conv(self.output)
        # compensate the gates' initial opening act(w) * act(s) so that CSG starts at FC-FPN's scale:
        # as a fixed factor on P'_k (input) or inside the output convs' initial weights (weights)
        gain = 1.0 / (initial_opening(mode, 1.0 / n, n) * initial_opening(select_mode, 0.5, n))
        if self.gain_mode == "weights":
            with torch.no_grad():
                for layer in self.output if self.output is not None else self.paths.lateral:
                    layer.weight.mul_(gain)
        self.init_gain = gain
        self.states: dict = {}

    def resample(self, feats: list[Tensor]) -> list[list[Tensor]]:
        return self.paths(feats)

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
            # the input gain multiplies the [B, n, C, 1, 1] signals, not the full-resolution sum:
            # gain * sum_i w_i M_i s_i == sum_i (gain w_i) M_i s_i, one pass over P'_k less
            gw = w * self.init_gain if self.gain_mode == "input" else w
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

    def __init__(self, spec: BackboneSpec, out_channels: int = 256, extra: str | None = "pool",
                 csg_mode: str = "tanh", select_mode: str = "sigmoid", csg_reduction: int = 4,
                 output_conv: bool = True, csg_control_norm: str = "none",
                 csg_gain: str = "input", csg_path_gate: bool | str = False, csg_signal_std: float = 0.01,
                 csg_control_act: str = "relu", csg_norm_momentum: float = 0.05,
                 csg_scale_target: str = "groups", csg_scale_code: str = "outputs"):
        super().__init__(spec, out_channels, extra)
        self.csg = CSG(self.in_channels, out_channels, csg_mode, select_mode, csg_reduction, output_conv,
                       csg_control_norm, csg_gain, csg_path_gate, csg_signal_std, csg_control_act,
                       csg_norm_momentum, csg_scale_target, csg_scale_code)

    def levels(self, blocks: list[list[Tensor]]) -> list[Tensor]:
        return self.csg([b[-1] for b in blocks])

    def gate_states(self) -> dict:
        return {"csg": self.csg.gate_states()}

