"""COCO-format detection / instance segmentation dataset (read through pycocotools).

Item ``i`` is ``(image, target)``: ``image`` float32 [3, H, W] in [0, 1] (RGB), ``target`` a dict

* ``boxes`` float32 [N, 4] xyxy pixels, clipped to the image; ``labels`` int64 [N] in 1..K,
  contiguous over the sorted COCO category ids (``cat_ids[label - 1]`` maps back);
* ``masks`` uint8 [N, H, W] when ``with_masks`` (polygons, uncompressed and compressed RLE);
* ``image_id`` int64 scalar (the COCO id), ``area`` float32 [N], ``iscrowd`` int64 [N].

As torchvision's detection references: crowd annotations are dropped from training targets (unless
``keep_crowd``); boxes that are empty after clipping are dropped (counted in ``dropped_boxes``);
images without annotations give empty targets, or are skipped with ``remove_empty``. Malformed
input raises :class:`~dsic.data.errors.DatasetError` naming the file, the record and the field.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from .errors import DatasetError


def load_coco_json(ann_file: str | Path) -> dict:
    """Read and validate a COCO JSON file; errors name the file, the record id and the field."""
    path = Path(ann_file)
    if not path.is_file():
        raise DatasetError(f"annotation file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from err
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object with images/annotations/categories")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: missing or non-list field '{key}'")
    data.setdefault("annotations", [])
    for img in data["images"]:
        for field in ("id", "file_name", "width", "height"):
            if field not in img:
                raise DatasetError(f"{path}: image {img.get('id', '?')} has no field '{field}'")
    cat_ids = set()
    for cat in data["categories"]:
        if "id" not in cat:
            raise DatasetError(f"{path}: a category has no field 'id'")
        cat_ids.add(cat["id"])
    image_ids = {img["id"] for img in data["images"]}
    for ann in data["annotations"]:
        aid = ann.get("id", "?")
        for field in ("id", "image_id", "category_id", "bbox"):
            if field not in ann:
                raise DatasetError(f"{path}: annotation {aid} has no field '{field}'")
        bbox = ann["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            raise DatasetError(f"{path}: annotation {aid} field 'bbox' must be 4 numbers [x, y, w, h], got {bbox!r}")
        if ann["category_id"] not in cat_ids:
            raise DatasetError(f"{path}: annotation {aid} field 'category_id' = {ann['category_id']} "
                               f"is not among the categories {sorted(cat_ids)}")
        if ann["image_id"] not in image_ids:
            raise DatasetError(f"{path}: annotation {aid} field 'image_id' = {ann['image_id']} names no image")
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", float(bbox[2] * bbox[3]))
    return data


def coco_from_dict(data: dict) -> COCO:
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def ann_to_mask(ann: dict, height: int, width: int, where: str) -> np.ndarray:
    seg = ann.get("segmentation")
    if seg is None:
        raise DatasetError(f"{where}: annotation {ann['id']} has no field 'segmentation' (needed for masks)")
    try:
        if isinstance(seg, list):  # polygons
            rles = mask_utils.frPyObjects(seg, height, width)
            rle = mask_utils.merge(rles)
        elif isinstance(seg.get("counts"), list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(seg, height, width)
        else:  # compressed RLE
            rle = dict(seg)
            if isinstance(rle["counts"], str):
                rle["counts"] = rle["counts"].encode()
        return mask_utils.decode(rle).astype(np.uint8)
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise DatasetError(f"{where}: annotation {ann['id']} field 'segmentation' is malformed: {err}") from err


def read_rgb(path: Path, image_id, expected: tuple[int, int] | None = None) -> torch.Tensor:
    if not path.is_file():
        raise DatasetError(f"image {image_id} file not found: {path}")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            arr = np.asarray(im, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DatasetError(f"image {image_id} cannot be decoded: {path}: {err}") from err
    if expected is not None and arr.shape[:2] != expected:
        raise DatasetError(f"image {image_id} {path}: size {arr.shape[1]}x{arr.shape[0]} (WxH) differs from "
                           f"the annotation file's {expected[1]}x{expected[0]}")
    return torch.from_numpy(arr).permute(2, 0, 1).float().div_(255)


class CocoDetection(torch.utils.data.Dataset):
    def __init__(self, images_dir: str | Path, ann_file: str | Path, transforms=None, with_masks: bool = False,
                 remove_empty: bool = False, keep_crowd: bool = False):
        self.images_dir = Path(images_dir)
        self.ann_file = Path(ann_file)
        if not self.images_dir.is_dir():
            raise DatasetError(f"images folder not found: {self.images_dir}")
        self.coco = coco_from_dict(load_coco_json(self.ann_file))
        self.cat_ids = sorted(self.coco.getCatIds())
        self.class_names = [self.coco.cats[c].get("name", str(c)) for c in self.cat_ids]
        self._label_of = {c: i + 1 for i, c in enumerate(self.cat_ids)}
        self.transforms = transforms
        self.with_masks = with_masks
        self.keep_crowd = keep_crowd
        self.dropped_boxes = 0
        ids = sorted(self.coco.imgs)
        if remove_empty:
            ids = [i for i in ids if any(self._usable(a) for a in self.coco.imgToAnns.get(i, []))]
        self.ids = ids

    def label_to_cat_id(self, label: int) -> int:
        return self.cat_ids[int(label) - 1]

    def _usable(self, ann: dict) -> bool:
        return (self.keep_crowd or not ann.get("iscrowd", 0)) and ann["bbox"][2] > 0 and ann["bbox"][3] > 0

    def __len__(self) -> int:
        return len(self.ids)

    def target_for(self, image_id: int, height: int, width: int) -> dict:
        anns = [a for a in self.coco.imgToAnns.get(image_id, []) if self.keep_crowd or not a.get("iscrowd", 0)]
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        if not keep.all():
            dropped = int((~keep).sum())
            self.dropped_boxes += dropped
            warnings.warn(f"{self.ann_file}: image {image_id}: dropped {dropped} degenerate box(es) "
                          f"(empty after clipping to {width}x{height})", stacklevel=2)
        anns = [a for a, k in zip(anns, keep.tolist()) if k]
        target = {
            "boxes": boxes[keep],
            "labels": torch.tensor([self._label_of[a["category_id"]] for a in anns], dtype=torch.int64),
            "image_id": torch.tensor(image_id, dtype=torch.int64),
            "area": torch.tensor([float(a["area"]) for a in anns], dtype=torch.float32),
            "iscrowd": torch.tensor([int(a.get("iscrowd", 0)) for a in anns], dtype=torch.int64),
        }
        if self.with_masks:
            where = str(self.ann_file)
            masks = [ann_to_mask(a, height, width, where) for a in anns]
            target["masks"] = (torch.from_numpy(np.stack(masks)) if masks
                               else torch.zeros(0, height, width, dtype=torch.uint8))
        return target

    def __getitem__(self, index: int):
        image_id = self.ids[index]
        info = self.coco.imgs[image_id]
        image = read_rgb(self.images_dir / info["file_name"], image_id, (int(info["height"]), int(info["width"])))
        target = self.target_for(image_id, image.shape[1], image.shape[2])
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


def collate_fn(batch):
    """Detection batches are lists: images differ in size; torchvision's detectors batch them."""
    return tuple(zip(*batch)) if batch else ((), ())
