"""The routing study's CSG control unit: the core unit (:class:`dsic.necks.csg.ControlUnit`) with the
options the study measured (LOG.md; none became a default of the library):

* ``control_norm`` (``none`` | ``layer`` | ``running``): the channel unit reads GAP + GMP as they
  are, normalised per image over all n*C entries (``layer``, no affine), or standardised per entry
  with running statistics over training images (``running``, :class:`RunningStandardize`);
* ``path_gate``: one logit per path shared by its channels, w_ik[c] = act(z_ik[c] + p_ik), read
  from the hidden layer (``true`` / ``"hidden"``), linearly from the descriptor (``"descriptor"``),
  from the descriptor standardised per entry (``"standardized"``), from three scale-free statistics
  of each path's magnitude map (``"statistics"``, :func:`scale_statistics`), or from the image's
  scale predicted by a head taught by the boxes (``"scale"``: p_ik = o_ik . q + c_ik, q detached;
  :mod:`routing.scale_supervision` adds the head's loss);
* ``norm_momentum``: the momentum of the running statistics (0 keeps them as loaded);
* ``scale_target`` (``groups`` | ``presence``): what a ``scale`` head predicts, the probe group
  (softmax over small / large / mixed) or whether the image has a small and a large object;
* ``scale_code`` (``outputs`` | ``cells``): what the path layer reads, the head's outputs q or
  (``presence``) the four cells of its two answers (:func:`presence_cells`);
* ``control_act`` (``relu`` | ``leaky_relu``): the channel unit's hidden activation;
* ``signal_std``: the std of the initial weights of the channel signals' last layer and of the
  path logits (0.01).

The state-dict keys and the weights drawn from a seed are those of the units before the study left
the library (d412d78), so the study's checkpoints load and its rows start from the same weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsic.necks.base import init_conv
from dsic.necks.csg import ControlUnit
from dsic.ops.gate import bias_for, check_mode

CONTROL_NORMS = ("none", "layer", "running")
PATH_GATES = (False, True, "hidden", "descriptor", "standardized", "statistics", "scale")  # true = hidden
# "scale" path gates: what a unit's scale head predicts, and how many outputs it has: the probe group
# (small, large, mixed; softmax) or whether the image has a small and a large object (two sigmoids)
SCALE_TARGETS = {"groups": 3, "presence": 2}
# what the path layer reads from q: the head's outputs, or (presence) the four cells of its two answers
SCALE_CODES = {"outputs": None, "cells": 4}
SCALE_STATISTICS = 3  # per path: energy share, peak-to-mean, spatial variation (scale_statistics)
CONTROL_ACTS = ("relu", "leaky_relu")  # the channel unit's hidden activation
LEAKY_SLOPE = 0.1  # leaky_relu's negative slope (YOLOv3's): a unit below zero still learns at 1/10 the rate


class RunningStandardize(nn.Module):
    """Standardise each entry of a [B, F, 1, 1] descriptor with a running mean and variance over
    training images: statistics are updated in training mode (exponential average of the batch's
    per-entry mean and variance, ``momentum``) and used as they are, in training and evaluation
    alike, so the output does not depend on the batch size and no gradient flows through them.
    The first training batch initialises them; with ``momentum`` 0 they stay as initialised (or as
    loaded: statistics fitted once, projects/routing/fit_scale_head.py). ``eps`` is large on purpose: an
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


class RoutingControlUnit(ControlUnit):
    """:class:`ControlUnit` with the study's options (module doc)."""

    def __init__(self, *, num_inputs: int, channels: int, mode: str = "tanh", select_mode: str = "sigmoid",
                 reduction: int = 4, select_hidden: int = 16, control_norm: str = "none",
                 path_gate: bool | str = False, signal_std: float = 0.01, control_act: str = "relu",
                 norm_momentum: float = 0.05, scale_target: str = "groups", scale_code: str = "outputs"):
        if isinstance(signal_std, bool) or not isinstance(signal_std, (int, float)) or not 0 <= signal_std < float("inf"):
            raise ValueError(f"CSG signal_std must be a number >= 0, got {signal_std}")
        if not (isinstance(path_gate, bool) or (isinstance(path_gate, str) and path_gate in PATH_GATES)):
            raise ValueError(f"CSG path_gate must be one of false, true, hidden, descriptor, standardized, statistics, "
                             f"scale; got {path_gate!r}")
        rng = torch.get_rng_state()
        super().__init__(num_inputs=num_inputs, channels=channels, mode=mode, select_mode=select_mode,
                         reduction=reduction, select_hidden=select_hidden)
        torch.set_rng_state(rng)  # every weight drawn again, in the order of the units before the split
        for layer in (*self.channel[::2], *self.select[::2]):  # as their constructors drew
            layer.reset_parameters()
        self.control_norm = check_mode(control_norm, CONTROL_NORMS, "CSG control_norm")
        self.hidden_act = check_mode(control_act, CONTROL_ACTS, "CSG control_act")
        if control_act == "leaky_relu":
            self.channel[1] = nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
        self.norm = RunningStandardize(num_inputs * channels, norm_momentum) if control_norm == "running" else None
        self.path_input = "hidden" if path_gate is True else path_gate or None
        hidden = self.channel[0].out_channels
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
        for last, m, target, std in ((self.channel[-1], mode, 1.0 / num_inputs, signal_std),
                                     (self.select[-1], select_mode, 0.5, 0.01)):
            nn.init.normal_(last.weight, std=std)
            nn.init.constant_(last.bias, bias_for(m, target))

    def channel_logits(self, pooled: list[Tensor], magnitudes: list[Tensor]) -> Tensor:
        descriptor = torch.cat(pooled, 1)
        if self.norm is not None:  # per entry, over training images
            descriptor = self.norm(descriptor)
        elif self.control_norm == "layer":  # per image, over all n*C entries, no affine
            descriptor = F.layer_norm(descriptor.flatten(1), descriptor.shape[1:2]).view_as(descriptor)
        hidden = self.channel[1](self.channel[0](descriptor))
        w = self.channel[2](hidden).unflatten(1, (self.n, self.channels))
        if self.path is None:
            return w
        if self.path_input == "hidden":  # [B, n, 1, 1, 1]: one logit per path
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
        return w + self.path(source).unsqueeze(2)
