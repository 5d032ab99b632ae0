"""Detector builders: torchvision's Faster/Mask R-CNN, FCOS and RetinaNet with any backbone and neck.

Conventions (documented in docs/design.md):

* ``num_classes`` counts *foreground* classes K; labels are 1..K and the detector is built with
  K + 1 outputs (index 0 = background, unused by FCOS/RetinaNet), as torchvision's COCO models
  (91 = 90 ids + background). A torchvision COCO checkpoint therefore needs ``num_classes=90``
  (``classes="torchvision_coco"`` also names them and maps labels to COCO category ids).
* R-CNNs use backbone stages 1-4 (C2-C5) plus a max-pooled P6 (``extra="pool"``); FCOS and
  RetinaNet use stages 2-4 (C3-C5) plus P6/P7 computed from P5, as torchvision does.
* ``anchor_sizes`` (one base size per pyramid level) replaces torchvision's default anchors
  (R-CNN: 32..512; RetinaNet: 32..512 with 3 octave scales; FCOS: 8..128 as its "anchor" size).
* **Paired initialisation.** The backbone, the neck and the heads are each initialised from their
  own seed, drawn from torch's global generator up front (:func:`component_seeds`). With the same
  global seed, two detectors that differ only in their neck therefore start with identical
  backbones and heads: a benchmark's difference between necks at one seed measures the necks,
  not a different draw of the shared parts.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign

from ..backbones import build_backbone
from ..necks import build_neck
from .backbone import DetectorBackbone
from .one_stage import FCOS, RetinaNet
from .state_fit import first_keys

ARCHS = {
    # arch: (class, returned stages, extra levels)
    "faster_rcnn": (FasterRCNN, [1, 2, 3, 4], "pool"),
    "mask_rcnn": (MaskRCNN, [1, 2, 3, 4], "pool"),
    "fcos": (FCOS, [2, 3, 4], "p6p7"),
    "retinanet": (RetinaNet, [2, 3, 4], "p6p7"),
}


def _anchor_generator(arch: str, sizes: list[float]) -> AnchorGenerator:
    if arch == "retinanet":
        per_level = tuple(tuple(int(s * 2 ** (i / 3)) for i in range(3)) for s in sizes)
        return AnchorGenerator(per_level, ((0.5, 1.0, 2.0),) * len(sizes))
    if arch == "fcos":
        return AnchorGenerator(tuple((int(s),) for s in sizes), ((1.0,),) * len(sizes))
    return AnchorGenerator(tuple((int(s),) for s in sizes), ((0.5, 1.0, 2.0),) * len(sizes))


COMPONENTS = ("backbone", "neck", "heads")


def component_seeds() -> dict[str, int]:
    """One seed per component, drawn from torch's global generator (a fixed amount of it)."""
    return dict(zip(COMPONENTS, torch.randint(0, 2**62, (len(COMPONENTS),)).tolist()))


@contextlib.contextmanager
def seeded(seed: int):
    """Run the block with torch's CPU generator seeded by ``seed``, restoring it afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_detector(
    arch: str = "faster_rcnn",
    backbone: str = "resnet50",
    neck: str = "dsic",
    num_classes: int | None = None,
    pretrained_backbone: str | Path | None = None,
    norm: str | None = None,
    trainable_layers: int | None = None,
    out_channels: int = 256,
    neck_cfg: dict | None = None,
    min_size: int = 800,
    max_size: int = 1333,
    anchor_sizes: list[float] | None = None,
    return_stages: list[int] | None = None,
    detector_cfg: dict | None = None,
    init_from: str | Path | None = None,
    classes: list[dict] | str | None = None,
) -> nn.Module:
    """Build a torchvision detector whose backbone is ``backbone`` + ``neck``.

    Args:
        arch: ``faster_rcnn`` | ``mask_rcnn`` | ``fcos`` | ``retinanet``.
        backbone: see :func:`dsic.backbones.available_backbones`.
        neck: see :data:`dsic.necks.NECKS`; ``neck_cfg`` holds its options (e.g. gate modes).
        num_classes: foreground classes K (labels 1..K); None: ``len(classes)``.
        pretrained_backbone: ``None`` | ``"imagenet"`` | path to a classification state dict.
        norm: ``frozen_bn`` | ``bn`` | ``gn`` for the backbone's norm layers; None follows torchvision:
            ``frozen_bn`` when weights are loaded (``pretrained_backbone`` or ``init_from``), else ``bn``.
        trainable_layers: trainable backbone units from the top (0..5 for ResNets); None: 3 when
            weights are loaded, else all.
        return_stages: backbone stages feeding the neck (default per arch, see module docstring).
        detector_cfg: extra keyword arguments of the torchvision detector class.
        init_from: detector checkpoint to load (see :func:`load_detector_weights`); its load report is
            printed and kept as ``model.load_report``.
        classes: ``[{"id", "name"}]`` per label (or ``"torchvision_coco"``), kept as ``model.classes``.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {', '.join(ARCHS)}")
    if isinstance(classes, str):
        from ..data.classes import check_class_list

        classes = check_class_list(classes)
    if num_classes is None:
        if not classes:
            raise ValueError("num_classes is not set and no classes are given")
        num_classes = len(classes)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1 (foreground classes), got {num_classes}")
    if classes is not None and len(classes) != num_classes:
        raise ValueError(f"num_classes = {num_classes} but {len(classes)} classes are given")
    cls, default_stages, extra = ARCHS[arch]
    loads_weights = pretrained_backbone is not None or init_from is not None
    if norm is None:
        norm = "frozen_bn" if loads_weights else "bn"
    if trainable_layers is None and loads_weights:
        trainable_layers = 3
    seeds = component_seeds()
    with seeded(seeds["backbone"]):
        body = build_backbone(backbone, pretrained_backbone, norm, trainable_layers, return_stages or default_stages)
    with seeded(seeds["neck"]):
        pyramid = build_neck(neck, body.spec, out_channels, extra, **(neck_cfg or {}))
    kwargs = dict(detector_cfg or {})
    num_levels = len(body.spec.stage_channels) + (2 if extra == "p6p7" else 1)
    if anchor_sizes is not None:
        if len(anchor_sizes) != num_levels:
            raise ValueError(f"anchor_sizes needs one size per pyramid level ({num_levels}), got {anchor_sizes}")
        key = "rpn_anchor_generator" if arch.endswith("rcnn") else "anchor_generator"
        kwargs[key] = _anchor_generator(arch, anchor_sizes)
    elif arch.endswith("rcnn") and num_levels != 5:
        kwargs["rpn_anchor_generator"] = _anchor_generator(arch, [32 * 2**i for i in range(num_levels)])
    if arch.endswith("rcnn"):
        names = [str(i) for i in range(len(body.spec.stage_channels))]
        kwargs.setdefault("box_roi_pool", MultiScaleRoIAlign(names, output_size=7, sampling_ratio=2))
        if arch == "mask_rcnn":
            kwargs.setdefault("mask_roi_pool", MultiScaleRoIAlign(names, output_size=14, sampling_ratio=2))
    with seeded(seeds["heads"]):
        model = cls(DetectorBackbone(body, pyramid), num_classes + 1, min_size=min_size, max_size=max_size,
                    **kwargs)
    model.classes = classes
    if init_from is not None:
        model.load_report = load_detector_weights(model, init_from)
        print(f"[dsic] {format_load_report(model.load_report, init_from)}", file=sys.stderr, flush=True)
    return model


def inference_config(model_cfg: dict) -> dict:
    """``model_cfg`` for rebuilding a trained detector whose weights come from a checkpoint: the norm
    and trainable layers its training resolved, no weights to fetch (``pretrained_backbone`` and
    ``init_from`` dropped)."""
    cfg = dict(model_cfg)
    loads_weights = cfg.get("pretrained_backbone") is not None or cfg.get("init_from") is not None
    if cfg.get("norm") is None:
        cfg["norm"] = "frozen_bn" if loads_weights else "bn"
    cfg["pretrained_backbone"] = cfg["init_from"] = None
    return cfg


def _shape(t) -> str:
    return "x".join(map(str, t.shape)) if hasattr(t, "shape") else "?"


def format_load_report(report: dict, source) -> str:
    """One line: how many tensors were loaded, skipped, re-initialised, missing (with examples)."""
    def some(keys):
        return f" ({first_keys(keys)})" if keys else ""

    reinit = [f"{k} {a} -> {b}" for k, (a, b) in report["reinitialised"].items()]
    return (f"init_from {source}: loaded {len(report['loaded'])} tensors, skipped {len(report['skipped'])} "
            f"not in this model{some(report['skipped'])}, re-initialised {len(reinit)} of another shape"
            f"{some(reinit)}, {len(report['missing'])} not in the checkpoint kept at their initialisation"
            f"{some(report['missing'])}")


def load_detector_weights(model: nn.Module, source: str | Path | dict, strict: bool = False) -> dict:
    """Load detector weights from a path (a state dict, or a dsic checkpoint with ``model``) or dict.

    torchvision checkpoints with an FPN load into any neck. Unless ``strict``: keys the model does
    not have (e.g. the FPN of a CSG model) are skipped, tensors of another shape (e.g. the box
    predictor of another class count) keep the model's initialisation, and model keys the
    checkpoint lacks (e.g. the gates of a DSIC model) too; a file of which no tensor fits is refused
    (ValueError). Returns the load report
    ``{"loaded", "skipped", "reinitialised": {key: (checkpoint shape, model shape)}, "missing",
    "result"}`` (see :func:`format_load_report`).
    """
    if isinstance(source, dict):
        state = source
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"detector weights not found: {path}")
        from ..weights import load_weights_file  # weights only: a pickle cannot run code

        state = load_weights_file(path, "detector weights")
        state = state.get("model", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ValueError(f"{source if not isinstance(source, dict) else 'init_from'}: holds no state dict of "  # noqa: TRY004
                         f"detector weights")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    own = model.state_dict()
    # BatchNorm's step counters mean nothing to FrozenBatchNorm2d (torchvision's COCO models have none)
    state = {k: v for k, v in state.items() if k in own or not k.endswith(".num_batches_tracked")}
    if strict:
        result = model.load_state_dict(state, strict=True)
        return {"result": result, "loaded": sorted(state), "skipped": [], "reinitialised": {}, "missing": []}
    # apply the FPN renaming first, so shapes are compared under the model's own names
    renamed = dict(state)
    model.backbone._rename_torchvision_fpn(renamed, "backbone.")
    keep = {k: v for k, v in renamed.items() if k in own and own[k].shape == v.shape}
    if not keep:  # e.g. a backbone's classification weights: training would silently start from scratch
        raise ValueError(f"{source if not isinstance(source, dict) else 'init_from'}: none of its {len(renamed)} "
                         f"tensors fits this detector ({first_keys(sorted(renamed)) or 'no tensors'}); "
                         f"init_from takes detector weights, a backbone's go in model.pretrained_backbone")
    reinit = {k: (_shape(v), _shape(own[k])) for k, v in renamed.items() if k in own and k not in keep}
    result = model.load_state_dict(keep, strict=False)
    return {"result": result, "loaded": sorted(keep), "skipped": sorted(set(renamed) - set(own)),
            "reinitialised": dict(sorted(reinit.items())), "missing": sorted(set(own) - set(renamed))}
