"""Small COCO files written by the tests themselves, and a tiny detector to analyse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, width: int, height: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)


def write_coco(root: Path, images: list[dict], annotations: list[dict], categories=None) -> tuple[Path, Path]:
    """Write images (random pixels, sized as the records say) and the JSON; returns (dir, json)."""
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    for i, rec in enumerate(images):
        write_image(img_dir / rec["file_name"], rec.get("width", 8), rec.get("height", 8), seed=i)
    categories = categories or [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]
    ann = root / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return img_dir, ann


def tiny_detector(neck: str = "dsic", neck_cfg: dict | None = None, seed: int = 0):
    """A resnet_tiny Faster R-CNN with ``neck`` at 64 px and 16 channels, its weights drawn from ``seed``."""
    import torch

    from dsic.models.builder import build_detector

    torch.manual_seed(seed)
    return build_detector("faster_rcnn", "resnet_tiny", neck, num_classes=3, min_size=64, max_size=64,
                          out_channels=16, neck_cfg=neck_cfg)
