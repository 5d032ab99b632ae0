"""A deterministic, embedded, COCO-format multi-scale detection dataset.

Made only from assets that ship with the dependencies:

* **objects**: 10 glyph classes (letters, a digit and symbols) drawn with matplotlib's bundled
  DejaVu Sans Bold font, in a random colour with a contrasting outline; the instance mask is the
  glyph's visible pixels (outline included), the box is tight around the mask;
* **backgrounds**: random crops of the real photos in matplotlib's ``sample_data``
  (``grace_hopper.jpg``, ``Minduka_Present_Blue_Pack.png``) or procedural textures (smoothed
  noise, gradients, stripes, checkers), chosen half and half.

**Scales.** Each object first draws its COCO size bucket (small: area < 32^2, medium: < 96^2,
large; probabilities 0.3 / 0.3 / 0.4), then sqrt(area) log-uniformly inside the bucket, within
6..220 px overall (the box at most 80 % of the image side). Plain log-uniform sizes over 6..220 px
would give only ~20 % large objects; stratifying keeps every bucket above a quarter (measured:
see ``README.txt`` of a generated set). Larger objects are placed first; a new object may cover at
most 20 % of an earlier one (and of itself); earlier masks lose the covered pixels.

**Presets** (``preset``): ``default`` is the set above (the protocol-v1 benchmark). ``hard`` (the
protocol-v2 benchmark, BENCHMARKS.md) is harder and more multi-scale: about half the objects small
(bucket weights 0.5 / 0.3 / 0.2), a wider scale range (4..250 px), up to 12 objects, and busier
backgrounds (every background gets 6..16 random distractor strokes, ellipses and boxes that are
not objects). Measured: the v1 set's FPN AP moved by 7 AP between two seeds, a harder set's by 0.5.

**Scenes** (preset ``scenes``, the protocol-v4 benchmark): ``hard`` with one more draw per image
before its objects, the image's *scene*: a third of the images are small-object scenes (bucket
weights 0.9 / 0.1 / 0, up to 12 objects), a third large-object scenes (0 / 0.2 / 0.8, up to 6) and a
third mixed (``hard``'s 0.5 / 0.3 / 0.2, up to 12). In ``default`` and ``hard`` every object draws
its bucket independently, so every image has the same expected scale composition and a neck has
nothing to gain from treating images differently; COCO's images do differ (a close-up of one
object, a crowd of small ones), and so do these. Scene proportions and weights are our choice.

**Probe groups** (``groups``, :func:`generate_probe`): images whose objects are all small
(sqrt(area) < 32 px), all large (>= 96 px), or mixed (small and large, no medium), on the preset's
backgrounds, for measuring whether a gated neck routes images of different scales differently
(``benchmarks/gate_stats.py``). Objects whose visible area falls out of the group after
occlusion are dropped from the group's annotations (the image keeps them drawn).

**Determinism.** Every image draws from ``numpy.random.default_rng((seed, split, index))``;
the same arguments give byte-identical JSON and images (JPEG by the same Pillow build).

Output: ``out/{train,val}/NNNNNN.jpg``, ``out/annotations/instances_{train,val}.json``
(compressed-RLE segmentations), ``out/README.txt`` with the parameters and statistics.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import cbook
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from pycocotools import mask as mask_utils

from .. import DsicWarning

CLASSES = [("A", "letter_a"), ("K", "letter_k"), ("R", "letter_r"), ("Z", "letter_z"), ("7", "digit_7"),
           ("\u2605", "star"), ("\u2660", "spade"), ("\u2665", "heart"), ("\u2663", "club"),
           ("\u2708", "plane")]
PHOTOS = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")
BUCKETS = ((6.0, 32.0), (32.0, 96.0), (96.0, 220.0))  # sqrt(area) ranges: COCO small, medium, large
BUCKET_WEIGHTS = (0.3, 0.3, 0.4)  # large objects are lost most often (no room, covered): draw more


@dataclass(frozen=True)
class Style:
    """How a split is drawn: sqrt(area) ranges per COCO bucket and their weights, objects per image
    (3..max_objects) and distractor shapes per background (clutter range)."""

    buckets: tuple = BUCKETS
    weights: tuple = BUCKET_WEIGHTS
    max_objects: int = 8
    clutter: tuple = (0, 0)
    scenes: tuple = ()  # ((probability, bucket weights, max_objects), ...): drawn per image; () = none


SCENES = ((1 / 3, (0.9, 0.1, 0.0), 12), (1 / 3, (0.0, 0.2, 0.8), 6), (1 / 3, (0.5, 0.3, 0.2), 12))


PRESETS = {
    "default": Style(),
    "hard": Style(buckets=((4.0, 32.0), (32.0, 96.0), (96.0, 250.0)), weights=(0.5, 0.3, 0.2), max_objects=12,
                  clutter=(6, 16)),
}
PRESETS["scenes"] = replace(PRESETS["hard"], scenes=SCENES)
README_HEAD = "dsic embedded multi-scale dataset"  # how the README.txt of a set generate() wrote begins


def written_by_synth(out: str | Path) -> bool:
    """Whether ``out`` holds a set :func:`generate` wrote (its README.txt begins with README_HEAD)."""
    readme = Path(out) / "README.txt"
    return readme.is_file() and readme.read_text(errors="replace").startswith(README_HEAD)


GROUPS = {  # probe groups: bucket weights and the sqrt(area) range an annotation must keep
    "small": ((1.0, 0.0, 0.0), ((0.0, 32.0),)),
    "large": ((0.0, 0.0, 1.0), ((96.0, math.inf),)),
    "mixed": ((0.5, 0.0, 0.5), ((0.0, 32.0), (96.0, math.inf))),
}


@cache
def glyph_mask(index: int) -> np.ndarray:
    """The glyph of class ``index`` rendered large, cropped to its ink, as a bool array."""
    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans-Bold.ttf"), 200)
    im = Image.new("L", (320, 320))
    ImageDraw.Draw(im).text((40, 20), CLASSES[index][0], fill=255, font=font)
    return np.array(im.crop(im.getbbox())) > 127


@cache
def photo(name: str) -> Image.Image:
    with Image.open(cbook.get_sample_data(name, asfileobj=False)) as im:
        return im.convert("RGB")


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    if rng.random() < 0.5:
        src = photo(PHOTOS[int(rng.integers(len(PHOTOS)))])
        side = int(rng.integers(min(src.size) // 3, min(src.size) + 1))
        x, y = int(rng.integers(0, src.width - side + 1)), int(rng.integers(0, src.height - side + 1))
        img = np.asarray(src.crop((x, y, x + side, y + side)).resize((size, size), Image.BILINEAR), np.float32)
        return np.clip(img * rng.uniform(0.7, 1.2) + rng.uniform(-20, 20, 3), 0, 255)
    kind = int(rng.integers(4))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if kind == 0:  # smoothed noise
        coarse = rng.random((8, 8, 3)).astype(np.float32) * 255
        img = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((size, size), Image.BICUBIC), np.float32)
        return np.clip(img + rng.normal(0, 8, (size, size, 3)), 0, 255)
    if kind == 1:  # linear gradient
        angle = rng.uniform(0, 2 * math.pi)
        t = (np.cos(angle) * xx + np.sin(angle) * yy)
        t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    elif kind == 2:  # stripes
        t = (np.sin((xx * np.cos(rng.uniform(0, 3)) + yy) * rng.uniform(10, 40)) > 0).astype(np.float32)
    else:  # checkers
        k = rng.uniform(4, 16)
        t = ((np.floor(xx * k) + np.floor(yy * k)) % 2).astype(np.float32)
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    return np.clip(img + rng.normal(0, 6, (size, size, 3)), 0, 255)


def add_clutter(rng: np.random.Generator, img: np.ndarray, count: int) -> np.ndarray:
    """Draw ``count`` distractors (strokes, ellipses, boxes; 4..60 % of the side) on ``img``."""
    if count <= 0:
        return img
    size = img.shape[0]
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(count):
        kind = int(rng.integers(3))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, y0 = (float(v) for v in rng.uniform(0, size, 2))
        w, h = (float(v) for v in size * rng.uniform(0.04, 0.6, 2))
        box = (x0, y0, x0 + w, y0 + h)
        if kind == 0:
            draw.line((x0, y0, x0 + w * rng.choice((-1, 1)), y0 + h), fill=colour, width=int(rng.integers(1, 5)))
        elif kind == 1:
            draw.ellipse(box, outline=colour, width=int(rng.integers(1, 4)))
        else:
            draw.rectangle(box, fill=colour if rng.random() < 0.5 else None, outline=colour)
    return np.asarray(canvas, np.float32)


def object_mask(rng: np.random.Generator, cls: int, image_size: int, style: Style = PRESETS["default"]) -> np.ndarray:
    """A scaled glyph mask whose area falls in a COCO bucket drawn with the style's weights."""
    base = glyph_mask(cls)
    fill = base.mean()
    aspect = base.shape[1] / base.shape[0] * rng.uniform(0.85, 1.15)
    lo, hi = style.buckets[int(rng.choice(3, p=style.weights))]
    side = math.exp(rng.uniform(math.log(lo), math.log(hi)))  # sqrt of the target area
    h = side / math.sqrt(fill * aspect)
    w = h * aspect
    limit = 0.8 * image_size
    if max(h, w) > limit:
        h, w = h * limit / max(h, w), w * limit / max(h, w)
    h, w = max(3, round(h)), max(3, round(w))
    scaled = Image.fromarray(base.astype(np.uint8) * 255).resize((w, h), Image.BILINEAR)
    return np.asarray(scaled) > 127


def compose(rng: np.random.Generator, image_size: int, max_objects: int, style: Style = PRESETS["default"]):
    """One image: (uint8 HxWx3, list of (class index, bool mask, visible fraction of the drawn
    object)). Larger objects are placed first, so that the small ones fill the space left and may
    cover a part of a large one."""
    img = background(rng, image_size)
    if style.clutter[1] > 0:
        img = add_clutter(rng, img, int(rng.integers(style.clutter[0], style.clutter[1] + 1)))
    if style.scenes:  # the image's scene sets its bucket weights and object count (no draw without scenes)
        _, weights, most = style.scenes[int(rng.choice(len(style.scenes), p=[p for p, _, _ in style.scenes]))]
        style, max_objects = replace(style, weights=weights), min(max_objects, most)
    drawn = [(cls, object_mask(rng, cls, image_size, style))
             for cls in rng.integers(len(CLASSES), size=int(rng.integers(3, max_objects + 1))).tolist()]
    drawn.sort(key=lambda item: -item[1].sum())
    objects: list[tuple[int, np.ndarray]] = []
    drawn_area: list[int] = []
    for cls, glyph in drawn:
        padded = np.pad(glyph, 1).astype(np.uint8) * 255
        local = np.asarray(Image.fromarray(padded).filter(ImageFilter.MaxFilter(3))) > 0  # glyph + outline
        gh, gw = local.shape
        if gh > image_size or gw > image_size:
            continue
        for _attempt in range(10):
            y, x = int(rng.integers(0, image_size - gh + 1)), int(rng.integers(0, image_size - gw + 1))
            outline = np.zeros((image_size, image_size), bool)
            outline[y:y + gh, x:x + gw] = local
            if all((outline & m).sum() <= 0.2 * min(m.sum(), outline.sum()) for _, m in objects):
                break
        else:
            continue
        full = np.zeros_like(outline)
        full[y + 1:y + gh - 1, x + 1:x + gw - 1] = glyph
        fill = rng.uniform(0, 255, 3)
        edge = 255 - fill if rng.random() < 0.5 else np.where(fill.mean() > 127, 0.0, 255.0).repeat(3)
        img[outline] = edge
        img[full] = fill
        objects = [(c, m & ~outline) for c, m in objects]
        objects.append((cls, outline))
        drawn_area.append(int(outline.sum()))
    kept = [(c, m, m.sum() / a) for (c, m), a in zip(objects, drawn_area) if m.sum() >= 4]
    return np.clip(img, 0, 255).astype(np.uint8), kept


def bucket(area: float) -> str:
    return "small" if area < 32**2 else "medium" if area < 96**2 else "large"


def make_split(out: Path, split: str, split_id: int, count: int, seed: int, image_size: int, max_objects: int,
               style: Style = PRESETS["default"], keep: tuple | None = None):
    """Write one split; ``keep`` ((lo, hi), ...): only objects with lo <= sqrt(area) < hi for one of
    the ranges are annotated."""
    (out / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    stats = {"images": count, "objects": 0, "small": 0, "medium": 0, "large": 0,
             "per_class": {name: 0 for _, name in CLASSES}, "min_visible_fraction": 1.0}
    for index in range(count):
        rng = np.random.default_rng((seed, split_id, index))
        img, objects = compose(rng, image_size, max_objects, style)
        image_id = index + 1
        file_name = f"{image_id:06d}.jpg"
        Image.fromarray(img).save(out / split / file_name, quality=92)
        images.append({"id": image_id, "file_name": file_name, "width": image_size, "height": image_size})
        for cls, mask, visible in objects:
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            area = float(mask_utils.area(rle))
            if keep is not None and not any(lo <= math.sqrt(area) < hi for lo, hi in keep):
                continue
            x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
            rle["counts"] = rle["counts"].decode("ascii")
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cls + 1,
                                "bbox": [x, y, w, h], "area": area, "iscrowd": 0, "segmentation": rle})
            stats["objects"] += 1
            stats[bucket(area)] += 1
            stats["per_class"][CLASSES[cls][1]] += 1
            stats["min_visible_fraction"] = min(stats["min_visible_fraction"], round(float(visible), 4))
    categories = [{"id": i + 1, "name": name, "supercategory": "glyph"} for i, (_, name) in enumerate(CLASSES)]
    data = {"info": {"description": f"dsic embedded multi-scale dataset ({split})", "version": "1"},
            "images": images, "annotations": annotations, "categories": categories}
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    for key in ("small", "medium", "large"):
        stats[f"{key}_fraction"] = stats[key] / max(stats["objects"], 1)
    stats["buckets_balanced"] = all(stats[f"{key}_fraction"] >= 0.25 for key in ("small", "medium", "large"))
    return stats


def generate(out_dir: str | Path, num_train: int = 500, num_val: int = 100, image_size: int = 320,
             seed: int = 0, max_objects: int | None = None, preset: str = "default") -> dict:
    """Write the dataset to ``out_dir`` and return its statistics.

    ``generate(out_dir, num_train=500, num_val=100, image_size=320, seed=0, max_objects=None,
    preset="default") -> dict``

    Args:
        out_dir: created if needed; existing files of the same names are overwritten.
        num_train / num_val: images per split (>= 0).
        image_size: side of the square images in pixels (>= 32; buckets balance from ~192 on, measured).
        seed: the whole dataset is a function of the arguments (byte-identical files).
        max_objects: objects per image are drawn from 3..max_objects (fewer when they do not fit);
            None: the preset's (8 for ``default``, 12 for ``hard``).
        preset: ``default``, ``hard`` or ``scenes`` (:data:`PRESETS`, see the module doc).

    Returns ``{"train": s, "val": s}`` with, per split, ``images``, ``objects``, ``small`` /
    ``medium`` / ``large`` counts and ``*_fraction``, ``buckets_balanced`` (every bucket >= 25 %),
    ``per_class`` counts by class name and ``min_visible_fraction`` (the least visible share of an
    object after the later ones were drawn over it). A warning is issued when a split of >= 200
    objects is not balanced.
    """
    style = _style(preset)
    max_objects = style.max_objects if max_objects is None else max_objects
    if num_train < 0 or num_val < 0 or image_size < 32 or max_objects < 3:
        raise ValueError(f"generate: need num_train, num_val >= 0, image_size >= 32 and max_objects >= 3, got "
                         f"{num_train}, {num_val}, {image_size} and {max_objects}")
    out = Path(out_dir)
    stats = {split: make_split(out, split, i, n, seed, image_size, max_objects, style)
             for i, (split, n) in enumerate((("train", num_train), ("val", num_val)))}
    for split, st in stats.items():
        if preset == "default" and st["objects"] >= 200 and not st["buckets_balanced"]:
            warnings.warn(f"synthetic {split} split: a COCO size bucket holds < 25 % of the objects "
                          f"({st['small_fraction']:.2f} / {st['medium_fraction']:.2f} / {st['large_fraction']:.2f} "
                          f"small / medium / large; image_size {image_size} may be too small)", DsicWarning, stacklevel=2)
    params = {"num_train": num_train, "num_val": num_val, "image_size": image_size, "seed": seed,
              "max_objects": max_objects}
    if preset != "default":  # the default set's README stays byte-identical to earlier versions
        params["preset"] = preset
    (out / "README.txt").write_text(
        f"{README_HEAD}, generated by `dsic data synth` (dsic.data.synth.generate).\n"
        f"parameters: {json.dumps(params)}\nstatistics: {json.dumps(stats, indent=2)}\n")
    return stats


def _style(preset: str) -> Style:
    if preset not in PRESETS:
        raise ValueError(f"unknown synth preset {preset!r}; expected one of {', '.join(PRESETS)}")
    return PRESETS[preset]


def generate_probe(out_dir: str | Path, count: int = 50, image_size: int = 320, seed: int = 0,
                   preset: str = "hard") -> dict:
    """Probe groups for gate analysis: ``out/probe_{small,large,mixed}/`` and
    ``out/annotations/instances_probe_{group}.json`` (``count`` images each; see the module doc).
    Returns per group the statistics of :func:`make_split`."""
    if count < 1 or image_size < 32:
        raise ValueError(f"generate_probe: need count >= 1 and image_size >= 32, got {count} and {image_size}")
    base = _style(preset)
    out = Path(out_dir)
    stats = {}
    for i, (group, (weights, keep)) in enumerate(GROUPS.items()):
        style = replace(base, weights=weights, max_objects=6 if group == "large" else base.max_objects, scenes=())
        stats[group] = make_split(out, f"probe_{group}", 10 + i, count, seed, image_size, style.max_objects,
                                  style, keep)
    return stats
