"""Object crops of a COCO-format detection set: a classification set for backbone pre-training.

``extract_crops(images, annotations, size=64, min_side=8, context=(1.2, 2.5), seed=0)`` turns every
annotation that is not a crowd and whose box side ``sqrt(w * h)`` is at least ``min_side`` pixels
into one ``size`` x ``size`` RGB crop: a square around the box centre, of side ``max(w, h)`` times a
context factor drawn uniformly from ``context``, shifted by up to 10 % of its side, clipped to the
image (what falls outside is black), resized bilinearly. The draws are a function of ``seed`` and the
annotation's position, so the same arguments give the same crops. The label is the category's
position among the file's sorted category ids.

Protocol v3 of the embedded benchmark pre-trains ``resnet_tiny`` on such crops from a synthetic set
made with another seed than the detection set (:mod:`dsic.engine.pretrain`), in place of the ImageNet
pre-training the paper's backbones have and this machine cannot download.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .coco import load_coco_json
from .errors import DatasetError
from .pixels import UnsupportedPixels, to_rgb


def _square(box, factor: float, shift) -> tuple[int, int, int, int]:
    x, y, w, h = box
    side = max(w, h) * factor
    cx, cy = x + w / 2 + shift[0] * side, y + h / 2 + shift[1] * side
    left, top = round(cx - side / 2), round(cy - side / 2)
    right, bottom = max(left + 1, round(cx + side / 2)), max(top + 1, round(cy + side / 2))
    return left, top, right, bottom


def extract_crops(images: str | Path, annotations: str | Path, size: int = 64, min_side: float = 8.0,
                  context: tuple[float, float] = (1.2, 2.5), seed: int = 0, limit: int | None = None):
    """Return ``(crops, labels, categories)``: uint8 [N, 3, size, size], int64 [N] in 0..K-1, and the
    file's categories in label order (see the module doc). ``limit`` keeps the first N crops."""
    if size < 8 or min_side < 1 or not 1.0 <= context[0] <= context[1]:
        raise ValueError(f"extract_crops: need size >= 8, min_side >= 1 and 1 <= context[0] <= context[1], "
                         f"got {size}, {min_side} and {context}")
    data = load_coco_json(annotations)
    categories = sorted(data.get("categories", []), key=lambda c: c["id"])
    label_of = {c["id"]: i for i, c in enumerate(categories)}
    per_image: dict[int, list] = {}
    for ann in data.get("annotations", []):
        w, h = ann["bbox"][2:]
        if ann.get("iscrowd", 0) or w <= 0 or h <= 0 or math.sqrt(w * h) < min_side:
            continue
        per_image.setdefault(ann["image_id"], []).append(ann)
    rng = np.random.default_rng(seed)
    crops, labels = [], []
    folder = Path(images)
    for info in sorted(data.get("images", []), key=lambda i: i["id"]):
        anns = per_image.get(info["id"], [])
        if not anns:
            continue
        path = folder / info["file_name"]
        try:
            with Image.open(path) as im:
                img = to_rgb(im)
        except (OSError, UnsupportedPixels) as err:
            raise DatasetError(f"{path}: cannot read image ({err})") from None
        for ann in anns:
            factor = rng.uniform(*context)
            shift = rng.uniform(-0.1, 0.1, size=2)
            crop = img.crop(_square(ann["bbox"], factor, shift))
            crop = crop.resize((size, size), Image.BILINEAR)
            crops.append(torch.from_numpy(np.asarray(crop).copy()).permute(2, 0, 1))
            labels.append(label_of[ann["category_id"]])
            if limit is not None and len(crops) >= limit:
                return torch.stack(crops), torch.tensor(labels), categories
    if not crops:
        raise DatasetError(f"{annotations}: no annotation gives a crop (none with a box side >= {min_side} px)")
    return torch.stack(crops), torch.tensor(labels), categories
