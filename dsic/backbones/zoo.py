"""torchvision classification networks as :class:`StagedBackbone` s.

Supported: ResNet-18/34/50/101/152, ResNeXt-50/101, RegNet (any torchvision ``regnet_*``),
ConvNeXt (``convnext_*``), ``resnet_tiny`` (a ResNet-18 layout at half width, 32-256 channels,
built from torchvision's BasicBlock: no ImageNet weights; for CPU runs and the embedded benchmark)
and ``resnet_tiny34`` (the same at ResNet-34's and ResNet-50's stage depths, 3, 4, 6 and 3 blocks:
a CPU backbone whose stages give ISG blocks to choose from). Anything else can be wrapped with
:class:`StagedBackbone` and a plan.

``pretrained``:
    * ``None``: random init (training from scratch);
    * ``"imagenet"``: torchvision's ImageNet weights (``IMAGENET1K_V1`` for ResNet/ResNeXt, as
      torchvision's detection models use; ``DEFAULT`` otherwise) - needs network access or the file
      in the torch hub cache (:func:`hub_file`); offline, :class:`WeightsNotFoundError` names it;
    * a path: a state dict (or a checkpoint with ``state_dict``/``model``) of the classification
      network; classifier keys are ignored, every other key must match.

``norm`` (networks built from BatchNorm only; ConvNeXt keeps its LayerNorm):
    * ``frozen_bn``: FrozenBatchNorm2d, torchvision's choice for fine-tuning pretrained weights;
    * ``bn``: trainable BatchNorm2d (use SyncBN under DDP for small per-GPU batches);
    * ``gn``: GroupNorm with 32 groups, trainable, for from-scratch training with small batches.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from .staged import StagedBackbone

NORMS = ("frozen_bn", "bn", "gn")
_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
            "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2")
_CLASSIFIER_PREFIXES = ("fc.", "classifier.", "head.")


def _group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, channels), channels)


def norm_layer(norm: str):
    if norm == "frozen_bn":
        return FrozenBatchNorm2d
    if norm == "bn":
        return nn.BatchNorm2d
    if norm == "gn":
        return _group_norm
    raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")


TINY = {"resnet_tiny": (2, 2, 2, 2), "resnet_tiny34": (3, 4, 6, 3)}  # blocks per stage


def resnet_tiny(weights=None, norm_layer=nn.BatchNorm2d, width: int = 32, layers=TINY["resnet_tiny"]) -> nn.Module:
    """ResNet with BasicBlocks and ``width`` * (1, 2, 4, 8) channels (no ImageNet weights exist)."""
    if weights is not None:
        raise ValueError("resnet_tiny has no pretrained weights; use pretrained: null or a local path")
    from torchvision.models.resnet import BasicBlock, ResNet

    net = ResNet(BasicBlock, [1, 1, 1, 1], norm_layer=norm_layer)
    net.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
    net.bn1 = norm_layer(width)
    net.inplanes = width
    for i, n in enumerate(layers):
        setattr(net, f"layer{i + 1}", net._make_layer(BasicBlock, width * 2**i, n, stride=1 if i == 0 else 2))
    net.fc = nn.Linear(width * 8, 1000)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return net


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are neither cached nor downloadable; the message names the file expected."""


def hub_file(url: str) -> Path:
    """Where torch hub keeps the download of ``url`` (``$TORCH_HOME/hub/checkpoints/<file name>``)."""
    from urllib.parse import urlparse

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def available_backbones() -> list[str]:
    names = [*_RESNETS, *TINY]
    names += [n for n in torchvision.models.list_models(torchvision.models) if n.startswith(("regnet_", "convnext_"))]
    return names


def _plan(name: str, network: nn.Module) -> list[tuple[str, bool]]:
    if name in _RESNETS or name in TINY:
        return [("conv1", False), ("bn1", False), ("relu", False), ("maxpool", False)] + [
            (f"layer{i}", True) for i in range(1, 5)
        ]
    if name.startswith("regnet_"):
        return [("stem", False)] + [(f"trunk_output.{n}", True) for n, _ in network.trunk_output.named_children()]
    if name.startswith("convnext_"):
        return [(f"features.{i}", i % 2 == 1) for i in range(len(network.features))]
    raise ValueError(f"unknown backbone {name!r}; available: {', '.join(available_backbones())}")


DETECTOR_PREFIXES = ("backbone.body.", "rpn.", "roi_heads.")
"""How the keys of a detector's state dict (dsic's, torchvision's) begin; a backbone's do not."""


def load_classification_weights(network: nn.Module, path: str | Path) -> None:
    """Load a local state dict into ``network`` (classifier keys dropped, the rest strict)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained backbone weights not found: {path}")
    from ..weights import load_weights_file  # weights only, with a clear message

    state = load_weights_file(path, "pretrained backbone weights")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: holds no state dict of backbone weights (a {type(state).__name__})")  # noqa: TRY004
    state = {k: v for k, v in state.items() if not k.startswith(_CLASSIFIER_PREFIXES)}
    own = {k for k in network.state_dict() if not k.startswith(_CLASSIFIER_PREFIXES)}
    # BatchNorm's step counter is meaningless for FrozenBatchNorm2d (which has none), and optional
    optional = ".num_batches_tracked"
    state = {k: v for k, v in state.items() if k in own or not k.endswith(optional)}
    own = {k for k in own if k in state or not k.endswith(optional)}
    missing = sorted(own - set(state))
    unexpected = sorted(set(state) - own)
    if missing or unexpected:
        detector = any(k.startswith(DETECTOR_PREFIXES) for k in unexpected)
        hint = f"; it holds a detector's weights: give it as model.init_from={path}" if detector else ""
        raise ValueError(
            f"{path}: does not match the backbone: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}{hint}"
        )
    network.load_state_dict(state, strict=False)


def build_backbone(
    name: str = "resnet50",
    pretrained: str | Path | None = None,
    norm: str = "frozen_bn",
    trainable_layers: int | None = 3,
    return_stages: list[int] | None = None,
) -> StagedBackbone:
    """Build a staged backbone (see module docstring for the arguments)."""
    if name not in available_backbones():
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(available_backbones())}")
    ctor = getattr(torchvision.models, name, None)
    kwargs = {}
    if name in TINY:
        ctor, kwargs["layers"] = resnet_tiny, TINY[name]
    if not name.startswith("convnext_"):
        kwargs["norm_layer"] = norm_layer(norm)
    weights = None
    if pretrained == "imagenet" and name in TINY:
        raise ValueError(f"{name} has no ImageNet weights; use pretrained: null or a local path")
    if pretrained == "imagenet":
        enum = torchvision.models.get_model_weights(name)
        weights = enum.IMAGENET1K_V1 if name in _RESNETS else enum.DEFAULT
    try:
        network = ctor(weights=weights, **kwargs)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a truncated download a RuntimeError
        if weights is None:
            raise
        raise WeightsNotFoundError(
            f"ImageNet weights for {name} are not in the torch hub cache ({hub_file(weights.url)}) and could "
            f"not be downloaded ({type(err).__name__}: {err}); put the file there, or set "
            f"model.pretrained_backbone to the path of a local state dict") from err
    if pretrained not in (None, "imagenet"):
        load_classification_weights(network, pretrained)
    plan = _plan(name, network)
    return StagedBackbone(network, plan, return_stages=return_stages, trainable_stages=trainable_layers)

