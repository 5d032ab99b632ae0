"""YAML configs: defaults, ``_base_`` inheritance, dotted overrides and strict validation.

A config file is a mapping with the sections below (every key optional; defaults in
:data:`DEFAULTS`). ``_base_: path`` (relative to the file, or a list of paths) is merged first.
Overrides are ``dotted.key=value`` strings whose value is parsed as YAML (``train.epochs=2``,
``model.neck_cfg={csg_mode: softmax}``). Unknown keys and wrong types raise :class:`ConfigError`
naming the file and the dotted key, with the closest valid key as a hint. ``model.neck_cfg`` and
``model.detector_cfg`` are free-form (checked later by the neck / the detector class).
"""

from __future__ import annotations

import contextlib
import copy
import difflib
from pathlib import Path

import yaml

DEFAULTS: dict = {
    "model": {
        "arch": "faster_rcnn", "backbone": "resnet50", "neck": "dsic", "num_classes": 80,
        "pretrained_backbone": None, "norm": "frozen_bn", "trainable_layers": 3, "out_channels": 256,
        "neck_cfg": {}, "min_size": 800, "max_size": 1333, "anchor_sizes": None, "return_stages": None,
        "detector_cfg": {}, "init_from": None,
    },
    "data": {
        "train": {"images": None, "annotations": None},
        "val": {"images": None, "annotations": None},
        "train_scales": None, "hflip_prob": 0.5, "num_workers": 2, "with_masks": None,
    },
    "train": {
        "epochs": 12, "batch_size": 2, "base_lr": 0.02, "base_batch_size": 16, "momentum": 0.9,
        "weight_decay": 1e-4, "norm_bias_decay": True, "warmup_iters": 500, "warmup_factor": 0.001,
        "schedule": "1x", "steps": None, "gamma": 0.1, "grad_clip": None, "amp": True, "seed": 0,
        "eval_every": 1, "checkpoint_every": 1, "log_every": 20, "max_iters": None,
        "find_unused_parameters": False, "sync_bn": False,
    },
    "eval": {"evaluator": "faster_coco_eval", "iou_types": None, "max_dets": 100, "batch_size": 2},
    "output_dir": None,
    "device": None,
}
FREE_FORM = {"model.neck_cfg", "model.detector_cfg"}
# allowed types per key beyond the default's own type (None defaults accept these)
TYPES = {
    "model.pretrained_backbone": (str,), "model.anchor_sizes": (list,), "model.return_stages": (list,),
    "model.init_from": (str,), "data.train.images": (str,), "data.train.annotations": (str,),
    "data.val.images": (str,), "data.val.annotations": (str,), "data.train_scales": (list,),
    "data.with_masks": (bool,), "train.steps": (list,), "train.grad_clip": (int, float),
    "train.max_iters": (int,), "eval.iou_types": (list,), "output_dir": (str,), "device": (str,),
}
CHOICES = {
    "model.arch": ("faster_rcnn", "mask_rcnn", "fcos", "retinanet"),
    "model.norm": ("frozen_bn", "bn", "gn"),
    "train.schedule": ("1x", "2x", "custom"),
    "eval.evaluator": ("faster_coco_eval", "pycocotools"),
}
SCHEDULES = {"1x": (12, (8, 11)), "2x": (24, (16, 22))}


class ConfigError(ValueError):
    """A config file or override is malformed; the message names the file and the key."""


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: malformed YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections")
    return data


def merge(base: dict, new: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("neck_cfg", "detector_cfg"):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_with_bases(path: Path, seen: tuple = ()) -> dict:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: _base_ inheritance loops back to itself")
    data = _read_yaml(path)
    bases = data.pop("_base_", [])
    merged: dict = {}
    for base in [bases] if isinstance(bases, str) else bases:
        merged = merge(merged, read_with_bases(path.parent / base, (*seen, path)))
    return merge(merged, data)


def _parse_override(item: str) -> tuple[list[str], object]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like dotted.key=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {item!r}: value is not valid YAML: {err}") from err
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 as a string; a command line means a number
        with contextlib.suppress(ValueError):
            value = float(value)
    return key.strip().split("."), value


def _nest(keys: list[str], value) -> dict:
    for key in reversed(keys):
        value = {key: value}
    return value


def validate(cfg: dict, source: str, defaults: dict = DEFAULTS, prefix: str = "") -> None:
    for key, value in cfg.items():
        dotted = prefix + key
        if key not in defaults:
            hint = difflib.get_close_matches(key, list(defaults), n=1)
            where = f" (did you mean '{prefix}{hint[0]}'?)" if hint else f"; valid keys here: {sorted(defaults)}"
            raise ConfigError(f"{source}: unknown key '{dotted}'{where}")
        default = defaults[key]
        if dotted in FREE_FORM:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{dotted}' must be a mapping, got {value!r}")
            continue
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{dotted}' must be a mapping, got {value!r}")
            validate(value, source, default, dotted + ".")
            continue
        allowed = TYPES.get(dotted, ())
        if value is None and (default is None or dotted in TYPES):
            continue
        ok = isinstance(value, allowed) if allowed else False
        if default is not None:
            kind = (int, float) if isinstance(default, float) else type(default)
            ok = ok or (isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool))
        if not ok:
            raise ConfigError(f"{source}: '{dotted}' has the wrong type: {value!r}")
        if dotted in CHOICES and value not in CHOICES[dotted]:
            raise ConfigError(f"{source}: '{dotted}' = {value!r}, expected one of {', '.join(CHOICES[dotted])}")


def finalize(cfg: dict, name: str) -> dict:
    """Fill the derived values: output_dir, schedule steps, mask/iou-type switches."""
    train = cfg["train"]
    if train["steps"] is None:
        if train["schedule"] not in SCHEDULES:
            raise ConfigError(f"{name}: train.schedule 'custom' needs train.steps")
        epochs, steps = SCHEDULES[train["schedule"]]
        train["steps"] = [round(s * train["epochs"] / epochs) for s in steps]
    masks = cfg["model"]["arch"] == "mask_rcnn"
    if cfg["data"]["with_masks"] is None:
        cfg["data"]["with_masks"] = masks
    if cfg["eval"]["iou_types"] is None:
        cfg["eval"]["iou_types"] = ["bbox", "segm"] if masks else ["bbox"]
    if cfg["output_dir"] is None:
        cfg["output_dir"] = str(Path("runs") / name)
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    """Defaults <- file (with its bases) <- overrides, validated; see the module docstring."""
    cfg = copy.deepcopy(DEFAULTS)
    name = "default"
    if path is not None:
        path = Path(path)
        data = read_with_bases(path)
        validate(data, str(path))
        cfg = merge(cfg, data)
        name = path.stem
    for item in overrides or []:
        keys, value = _parse_override(item)
        patch = _nest(keys, value)
        validate(patch, f"override {item!r}")
        cfg = merge(cfg, patch)
    return finalize(cfg, name)


def dump_config(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
