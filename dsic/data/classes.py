"""A model's classes: which COCO category id and name each label 1..K stands for.

``model.classes`` holds them in label order as ``[{"id": category_id, "name": name}, ...]``. Null
takes the categories of the training JSON sorted by id (any ids: gaps, not starting at 1), and
``model.num_classes`` null takes their number; a given number is checked against them. The config
(with the resolved classes) is saved in every checkpoint, so evaluation and prediction map labels
back to the same category ids and names. ``torchvision_coco`` is torchvision's COCO label space:
90 labels, label = COCO category id (its detectors' checkpoints predict these).
"""

from __future__ import annotations

import copy
from pathlib import Path

from .. import ConfigError
from ..messages import id_list
from .errors import DatasetError

TORCHVISION_COCO = "torchvision_coco"


def torchvision_coco_classes() -> list[dict]:
    """Labels 1..90 of torchvision's COCO detectors; ids without a COCO category are named ``N/A``."""
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

    names = FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]  # [0] is the background
    return [{"id": i, "name": names[i]} for i in range(1, len(names))]


def categories_of(ann_file: str | Path) -> list[dict]:
    """``[{"id", "name"}]`` of a COCO JSON's categories, sorted by id."""
    from .coco import load_coco_json

    cats = load_coco_json(ann_file)["categories"]
    return [{"id": c["id"], "name": str(c.get("name", c["id"]))} for c in sorted(cats, key=lambda c: c["id"])]


def check_class_list(classes, where: str = "model.classes") -> list[dict]:
    """``classes`` as a list of ``{"id": int, "name": str}`` with distinct ids (ConfigError otherwise)."""
    if classes == TORCHVISION_COCO:
        return torchvision_coco_classes()
    seen = set()
    for c in classes:
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or isinstance(c.get("id"), bool):
            raise ConfigError(f"{where}: every class must be a mapping with an integer 'id' and a 'name', got {c!r}")
        if c["id"] in seen:
            raise ConfigError(f"{where}: class id {c['id']} appears twice")
        seen.add(c["id"])
    return [{"id": c["id"], "name": str(c.get("name", c["id"]))} for c in classes]


def check_split_paths(cfg: dict, split: str) -> None:
    """``data.<split>.images`` is a folder and ``data.<split>.annotations`` a file where set (a
    DatasetError naming the key otherwise; a relative path is read from the current folder)."""
    paths = (cfg.get("data") or {}).get(split) or {}
    for key, exists, what in (("annotations", Path.is_file, "file"), ("images", Path.is_dir, "folder")):
        value = paths.get(key)
        if value and not exists(Path(value)):
            where = "" if Path(value).is_absolute() else f" (relative to the current folder {Path.cwd()})"
            raise DatasetError(f"data.{split}.{key} = {str(value)!r}: no such {what}{where}")


def resolve_classes(cfg: dict, split: str = "train", adopt: list | None = None, source: str | None = None) -> dict:
    """A copy of ``cfg`` with ``model.classes`` and ``model.num_classes`` filled in and checked
    against the ``split`` annotations (``train`` for training, ``val`` for evaluation).

    ``adopt``: classes that win over the config's (a checkpoint's own); ``source``: whose category
    ids they are, for the message (default: the checkpoint's, or model.classes). A ConfigError
    names the file and the key when the numbers or the category ids do not fit."""
    cfg = copy.deepcopy(cfg)
    model = cfg["model"]
    classes = adopt if adopt is not None else model.get("classes")
    check_split_paths(cfg, split)
    ann = ((cfg.get("data") or {}).get(split) or {}).get("annotations")
    cats = categories_of(ann) if ann else None
    if classes is None:
        if cats is None:
            if model["num_classes"] is None:
                raise ConfigError(f"model.num_classes is null and data.{split}.annotations is not set: "
                                  f"nothing to take the classes from")
            return cfg
        if not cats:
            raise DatasetError(f"{ann}: field 'categories' is empty; the classes are taken from it (ids and names)")
        classes = cats
        if model["num_classes"] is not None and model["num_classes"] != len(cats):
            hint = (f" (for torchvision's COCO detectors, whose labels are the category ids: model.classes: "
                    f"{TORCHVISION_COCO})" if model["num_classes"] == 90 and max(c["id"] for c in cats) <= 90 else "")
            raise ConfigError(f"model.num_classes = {model['num_classes']} but {ann} has {len(cats)} categories "
                              f"(ids {id_list(c['id'] for c in cats)}); set model.num_classes: {len(cats)}, or null to take it from "
                              f"the annotations{hint}")
    classes = check_class_list(classes)
    if model["num_classes"] is not None and adopt is None and model["num_classes"] != len(classes):
        raise ConfigError(f"model.num_classes = {model['num_classes']} but model.classes lists {len(classes)} "
                          f"classes")
    if cats is not None:
        known = {c["id"] for c in classes}
        foreign = [c["id"] for c in cats if c["id"] not in known]
        if foreign:
            source = source or ("the checkpoint's category ids" if adopt is not None else
                                "the category ids of model.classes")
            raise DatasetError(f"{ann}: category ids {id_list(foreign)} are not among {source} {id_list(known)} "
                               f"(num_classes {len(classes)})")
    model["classes"], model["num_classes"] = classes, len(classes)
    return cfg


def check_classes(cfg: dict) -> dict:
    """Before training: the classes resolved from the training annotations, and the validation
    annotations' categories checked against them (a ConfigError / DatasetError otherwise)."""
    given = cfg["model"].get("classes") is not None
    cfg = resolve_classes(cfg, "train")
    if ((cfg.get("data") or {}).get("val") or {}).get("annotations") and cfg["model"]["classes"] is not None:
        source = "the category ids of model.classes" if given else "the training set's category ids"
        resolve_classes(cfg, "val", cfg["model"]["classes"], source)
    return cfg


def checkpoint_classes(state: dict) -> list[dict] | None:
    """The classes a dsic checkpoint was trained with (None for a bare state dict)."""
    cfg = state.get("config") if isinstance(state, dict) else None
    classes = ((cfg or {}).get("model") or {}).get("classes")
    return classes if isinstance(classes, list) else None


def class_names(classes: list[dict] | None) -> list[str] | None:
    return [c["name"] for c in classes] if classes else None

