"""COCO-format detection / instance segmentation dataset (read through pycocotools).

Item ``i`` is ``(image, target)``: ``image`` float32 [3, H, W] in [0, 1] (RGB), ``target`` a dict

* ``boxes`` float32 [N, 4] xyxy pixels, clipped to the image; ``labels`` int64 [N] in 1..K,
  contiguous over the sorted COCO category ids (``cat_ids[label - 1]`` maps back), or, given
  ``classes`` (a model's ``[{"id", "name"}]`` in label order), the position in that list + 1;
* ``masks`` uint8 [N, H, W] when ``with_masks`` (polygons, uncompressed and compressed RLE);
* ``image_id`` int64 scalar (the COCO id), ``area`` float32 [N], ``iscrowd`` int64 [N].

As torchvision's detection references: crowd annotations are dropped from training targets (unless
``keep_crowd``); images without annotations give empty targets, or are skipped with ``remove_empty``.
Malformed input raises :class:`~dsic.data.errors.DatasetError` naming the file, the record and the
field.

One rule for boxes, in training and evaluation alike: a negative width or height is malformed (an
error); a box that is empty inside its image (zero width or height, or entirely outside) is removed
when the file is loaded, with one warning (counted in ``dropped_boxes``), so it is neither a
training target nor evaluation ground truth. A ``file_name`` may not leave the images folder
(absolute, or with ``..``). With ``verify_images`` (the default) every image header is checked when
the dataset is loaded (exists, not empty, readable, the annotated size, a mode that converts to
RGB; no full decode): every bad file is named in one error before any training starts. Pixels are
read as stored, without applying an EXIF orientation, as torchvision's references and pycocotools
do; an image whose orientation tag would turn it to the annotated size gets that said in its error.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from .. import DsicWarning
from ..messages import id_list
from .errors import DatasetError
from .pixels import mode_problem, to_rgb


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def load_coco_json(ann_file: str | Path) -> dict:
    """Read and validate a COCO JSON file; errors name the file, the record id and the field."""
    path = Path(ann_file)
    if not path.is_file():
        raise DatasetError(f"annotation file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}: malformed JSON at line {err.lineno} column {err.colno} "
                           f"(char {err.pos}): {err.msg}") from err
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not UTF-8 text (byte {err.start}): {err.reason}") from err
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object with images/annotations/categories")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: missing or non-list field '{key}'")
    if not isinstance(data.setdefault("annotations", []), list):
        raise DatasetError(f"{path}: field 'annotations' must be a list")
    image_ids = set()
    for img in data["images"]:
        if not isinstance(img, dict):
            raise DatasetError(f"{path}: an entry of 'images' is not an object: {img!r}")
        for field in ("id", "file_name", "width", "height"):
            if field not in img:
                raise DatasetError(f"{path}: image {img.get('id', '?')} has no field '{field}'")
        iid = img["id"]
        if not is_int(iid) or iid in image_ids:
            raise DatasetError(f"{path}: image field 'id' = {iid!r} is not an integer or is duplicated")
        image_ids.add(iid)
        if not isinstance(img["file_name"], str) or not img["file_name"]:
            raise DatasetError(f"{path}: image {iid} field 'file_name' must be a non-empty string")
        if leaves_folder(img["file_name"]):
            raise DatasetError(f"{path}: image {iid} field 'file_name' = {img['file_name']!r} leaves the images "
                               f"folder (an absolute path or '..'); it must be relative to the images folder")
        for field in ("width", "height"):
            if not is_int(img[field]) or img[field] <= 0:
                raise DatasetError(f"{path}: image {iid} field '{field}' = {img[field]!r} is not a positive integer")
    cat_ids = set()
    for cat in data["categories"]:
        if not isinstance(cat, dict) or "id" not in cat:
            raise DatasetError(f"{path}: a category has no field 'id': {cat!r}")
        if not is_int(cat["id"]) or cat["id"] in cat_ids:
            raise DatasetError(f"{path}: category field 'id' = {cat['id']!r} is not an integer or is duplicated")
        cat_ids.add(cat["id"])
    ann_ids = set()
    for ann in data["annotations"]:
        if not isinstance(ann, dict):
            raise DatasetError(f"{path}: an entry of 'annotations' is not an object: {ann!r}")
        aid = ann.get("id", "?")
        for field in ("id", "image_id", "category_id", "bbox"):
            if field not in ann:
                raise DatasetError(f"{path}: annotation {aid} has no field '{field}'")
        if not is_int(aid) or aid in ann_ids:
            raise DatasetError(f"{path}: annotation field 'id' = {aid!r} is not an integer or is duplicated")
        ann_ids.add(aid)
        bbox = ann["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(is_number(v) for v in bbox)):
            raise DatasetError(f"{path}: annotation {aid} field 'bbox' must be 4 numbers [x, y, w, h], got {bbox!r}")
        if bbox[2] < 0 or bbox[3] < 0:
            raise DatasetError(f"{path}: annotation {aid} field 'bbox' = {bbox!r} has a negative width or height "
                               f"(COCO boxes are [x, y, width, height])")
        if ann["category_id"] not in cat_ids:
            raise DatasetError(f"{path}: annotation {aid} field 'category_id' = {ann['category_id']!r} "
                               f"is not among the categories {sorted(cat_ids)}")
        if ann["image_id"] not in image_ids:
            raise DatasetError(f"{path}: annotation {aid} field 'image_id' = {ann['image_id']!r} names no image")
        if not is_int(ann.setdefault("iscrowd", 0)) or ann["iscrowd"] not in (0, 1):
            raise DatasetError(f"{path}: annotation {aid} field 'iscrowd' = {ann['iscrowd']!r} must be 0 or 1")
        if not is_number(ann.setdefault("area", float(bbox[2] * bbox[3]))):
            raise DatasetError(f"{path}: annotation {aid} field 'area' = {ann['area']!r} is not a number")
    return data


def leaves_folder(file_name: str) -> bool:
    """Whether ``file_name`` is absolute or climbs out of its folder with ``..`` (either slash)."""
    parts = PurePosixPath(file_name.replace("\\", "/")).parts
    return file_name.startswith(("/", "\\")) or bool(PureWindowsPath(file_name).drive) or ".." in parts


def drop_empty_boxes(data: dict, where) -> int:
    """Remove (in place) the annotations whose box is empty inside its image; one warning. Returns
    how many were removed."""
    sizes = {img["id"]: (img["width"], img["height"]) for img in data["images"]}
    kept, dropped = [], []
    for ann in data["annotations"]:
        x, y, w, h = ann["bbox"]
        width, height = sizes[ann["image_id"]]
        inside = min(x + w, width) - max(x, 0) > 0 and min(y + h, height) - max(y, 0) > 0
        (kept if inside else dropped).append(ann)
    if dropped:
        data["annotations"] = kept
        ids = ", ".join(str(a["id"]) for a in dropped[:10]) + (", ..." if len(dropped) > 10 else "")
        warnings.warn(f"{where}: dropped {len(dropped)} degenerate box(es) (empty inside their image) from "
                      f"training and evaluation alike: annotation(s) {ids}", DsicWarning, stacklevel=3)
    return len(dropped)


EXIF_ORIENTATION = 0x0112  # the EXIF tag; values 5-8 turn the image by 90 degrees


def image_problem(path: Path, width: int, height: int) -> str | None:
    """Why the image at ``path`` cannot be used as a ``width`` x ``height`` RGB image (header only)."""
    if not path.is_file():
        return "file not found"
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    try:
        with Image.open(path) as im:
            size, mode = im.size, im.mode
            # the EXIF block is read only for an image whose size is the annotated one turned by 90 degrees
            swapped = size != (width, height) and size == (height, width)
            turned = swapped and im.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as err:
        return f"not a readable image ({err})"
    if size != (width, height):
        hint = ("; its EXIF orientation turns it to the annotated size, but training reads pixels as stored "
                "(as torchvision and pycocotools do): save the images upright or annotate them as stored"
                if turned else "")
        return f"size {size[0]}x{size[1]} (WxH), the annotation file says {width}x{height}{hint}"
    return mode_problem(mode)


def verify_images(images_dir: Path, records: list[dict], ann_file) -> None:
    """Check every image header of ``records`` (COCO image entries); one error naming every bad file."""
    def check(rec):
        path = images_dir / rec["file_name"]
        problem = image_problem(path, rec["width"], rec["height"])
        return f"image {rec['id']} {path}: {problem}" if problem else None

    with ThreadPoolExecutor(max_workers=8) as pool:
        bad = [p for p in pool.map(check, records) if p]
    if bad:
        raise DatasetError(f"{ann_file}: {len(bad)} of {len(records)} image(s) in {images_dir} cannot be used "
                           f"(set data.verify_images: false to skip this check):\n  " + "\n  ".join(bad))


def coco_from_dict(data: dict) -> COCO:
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def rle_string_counts(counts: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string (6-bit chars from 48, 5 data bits each, bit 5 =
    more chunks follow, bit 4 of the last chunk = negative; runs from the 3rd on are deltas)."""
    runs = []
    value, shift = 0, 0
    for char in counts:
        code = ord(char) - 48
        if not 0 <= code < 64:
            raise ValueError(f"character {char!r} is not an RLE character")
        value |= (code & 0x1F) << shift
        shift += 5
        if code & 0x20:
            continue
        if code & 0x10:
            value -= 1 << shift
        runs.append(value + (runs[-2] if len(runs) > 2 else 0))
        value, shift = 0, 0
    if shift:
        raise ValueError("the counts string ends inside a number")
    return runs


def segmentation_problem(seg, height: int, width: int) -> str | None:
    """Why ``seg`` is not a valid polygon list or RLE for an image of ``height`` x ``width`` (or None)."""
    if isinstance(seg, list):
        if not seg:
            return "an empty polygon list"
        for poly in seg:
            if not (isinstance(poly, list) and len(poly) >= 6 and len(poly) % 2 == 0 and all(map(is_number, poly))):
                return f"a polygon must be an even number (>= 6) of coordinates x1, y1, x2, ..., got {poly!r}"
        return None
    if not isinstance(seg, dict) or "size" not in seg or "counts" not in seg:
        return "expected polygons (a list) or an RLE object with 'size' and 'counts'"
    if seg["size"] != [height, width]:
        return f"RLE 'size' {seg['size']!r} is not the image's [height, width] = {[height, width]}"
    counts = seg["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if isinstance(counts, str):
        try:
            counts = rle_string_counts(counts)
        except ValueError as err:
            return f"compressed RLE 'counts': {err}"
    elif not (isinstance(counts, list) and all(is_int(c) for c in counts)):
        return "RLE 'counts' must be a string (compressed) or a list of integers (uncompressed)"
    if any(c < 0 for c in counts) or sum(counts) != height * width:
        return f"RLE run lengths must be >= 0 and add up to height * width = {height * width}, got {sum(counts)}"
    return None


def ann_to_mask(ann: dict, height: int, width: int, where: str) -> np.ndarray:
    """The uint8 [height, width] mask of a polygon, uncompressed-RLE or compressed-RLE annotation."""
    seg = ann.get("segmentation")
    if seg is None:
        raise DatasetError(f"{where}: annotation {ann['id']} has no field 'segmentation' (needed for masks)")
    problem = segmentation_problem(seg, height, width)
    if problem:
        raise DatasetError(f"{where}: annotation {ann['id']} field 'segmentation' is malformed: {problem}")
    if isinstance(seg, list):  # polygons
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    elif isinstance(seg["counts"], list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(seg, height, width)
    else:  # compressed RLE
        rle = dict(seg, counts=seg["counts"].encode() if isinstance(seg["counts"], str) else seg["counts"])
    return mask_utils.decode(rle).astype(np.uint8)


def read_rgb(path: Path, image_id, expected: tuple[int, int] | None = None) -> torch.Tensor:
    if not path.is_file():
        raise DatasetError(f"image {image_id} file not found: {path}")
    try:
        with Image.open(path) as im:
            arr = np.asarray(to_rgb(im), dtype=np.uint8).copy()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as err:
        raise DatasetError(f"image {image_id} cannot be decoded: {path}: {err}") from err
    if expected is not None and arr.shape[:2] != expected:
        raise DatasetError(f"image {image_id} {path}: size {arr.shape[1]}x{arr.shape[0]} (WxH) differs from "
                           f"the annotation file's {expected[1]}x{expected[0]}")
    return torch.from_numpy(arr).permute(2, 0, 1).float().div_(255)


class CocoDetection(torch.utils.data.Dataset):
    def __init__(self, images_dir: str | Path, ann_file: str | Path, transforms=None, with_masks: bool = False,
                 remove_empty: bool = False, keep_crowd: bool = False, verify: bool = True,
                 classes: list[dict] | None = None):
        self.images_dir = Path(images_dir)
        self.ann_file = Path(ann_file)
        if not self.images_dir.is_dir():
            raise DatasetError(f"images folder not found: {self.images_dir}")
        data = load_coco_json(self.ann_file)
        dropped = drop_empty_boxes(data, self.ann_file)
        self.coco = coco_from_dict(data)
        own = sorted(self.coco.getCatIds())
        self.cat_ids = [c["id"] for c in classes] if classes is not None else own
        foreign = sorted(set(own) - set(self.cat_ids))
        if foreign:
            raise DatasetError(f"{self.ann_file}: category ids {id_list(foreign)} are not among the model's "
                               f"category ids {id_list(self.cat_ids)} (num_classes {len(self.cat_ids)})")
        self.class_names = ([c["name"] for c in classes] if classes is not None
                            else [self.coco.cats[c].get("name", str(c)) for c in self.cat_ids])
        self._label_of = {c: i + 1 for i, c in enumerate(self.cat_ids)}
        self._known = set(own)
        self.transforms = transforms
        self.with_masks = with_masks
        self.keep_crowd = keep_crowd
        self.dropped_boxes = dropped
        ids = sorted(self.coco.imgs)
        if remove_empty:
            ids = [i for i in ids if any(self._usable(a) for a in self.coco.imgToAnns.get(i, []))]
        self.ids = ids
        if verify:
            verify_images(self.images_dir, [self.coco.imgs[i] for i in ids], self.ann_file)

    def label_to_cat_id(self, label: int) -> int | None:
        """The COCO category id of a label 1..K (0 is the background and has none); None when the
        model's class is not a category of this file (e.g. COCO ids without objects)."""
        if not 1 <= int(label) <= len(self.cat_ids):
            raise ValueError(f"label {int(label)} is outside 1..{len(self.cat_ids)}: {self.ann_file} has "
                             f"{len(self.cat_ids)} categories (does the model's num_classes match?)")
        cat_id = self.cat_ids[int(label) - 1]
        return cat_id if cat_id in self._known else None

    def _usable(self, ann: dict) -> bool:
        """Whether ``ann`` gives a training box: not crowd (unless kept), non-empty inside the image."""
        info = self.coco.imgs[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        inside_w = min(x + w, info["width"]) - max(x, 0)
        inside_h = min(y + h, info["height"]) - max(y, 0)
        return (self.keep_crowd or not ann["iscrowd"]) and inside_w > 0 and inside_h > 0

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
                          f"(empty after clipping to {width}x{height})", DsicWarning, stacklevel=2)
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
