"""YAML run configs: defaults, ``_base_`` inheritance, dotted overrides and strict validation.

A config file is a mapping with the sections ``model``, ``data``, ``train``, ``eval`` and the keys
``output_dir`` and ``device`` (every key optional; defaults in :data:`SCHEMA`, documented in
``docs/engine.md``). Loading order, later wins, mappings are merged key by key (deep merge):

1. the defaults;
2. ``_base_: path`` (relative to the file naming it; a list is merged in order), recursively;
3. the file itself;
4. overrides ``dotted.key=value``, the value parsed as YAML (``train.epochs=2``,
   ``model.neck_cfg={csg_mode: softmax}``, ``train.base_lr=1e-3``).

``neck_cfg: {_replace_: true, ...}`` (or ``detector_cfg``) replaces the inherited mapping instead
of merging into it.
Unknown keys, wrong types, invalid choices and numbers out of range raise :class:`ConfigError` naming
the file (or the override) that holds them and the dotted key, with the closest valid key as a hint;
all the problems of a file and the overrides are reported at once. Every number must be finite and
every real number fit float32 (the precision weights, lrs and thresholds are used in).
``model.neck_cfg`` and ``model.detector_cfg`` are free-form (their keys checked by the neck / the
detector; their numbers here).
Numbers such as ``1e-4`` are floats (PyYAML alone reads them as strings).

Derived values are filled in by :func:`finalize`: ``train.epochs`` and ``train.steps`` from the
schedule, ``data.with_masks`` and ``eval.iou_types`` from the architecture and ``output_dir``
(``runs/<config file stem>``).
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import ConfigError
from .messages import closest

DEVICE_NAMES = "auto, cpu, cuda or cuda:N"


def is_device_name(name: str) -> bool:
    """Whether ``name`` is a device the config and the command line take (DEVICE_NAMES)."""
    return re.fullmatch(r"auto|cpu|cuda(:\d+)?", name) is not None


def raise_problems(problems: list[str]) -> None:
    """Raise one :class:`ConfigError` for every problem in ``problems`` (each naming its file and key),
    all in one line: ``N problems: A; B; ...``. Nothing to raise when the list is empty."""
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"{len(problems)} problems: {'; '.join(problems)}", problems)


FLOAT32_MAX = 3.4028234663852886e38
"""The largest float32: weights, lrs, momentum and thresholds are used as float32 tensors (or
scalars applied to them), so a larger number cannot be used (torch: 'cannot be converted to type
float without overflow')."""


@dataclass(frozen=True)
class Leaf:
    """One config value: its default, accepted kinds and constraints."""

    default: object
    kinds: tuple[str, ...]  # among: int, float, str, bool, list, dict ("dict" = free-form mapping)
    nullable: bool = False
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    below: float | None = None  # exclusive upper bound
    items: str | None = None  # the kind of list items
    doc: str = ""


ARCHS = ("faster_rcnn", "mask_rcnn", "fcos", "retinanet")
SCHEDULES = {"1x": (12, (8, 11)), "2x": (24, (16, 22))}  # name -> (epochs, lr drops at epochs)
IOU_TYPES = ("bbox", "segm")

SCHEMA: dict = {
    "model": {
        "arch": Leaf("faster_rcnn", ("str",), choices=ARCHS),
        "backbone": Leaf("resnet50", ("str",)),
        "neck": Leaf("dsic", ("str",)),
        "num_classes": Leaf(None, ("int",), nullable=True, min=1,
                            doc="foreground classes K (labels 1..K); null: the training annotations' categories"),
        "classes": Leaf(None, ("str", "list"), nullable=True, choices=("torchvision_coco",), items="dict",
                        doc="null: the categories of the training JSON; torchvision_coco: label = COCO id"),
        "pretrained_backbone": Leaf(None, ("str",), nullable=True, doc="null | imagenet | path"),
        "norm": Leaf(None, ("str",), nullable=True, choices=("frozen_bn", "bn", "gn"),
                     doc="null: frozen_bn with pretrained weights, bn from scratch"),
        "trainable_layers": Leaf(None, ("int",), nullable=True, min=0, doc="null: 3 with pretrained weights, else all"),
        "out_channels": Leaf(256, ("int",), min=1),
        "neck_cfg": Leaf({}, ("dict",)),
        "min_size": Leaf(800, ("int", "list"), min=1, items="int"),
        "max_size": Leaf(1333, ("int",), min=1),
        "anchor_sizes": Leaf(None, ("list",), nullable=True, items="float"),
        "return_stages": Leaf(None, ("list",), nullable=True, items="int"),
        "detector_cfg": Leaf({}, ("dict",)),
        "init_from": Leaf(None, ("str",), nullable=True),
    },
    "data": {
        "train": {"images": Leaf(None, ("str",), nullable=True), "annotations": Leaf(None, ("str",), nullable=True)},
        "val": {"images": Leaf(None, ("str",), nullable=True), "annotations": Leaf(None, ("str",), nullable=True)},
        "train_scales": Leaf(None, ("list",), nullable=True, items="int", min=1),
        "hflip_prob": Leaf(0.5, ("float",), min=0, max=1),
        "num_workers": Leaf(2, ("int",), min=0),
        "with_masks": Leaf(None, ("bool",), nullable=True, doc="null: true for mask_rcnn"),
        "verify_images": Leaf(True, ("bool",), doc="check every image header when a dataset is loaded"),
    },
    "train": {
        "epochs": Leaf(None, ("int",), nullable=True, min=1, doc="null: the schedule's (12 for 1x, 24 for 2x)"),
        "batch_size": Leaf(2, ("int",), min=1, doc="images per process"),
        "base_lr": Leaf(0.02, ("float",), min=0),
        "base_batch_size": Leaf(16, ("int",), min=1),
        "momentum": Leaf(0.9, ("float",), min=0, below=1),
        "weight_decay": Leaf(1e-4, ("float",), min=0, below=1),
        "norm_bias_decay": Leaf(True, ("bool",)),
        "gate_lr_mult": Leaf(0.1, ("float",), min=0, doc="lr factor of the gate-signal parameters (CSG control "
                             "units, ISG stage gates); 1: the same lr as the rest (0.1: chosen by measurement, "
                             "docs/design.md)"),
        "lr_mults": Leaf({}, ("dict",), doc="{parameter-name glob: lr factor}, the first match wins over "
                         "gate_lr_mult; 0 freezes (dsic/engine/param_groups.py)"),
        "warmup_iters": Leaf(500, ("int",), min=0),
        "warmup_factor": Leaf(0.001, ("float",), min=0, max=1),
        "schedule": Leaf("1x", ("str", "list"), choices=tuple(SCHEDULES), items="float", min=0),
        "steps": Leaf(None, ("list",), nullable=True, items="float", min=0),
        "gamma": Leaf(0.1, ("float",), min=0, max=1, doc="lr factor per drop (a drop never raises the lr)"),
        "grad_clip": Leaf(None, ("float",), nullable=True, min=0),
        "amp": Leaf(True, ("bool", "str"), choices=("bf16", "fp16"),
                    doc="false | true (fp16 on CUDA, off elsewhere) | bf16 | fp16 (CUDA only)"),
        "ema": Leaf(False, ("bool",), doc="evaluate and save an exponential moving average of the weights"),
        "ema_decay": Leaf(0.999, ("float",), min=0, max=0.999999),
        "ema_tau": Leaf(2000.0, ("float",), min=0, doc="decay ramp: decay * (1 - exp(-updates / tau)); 0: none"),
        "seed": Leaf(0, ("int",), min=0),
        "eval_every": Leaf(1, ("int",), min=0),
        "checkpoint_every": Leaf(1, ("int",), min=0),
        "checkpoint_every_iters": Leaf(None, ("int",), nullable=True, min=1, doc="also every N iterations"),
        "checkpoint_minutes": Leaf(10.0, ("float",), nullable=True, min=0,
                                   doc="also after M minutes of training since the last one (null or 0: off)"),
        "log_every": Leaf(20, ("int",), min=1),
        "tensorboard": Leaf(False, ("bool",), doc="TensorBoard scalars in output_dir/tensorboard"),
        "max_iters": Leaf(None, ("int",), nullable=True, min=1),
        "find_unused_parameters": Leaf(False, ("bool",)),
        "sync_bn": Leaf(False, ("bool",)),
    },
    "eval": {
        "evaluator": Leaf("faster_coco_eval", ("str",), choices=("faster_coco_eval", "pycocotools")),
        "iou_types": Leaf(None, ("list",), nullable=True, items="str"),
        "max_dets": Leaf(100, ("int",), min=10),
        "batch_size": Leaf(2, ("int",), min=1),
    },
    "output_dir": Leaf(None, ("str",), nullable=True),
    "device": Leaf(None, ("str",), nullable=True, doc="null | auto | cpu | cuda | cuda:N"),
}
FREE_FORM = ("neck_cfg", "detector_cfg")
REPLACE = "_replace_"


def _defaults(schema: dict) -> dict:
    return {k: _defaults(v) if isinstance(v, dict) else copy.deepcopy(v.default) for k, v in schema.items()}


DEFAULTS: dict = _defaults(SCHEMA)


def dotted_keys_of(patch: dict, prefix: str = "") -> list[str]:
    """The dotted keys ``patch`` sets, at every depth (``{"a": {"b": 1}}`` -> ``["a", "a.b"]``)."""
    out = []
    for key, value in patch.items():
        out.append(prefix + key)
        if isinstance(value, dict):
            out += dotted_keys_of(value, f"{prefix}{key}.")
    return out


ALL_KEYS = dotted_keys_of(SCHEMA)


# --- YAML with numbers as a command line means them -------------------------------------------------

class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4`` / ``1E5`` as floats (YAML 1.1 demands a dot)."""


_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.VERBOSE)
_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _first in "-+0123456789.":
    _Loader.yaml_implicit_resolvers[_first] = [
        (tag, rx) for tag, rx in _Loader.yaml_implicit_resolvers.get(_first, []) if tag != "tag:yaml.org,2002:float"]
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def parse_yaml(text: str):
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass


# --- reading, merging, validating --------------------------------------------------------------------

def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = parse_yaml(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: malformed YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(data).__name__}")
    return data


def merge(base: dict, new: dict) -> dict:
    """Deep merge ``new`` into a copy of ``base`` (``_replace_: true`` in a mapping replaces instead)."""
    out = copy.deepcopy(base)
    for key, value in new.items():
        if isinstance(value, dict) and value.get(REPLACE):
            out[key] = copy.deepcopy({k: v for k, v in value.items() if k != REPLACE})
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _strip_replace(cfg):
    if isinstance(cfg, dict):
        return {k: _strip_replace(v) for k, v in cfg.items() if k != REPLACE}
    return cfg


def _hint(key: str, prefix: str, schema: dict) -> str:
    close = closest(key, schema)
    if close:
        return f" (did you mean '{prefix}{close}'?)"
    sections = {prefix[:-1]} if prefix else set()
    dotted = closest(prefix + key, [k for k in ALL_KEYS if k not in sections])
    same_leaf = [k for k in ALL_KEYS if k.rsplit(".", 1)[-1] == key]
    guess = same_leaf[0] if same_leaf else dotted
    if guess:
        return f" (did you mean '{guess}'?)"
    return f"; valid keys{' under ' + prefix[:-1] if prefix else ''}: {', '.join(schema)}"


def _kind_ok(value, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, {"str": str, "bool": bool, "list": list, "dict": dict}[kind])


def _number_problem(v, dotted: str, shown=None) -> str | None:
    """Why number ``v`` of ``dotted`` cannot be used (not finite, beyond float32), or None."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return None
    shown = v if shown is None else shown
    if not math.isfinite(v):
        return f"'{dotted}' = {shown!r} is not a finite number"
    if abs(v) > FLOAT32_MAX:
        return (f"'{dotted}' = {shown!r} is out of range: beyond float32's largest number {FLOAT32_MAX:.4g} "
                f"(the precision it is used in)")
    return None


def _free_form_problems(value, dotted: str) -> list[str]:
    """The non-finite and float32-overflowing real numbers of a free-form mapping (e.g.
    ``model.detector_cfg.box_nms_thresh=.nan``), by dotted key."""
    if isinstance(value, dict):
        return [p for k, v in value.items() if k != REPLACE for p in _free_form_problems(v, f"{dotted}.{k}")]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _free_form_problems(v, f"{dotted}[{i}]")]
    problem = _number_problem(value, dotted) if isinstance(value, float) else None
    return [problem] if problem else []


def _leaf_problems(leaf: Leaf, value, dotted: str) -> list[str]:
    """What is wrong with ``value`` for ``leaf`` (without the file's name)."""
    if value is None:
        return [] if leaf.nullable else [f"'{dotted}' must not be null"]
    kinds = " or ".join("a mapping" if k == "dict" else f"a list of {leaf.items}" if k == "list" else k
                        for k in leaf.kinds)
    kind = next((k for k in leaf.kinds if _kind_ok(value, k)), None)
    if kind is None:
        return [f"'{dotted}' must be {kinds}, got {value!r}"]
    values = [value]
    if kind == "dict":
        return _free_form_problems(value, dotted)
    if kind == "list":
        bad = [v for v in value if not _kind_ok(v, leaf.items)]
        if bad:
            return [f"'{dotted}' must be {kinds}, got {value!r}"]
        values = value
    elif kind == "str" and leaf.choices and value not in leaf.choices:
        close = closest(value, leaf.choices)
        hint = f" (did you mean '{close}'?)" if close else ""
        return [f"'{dotted}' = {value!r}, expected one of {', '.join(map(str, leaf.choices))}{hint}"]
    for v in values:
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        if number and (isinstance(v, float) or "float" in (kind, leaf.items)):
            problem = _number_problem(v, dotted, value)
            if problem:
                return [problem]
        if number and ((leaf.min is not None and v < leaf.min) or (leaf.max is not None and v > leaf.max)
                       or (leaf.below is not None and v >= leaf.below)):
            bounds = " and ".join(b for b in (leaf.min is not None and f">= {leaf.min}",
                                              leaf.max is not None and f"<= {leaf.max}",
                                              leaf.below is not None and f"< {leaf.below}") if b)
            return [f"'{dotted}' = {value!r} is out of range (must be {bounds})"]
    return []


def check_lr_mults(lr_mults: dict | None, where: str = "train.lr_mults") -> dict[str, float]:
    """``lr_mults`` as {pattern: float}; ValueError (one line, naming the key) for anything else."""
    if lr_mults is None:
        return {}
    if not isinstance(lr_mults, dict):
        raise ValueError(f"{where}: expected a mapping of parameter-name patterns to lr factors, "  # noqa: TRY004
                         f"got {type(lr_mults).__name__}")
    out = {}
    for pattern, factor in lr_mults.items():
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"{where}: pattern {pattern!r} is not a non-empty string")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 <= factor < float("inf"):
            raise ValueError(f"{where}.{pattern}: lr factor must be a number >= 0, got {factor!r}")
        out[pattern] = float(factor)
    return out


def problems_of(cfg: dict, where: str, schema: dict = SCHEMA, prefix: str = "") -> list[str]:
    """Every unknown key, wrong kind, choice and range in ``cfg``, each as ``where: problem``."""
    out = []
    for key, value in cfg.items():
        dotted = prefix + key
        if key == REPLACE:
            out.append(f"{where}: '{dotted}': {REPLACE} is only allowed inside model.neck_cfg and "
                       f"model.detector_cfg (sections always merge)")
        elif key not in schema:
            out.append(f"{where}: unknown key '{dotted}'{_hint(key, prefix, schema)}")
        elif isinstance(schema[key], dict):
            if isinstance(value, dict):
                out += problems_of(value, where, schema[key], dotted + ".")
            else:
                out.append(f"{where}: '{dotted}' must be a mapping, got {value!r}")
        else:
            out += [f"{where}: {problem}" for problem in _leaf_problems(schema[key], value, dotted)]
    return out


def validate(cfg: dict, where: str, schema: dict = SCHEMA, prefix: str = "") -> None:
    """Raise :class:`ConfigError` for unknown keys, wrong kinds, choices and ranges in ``cfg`` (all of
    them in one error, :func:`raise_problems`)."""
    raise_problems(problems_of(cfg, where, schema, prefix))


def read_with_bases(path: Path, chain: tuple = ()) -> dict:
    """The file merged over its ``_base_`` files; each file is validated under its own name."""
    path = Path(path).resolve()
    if path in chain:
        loop = " -> ".join(str(p) for p in (*chain, path))
        raise ConfigError(f"{path}: _base_ inheritance loops back to itself ({loop})")
    data = _read_yaml(path)
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not (isinstance(bases, list) and all(isinstance(b, str) for b in bases)):
        raise ConfigError(f"{path}: '_base_' must be a path or a list of paths, got {bases!r}")
    validate(data, str(path))
    merged: dict = {}
    for base in bases:
        base_path = path.parent / base
        if not base_path.is_file():
            raise ConfigError(f"{path}: _base_ file not found: {base_path}")
        merged = merge(merged, read_with_bases(base_path, (*chain, path)))
    return merge(merged, data)


def _leaf(keys: list[str]) -> Leaf | None:
    node = SCHEMA
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node if isinstance(node, Leaf) else None


def parse_override(item: str) -> dict:
    """``a.b=value`` -> ``{"a": {"b": value}}`` (value parsed as YAML; a key that only takes strings,
    such as ``output_dir``, keeps the text as it is)."""
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"override {item!r} must look like dotted.key=value")
    key, raw = item.split("=", 1)
    keys = key.strip().split(".")
    if not all(keys):
        raise ConfigError(f"override {item!r}: malformed key {key!r}")
    try:
        value = parse_yaml(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {item!r}: the value is not valid YAML: {err}") from err
    leaf = _leaf(keys)
    if leaf is not None and leaf.kinds == ("str",) and isinstance(value, (int, float, bool)):
        value = raw.strip()
    for k in reversed(keys):
        value = {k: value}
    return value


def apply_overrides(cfg: dict, overrides: list[str] | None, problems: list[str]) -> tuple[dict, dict[str, str]]:
    """``cfg`` with each valid override merged in, and ``{dotted key: "override '...'"}`` saying which
    override set each key; the problems of the others are appended to ``problems``."""
    origins: dict[str, str] = {}
    for item in overrides or []:
        where = f"override {item!r}"
        try:
            patch = parse_override(item)
            validate(patch, where)
        except ConfigError as err:
            problems += err.problems
            continue
        cfg = merge(cfg, patch)
        origins.update(dict.fromkeys(dotted_keys_of(patch), where))
    return cfg, origins


def _as_number(v: float):
    return int(v) if float(v).is_integer() else float(v)


def finalize(cfg: dict, where: str = "config", origins: dict[str, str] | None = None) -> dict:
    """Fill the derived values (in place) and check relations between keys; returns ``cfg``.
    Errors name ``where``, or for a key in ``origins`` (``{dotted key: override}``) what set it."""
    origins = origins or {}

    def at(key: str) -> str:
        return origins.get(key, where)

    cfg = _strip_replace(cfg)
    model, data, train, ev = cfg["model"], cfg["data"], cfg["train"], cfg["eval"]
    # schedule: epochs and lr drops (in epochs, may be fractional when a named schedule is scaled)
    schedule = train["schedule"]
    if train["steps"] is not None:
        steps = train["steps"]
        if train["epochs"] is None:
            train["epochs"] = SCHEDULES[schedule][0] if isinstance(schedule, str) else 12
    elif isinstance(schedule, list):
        steps = schedule
        train["epochs"] = train["epochs"] or 12
    else:
        sched_epochs, drops = SCHEDULES[schedule]
        train["epochs"] = train["epochs"] or sched_epochs
        steps = [d * train["epochs"] / sched_epochs for d in drops]
    train["steps"] = sorted(_as_number(s) for s in steps)
    # masks and evaluation types
    masks = model["arch"] == "mask_rcnn"
    if data["with_masks"] is None:
        data["with_masks"] = masks
    elif masks and not data["with_masks"]:
        raise ConfigError(f"{at('data.with_masks')}: 'data.with_masks' is false but mask_rcnn trains on masks")
    if ev["iou_types"] is None:
        ev["iou_types"] = ["bbox", "segm"] if masks else ["bbox"]
    bad = [t for t in ev["iou_types"] if t not in IOU_TYPES]
    if bad or not ev["iou_types"]:
        raise ConfigError(f"{at('eval.iou_types')}: 'eval.iou_types' = {ev['iou_types']!r}, expected a non-empty list of "
                          f"{', '.join(IOU_TYPES)}")
    if "segm" in ev["iou_types"] and not masks:
        raise ConfigError(f"{at('eval.iou_types')}: 'eval.iou_types' has segm but model.arch {model['arch']!r} predicts no masks")
    if model["norm"] == "frozen_bn" and model["pretrained_backbone"] is None and model["init_from"] is None:
        raise ConfigError(f"{at('model.norm')}: 'model.norm' = 'frozen_bn' with no pretrained weights (model.pretrained_backbone "
                          f"and model.init_from are null) would freeze random statistics; use bn or gn, or null")
    try:
        check_lr_mults(train["lr_mults"])
    except ValueError as err:
        raise ConfigError(f"{at('train.lr_mults')}: {err}") from None
    device = cfg["device"]
    if device is not None and not is_device_name(device):
        raise ConfigError(f"{at('device')}: 'device' = {device!r}, expected {DEVICE_NAMES}")
    try:
        from .necks import NECKS
    except ImportError:  # pragma: no cover - the necks package is optional for config handling
        NECKS = None
    if NECKS is not None and model["neck"] not in NECKS:
        close = closest(model["neck"], NECKS)
        hint = f" (did you mean '{close}'?)" if close else ""
        raise ConfigError(f"{at('model.neck')}: 'model.neck' = {model['neck']!r}, expected one of {', '.join(NECKS)}{hint}")
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    """Defaults <- file (with its bases) <- overrides, validated and finalized (see the module doc).

    ``path`` None starts from the defaults alone. Returns a plain nested dict.
    """
    cfg = copy.deepcopy(DEFAULTS)
    name, where = "default", "config"
    problems: list[str] = []
    if path is not None:
        path = Path(path)
        name, where = path.stem, str(path)
        try:
            cfg = merge(cfg, read_with_bases(path))
        except ConfigError as err:  # the overrides' problems are reported with the file's
            problems += err.problems
    cfg, origins = apply_overrides(cfg, overrides, problems)
    raise_problems(problems)
    cfg = finalize(cfg, where, origins)
    if cfg["output_dir"] is None:
        cfg["output_dir"] = str(Path("runs") / name)
    return cfg


def dump_config(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
