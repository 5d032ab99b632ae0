"""A trained detector from its checkpoint: the run config saved in it (or a config file), the model
rebuilt from that config and the weights loaded (``dsic eval``, ``predict``, ``visualize``, ``export``)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

from .distributed import resolve_device


def checkpoint_config(checkpoint: str | Path, state: dict, config: str | Path | None = None,
                      overrides: list[str] | None = None) -> dict:
    """The run config: ``config`` when given, else the one saved in the checkpoint (the defaults for a
    bare state dict); ``overrides`` on top."""
    from ..config import DEFAULTS, ConfigError, apply_overrides, finalize, load_config, merge, raise_problems
    from ..config import validate as validate_config

    if config is not None:
        return load_config(config, overrides or [])
    saved = state.get("config") if isinstance(state, dict) else None
    if not isinstance(saved, dict):
        if overrides:  # a bare state dict (e.g. torchvision's) described by overrides alone
            return load_config(None, overrides)
        raise ConfigError(f"{checkpoint}: holds no config (a bare state dict); pass a config file with --config")
    validate_config(saved, f"{checkpoint} (its config)")
    problems: list[str] = []
    cfg, origins = apply_overrides(merge(copy.deepcopy(DEFAULTS), saved), overrides, problems)
    raise_problems(problems)
    return finalize(cfg, str(checkpoint), origins)


def model_overrides(overrides: list[str] | None) -> list[str]:
    """The overrides that change the model section."""
    return [item for item in overrides or [] if item.split("=", 1)[0].strip().split(".")[0] == "model"]


def check_class_overrides(checkpoint, own: list[dict] | None, overrides: list[str] | None) -> None:
    """Model overrides apply to a trained checkpoint's model (as detectron2's and mmdetection's
    command-line options do), except its classes: its weights fix them. A ConfigError names an
    override that would change them (it was silently ignored)."""
    from ..config import ConfigError, parse_override
    from ..messages import id_list

    if own is None:
        return
    for item in model_overrides(overrides):
        model = parse_override(item)["model"]
        model = model if isinstance(model, dict) else {}
        changed = ("num_classes" in model and model["num_classes"] != len(own)) or (
            "classes" in model and model["classes"] != own)
        if changed:
            raise ConfigError(f"override {item!r}: {checkpoint} was trained on {len(own)} classes (category ids "
                              f"{id_list(c['id'] for c in own)}), which its weights fix; to train on other classes, "
                              f"start a run from it with model.init_from={checkpoint}")


def _num_classes_from_weights(weights: dict) -> int | None:
    w = weights.get("roi_heads.box_predictor.cls_score.weight")
    return int(w.shape[0]) - 1 if w is not None else None


def load_trained(checkpoint: str | Path, config: str | Path | None = None, overrides: list[str] | None = None,
                 device: str | None = None, split: str | None = None):
    """``(model in eval mode, cfg, device)`` for a dsic checkpoint or a bare state dict (e.g. one of
    torchvision's). The checkpoint's classes win over the config's; with ``split`` they are checked
    against that split's annotations (:func:`dsic.data.classes.resolve_classes`)."""
    from ..config import ConfigError
    from ..data.classes import check_class_list, checkpoint_classes, resolve_classes
    from ..models.builder import inference_config
    from .builders import build_model
    from .checkpoint import load_checkpoint, model_state

    state = load_checkpoint(checkpoint)
    cfg = checkpoint_config(checkpoint, state, config, overrides)
    weights = model_state(state)
    own = checkpoint_classes(state)
    check_class_overrides(checkpoint, own, overrides)
    if split is not None:
        cfg = resolve_classes(cfg, split, own)
    elif own is not None or cfg["model"]["classes"] is not None:
        classes = check_class_list(own if own is not None else cfg["model"]["classes"])
        cfg["model"]["classes"], cfg["model"]["num_classes"] = classes, len(classes)
    model_cfg = cfg["model"]
    if model_cfg["num_classes"] is None and model_cfg["classes"] is None:
        model_cfg["num_classes"] = _num_classes_from_weights(weights)
        if model_cfg["num_classes"] is None:
            raise ConfigError(f"{checkpoint}: the number of classes is unknown; set model.num_classes")
    if model_overrides(overrides):
        print(f"[dsic] model settings applied to {checkpoint}'s model: {', '.join(model_overrides(overrides))}",
              file=sys.stderr, flush=True)
    model = build_model({**cfg, "model": inference_config(model_cfg)})
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        from ..models.state_fit import mismatch_summary

        detail = mismatch_summary(model.state_dict(), weights)
        raise ValueError(f"{checkpoint}: does not fit the configured model ({model_cfg['arch']}, "
                         f"{model_cfg['backbone']}, {model_cfg['neck']}, {model_cfg['num_classes']} classes): "
                         f"{detail}") from err
    if model.classes is None and isinstance(model_cfg["classes"], list):
        model.classes = model_cfg["classes"]
    dev = resolve_device(device or cfg.get("device"))
    return model.to(dev).eval(), cfg, dev


def load_model(config: str | Path | None, checkpoint: str | Path, overrides: list[str] | None = None,
               device: str | None = None):
    """Build the detector and load ``checkpoint`` (see :func:`load_trained`)."""
    return load_trained(checkpoint, config, overrides, device)
