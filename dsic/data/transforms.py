"""Detection augmentation on torchvision.transforms.v2 (boxes and masks follow the image).

Training: random horizontal flip and, when ``scales`` is given, multi-scale resizing (short side
drawn from ``scales``, long side capped at ``max_size``), as mmdetection's multi-scale training.
torchvision's detectors still resize every batch internally to ``min_size``/``max_size``; configure
those to match when using data-side multi-scale. Evaluation: no augmentation, optionally a fixed
resize (``eval_scale``; boxes then come out in the resized image's pixels). Randomness comes from
torch's global RNG, so a seeded run is reproducible.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


class RandomShortSideResize(torch.nn.Module):
    """Resize so the short side is a random choice of ``scales`` and the long side <= ``max_size``."""

    def __init__(self, scales, max_size: int):
        super().__init__()
        self.scales = list(scales)
        self.max_size = max_size

    def forward(self, *inputs):
        image = inputs[0] if len(inputs) > 1 else inputs[0][0]
        h, w = image.shape[-2:]
        pick = int(torch.randint(len(self.scales), ()).item()) if len(self.scales) > 1 else 0
        short = self.scales[pick]
        scale = min(short / min(h, w), self.max_size / max(h, w))
        size = [max(1, round(h * scale)), max(1, round(w * scale))]
        return v2.Resize(size, antialias=True)(*inputs)


class DetectionTransform:
    """Wrap tensors into tv_tensors, apply ``ops``, unwrap and drop boxes that became empty."""

    def __init__(self, ops: list):
        self.ops = v2.Compose(ops) if ops else None

    def __call__(self, image: torch.Tensor, target: dict):
        if self.ops is None:
            return image, target
        h, w = image.shape[-2:]
        wrapped = dict(target)
        wrapped["boxes"] = tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=(h, w))
        if "masks" in target:
            wrapped["masks"] = tv_tensors.Mask(target["masks"])
        image, wrapped = self.ops(tv_tensors.Image(image), wrapped)
        out = {k: (v.as_subclass(torch.Tensor) if isinstance(v, torch.Tensor) else v) for k, v in wrapped.items()}
        boxes = out["boxes"]
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        for key in ("boxes", "labels", "area", "iscrowd", "masks"):
            if key in out and not keep.all():
                out[key] = out[key][keep]
        return image.as_subclass(torch.Tensor), out


def build_transforms(train: bool, scales=None, max_size: int = 1333, hflip_prob: float = 0.5,
                     eval_scale: int | None = None):
    """The dataset transforms: for training a horizontal flip (``hflip_prob``) and, with ``scales``,
    a resize to a random short side from ``scales`` (long side <= ``max_size``); for evaluation
    nothing, or with ``eval_scale`` a resize to that short side (long side <= ``max_size``)."""
    ops = []
    if train and hflip_prob > 0:
        ops.append(v2.RandomHorizontalFlip(hflip_prob))
    if train and scales:
        ops.append(RandomShortSideResize(scales, max_size))
    if not train and eval_scale:
        ops.append(RandomShortSideResize([eval_scale], max_size))
    return DetectionTransform(ops)

