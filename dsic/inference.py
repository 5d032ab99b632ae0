"""Run a trained detector on image files: ``dsic predict`` and ``dsic visualize``."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.functional import pil_to_tensor

from .models import gate_states
from .visualize import draw_detections, gate_figure, save

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def load_model(config: str | Path, checkpoint: str | Path, overrides: list[str] | None = None,
               device: str | None = None):
    """Build the config's detector, load ``checkpoint`` (a dsic checkpoint or a state dict)."""
    from .config import load_config
    from .engine.builders import build_model
    from .engine.checkpoint import load_checkpoint

    cfg = load_config(config, overrides or [])
    model = build_model(cfg)
    state = load_checkpoint(checkpoint)
    model.load_state_dict(state.get("model", state))
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return model.to(dev).eval(), cfg, dev


def class_names_of(cfg: dict) -> list[str] | None:
    """Class names from the config's val (or train) annotation file, when it is readable."""
    import json

    for split in ("val", "train"):
        ann = ((cfg.get("data") or {}).get(split) or {}).get("annotations")
        if ann and Path(ann).is_file():
            cats = sorted(json.loads(Path(ann).read_text())["categories"], key=lambda c: c["id"])
            return [c["name"] for c in cats]
    return None


def image_files(inputs: list[str | Path]) -> list[Path]:
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"image not found: {item}")
    if not files:
        raise FileNotFoundError(f"no images in {', '.join(map(str, inputs))}")
    return files


def read_image(path: Path) -> torch.Tensor:
    try:
        with Image.open(path) as im:
            return pil_to_tensor(im.convert("RGB")).float() / 255
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err


@torch.inference_mode()
def _run(config, checkpoint, images, out, score_thresh, overrides, with_states: bool,
         precision: str = "fp32") -> list[Path]:
    import matplotlib.pyplot as plt

    from .engine.precision import autocast

    model, cfg, dev = load_model(config, checkpoint, overrides)
    precision_ctx = autocast(dev, precision)  # checked for the device before any image is read
    names = class_names_of(cfg)
    written = []
    for path in image_files(images):
        image = read_image(path)
        with precision_ctx:
            det = {k: v.cpu() for k, v in model([image.to(dev)])[0].items()}
        if with_states:
            fig = gate_figure(image, det, gate_states(model), 0, names, score_thresh)
            written.append(save(fig, Path(out) / f"{path.stem}_gates.png"))
        else:
            fig, ax = plt.subplots(figsize=(image.shape[2] / 100, image.shape[1] / 100))
            draw_detections(ax, image, det, names, score_thresh)
            fig.subplots_adjust(0, 0, 1, 1)
            written.append(save(fig, Path(out) / f"{path.stem}_det.png"))
    return written


def predict_files(config, checkpoint, images, out, score_thresh=0.5, overrides=None, precision="fp32") -> list[Path]:
    """Draw detections on every image (the model run in ``precision``: fp32 | bf16 | fp16 on CUDA);
    returns the written PNG paths."""
    return _run(config, checkpoint, images, out, score_thresh, overrides, with_states=False, precision=precision)


def visualize_files(config, checkpoint, images, out, score_thresh=0.5, overrides=None) -> list[Path]:
    """Fig. 3 style figures (detections, CSG state matrix, ISG gates) for every image."""
    return _run(config, checkpoint, images, out, score_thresh, overrides, with_states=True)
