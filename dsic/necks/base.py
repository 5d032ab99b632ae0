"""What every neck shares: the input contract, extra pyramid levels and the output dict.

A neck is built from a :class:`~dsic.backbones.BackboneSpec` and maps the backbone's block outputs
``list[list[Tensor]]`` (one list per returned stage) to an ``OrderedDict`` of pyramid maps with
torchvision's names: ``"0" .. "n-1"`` for the stage levels, then ``"pool"`` (R-CNNs) or
``"p6", "p7"`` (FCOS/RetinaNet) for the extra levels.

Necks that only need stage outputs leave :attr:`Neck.needs_blocks` False; the backbone then keeps
only the last block of each stage.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

from ..backbones.staged import BackboneSpec

EXTRA_LEVELS = ("pool", "p6p7", "none")


def build_extra_levels(extra: str | None, channels: int) -> nn.Module | None:
    """``pool``: P6 = max-pool(P5) (R-CNNs); ``p6p7``: P6 = conv(P5), P7 = conv(relu(P6))."""
    if extra in (None, "none"):
        return None
    if extra == "pool":
        return LastLevelMaxPool()
    if extra == "p6p7":
        return LastLevelP6P7(channels, channels)
    raise ValueError(f"unknown extra levels {extra!r}; expected one of {', '.join(EXTRA_LEVELS)}")


def init_conv(module: nn.Module) -> None:
    """torchvision's FPN initialisation for every conv of ``module``: kaiming-uniform(a=1), zero bias."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight, a=1)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)


def conv(cin: int, cout: int, k: int = 1, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def fit(x: Tensor, ref: Tensor) -> Tensor:
    """``x`` resized (nearest) to ``ref``'s spatial size when they differ: a stride-2 conv gives
    ceil(H / 2), which need not be the size of the backbone's next level (e.g. patchify stems give
    floor(H / 2)); torchvision's detectors pad images to a multiple of 32, where nothing changes."""
    return x if x.shape[-2:] == ref.shape[-2:] else F.interpolate(x, size=ref.shape[-2:], mode="nearest")


class Neck(nn.Module):
    """Base class. Subclasses implement :meth:`levels` (block outputs -> one map per stage level).

    Args:
        spec: shapes of the backbone outputs.
        out_channels: channels of every output level.
        extra: extra levels on top of the last one (:data:`EXTRA_LEVELS`).
    """

    needs_blocks = False
    #: where torchvision's ``backbone.fpn.*`` weights go inside this neck, or None when they don't
    torchvision_fpn_prefix: str | None = None

    def __init__(self, spec: BackboneSpec, out_channels: int = 256, extra: str | None = "pool"):
        super().__init__()
        self.spec = spec
        self.in_channels = list(spec.stage_channels)
        self.num_levels = len(self.in_channels)
        self.out_channels = out_channels
        self.extra_blocks = build_extra_levels(extra, out_channels)

    def levels(self, blocks: list[list[Tensor]]) -> list[Tensor]:
        raise NotImplementedError

    #: False: ``torch.jit.script`` gets a trace of the neck instead (see :meth:`__prepare_scriptable__`)
    scriptable = False

    def __prepare_scriptable__(self) -> nn.Module:
        """Necks written in TorchScript's subset (``scriptable``) are compiled as they are; the others
        (the gated necks) are traced on a 256x256 example: Python branches on shapes are fixed to that
        example's, every size is still read from the input (tested at other sizes)."""
        if self.scriptable:
            return self
        was_training = self.training
        self.eval()
        blocks = [[torch.zeros(1, c, max(1, 256 // s), max(1, 256 // s)) for c in chans]
                  for chans, s in zip(self.spec.block_channels, self.spec.strides)]
        if not self.needs_blocks:
            blocks = [b[-1:] for b in blocks]
        with torch.no_grad():
            traced = torch.jit.trace(self, (blocks,), strict=False, check_trace=False)
        self.train(was_training)
        return traced

    def forward(self, blocks: list[list[Tensor]]) -> dict[str, Tensor]:
        """``blocks``: the block outputs of each stage; necks that only need stage outputs also take
        an ``OrderedDict`` or list of maps, as torchvision's ``FeaturePyramidNetwork`` does."""
        if not torch.jit.is_scripting():
            blocks = self.as_blocks(blocks)
        results = self.levels(blocks)
        names = [str(i) for i in range(len(results))]
        if self.extra_blocks is not None:
            results, names = self.extra_blocks(results, [b[-1] for b in blocks], names)
        return OrderedDict([(k, v) for k, v in zip(names, results)])

    @torch.jit.unused
    def as_blocks(self, features) -> list[list[Tensor]]:
        """``features`` as one list of block outputs per stage; a ``TypeError`` / ``ValueError``
        naming the neck and what it expects otherwise."""
        name = type(self).__name__
        given = features
        if isinstance(features, dict):
            features = list(features.values())
        if not isinstance(features, (list, tuple)):
            raise TypeError(f"{name} expects a list of {self.num_levels} feature maps (or an OrderedDict, or one "
                            f"list of block outputs per stage), got {type(given).__name__}")
        if all(isinstance(f, Tensor) for f in features):
            if self.needs_blocks:
                raise TypeError(f"{name} needs the output of every block of each stage (a list of lists of "
                                f"tensors), got {len(features)} single maps")
            features = [[f] for f in features]
        elif not all(isinstance(f, (list, tuple)) and f and all(isinstance(t, Tensor) for t in f) for f in features):
            raise TypeError(f"{name} expects tensors: a list of {self.num_levels} feature maps, an OrderedDict of "
                            f"them, or one list of block outputs per stage")
        if len(features) != self.num_levels:
            raise ValueError(f"{name} expects {self.num_levels} stages, got {len(features)}")
        for i, (f, ch) in enumerate(zip(features, self.in_channels)):
            if f[-1].ndim != 4 or f[-1].shape[1] != ch:
                raise ValueError(f"{name}: stage {i} must be a [B, {ch}, H, W] map, got shape {list(f[-1].shape)}")
        return [list(f) for f in features]

    def gate_states(self) -> dict:
        """Detached gate states of the last forward (empty for ungated necks)."""
        return {}
