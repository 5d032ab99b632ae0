"""Run a trained detector on image files: ``dsic predict`` and ``dsic visualize``.

The model is rebuilt from the checkpoint's own config (a config file is optional and wins when
given); its classes (``model.classes``, saved by training) give the category ids and names.
``dsic predict`` writes to ``out``:

* ``<name>_det.png`` per image, the detections with ``score >= score_thresh`` drawn;
* ``results.json``: COCO-format results ``[{"image_id", "category_id", "bbox": [x, y, w, h],
  "score"}]`` of every image (same threshold), and ``images.json``: ``{"images": [{"id",
  "file_name", "width", "height"}], "categories": [{"id", "name"}]}`` saying which file each
  ``image_id`` is (the two together load with pycocotools' ``COCO.loadRes``);
* with ``per_image_json``: ``<name>.json`` per image (``file_name``, ``width``, ``height`` and its
  ``detections`` with xyxy ``box``, ``category_id``, ``label``, ``name``, ``score``).

``<name>`` is the file's stem, or ``<stem>_<suffix>`` when two inputs share a stem (``a.jpg`` and
``a.png``), numbered on when still equal. Unreadable files are skipped with a warning and counted.

Images are read upright: an EXIF orientation tag (phone photos) is applied first, as detectron2's
``read_image`` and ultralytics do, so boxes, ``width`` and ``height`` are those of the image as
viewers show it. Training and evaluation datasets are read as stored, as torchvision's COCO
references and pycocotools do (:mod:`dsic.data.coco`).
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path

import torch

from .data.pixels import read_image
from .engine.loading import checkpoint_config, load_model, load_trained  # noqa: F401 - the public names
from .engine.reporting import Progress
from .models import gate_states
from .necks import GATED_NECKS
from .visualize import draw_detections, gate_figure, save

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def class_names_of(cfg: dict) -> list[str] | None:
    """Class names in label order: the config's ``model.classes`` (saved by training), else the
    categories of its val (or train) annotation file when that is readable."""
    classes = cfg["model"].get("classes")
    if isinstance(classes, list):
        return [c["name"] for c in classes]
    for split in ("val", "train"):
        ann = ((cfg.get("data") or {}).get(split) or {}).get("annotations")
        if ann and Path(ann).is_file():
            cats = sorted(json.loads(Path(ann).read_text())["categories"], key=lambda c: c["id"])
            return [c["name"] for c in cats]
    return None


def image_files(inputs: list[str | Path]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns (``'data/*.jpg'``), in order, once each."""
    files: list[Path] = []
    for item in map(str, inputs):
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files.append(path)
        elif glob.has_magic(item):
            matched = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not matched:
                raise FileNotFoundError(f"no file matches {item}")
            files += matched
        else:
            raise FileNotFoundError(f"image not found: {item}")
    files = list(dict.fromkeys(files))
    if not files:
        raise FileNotFoundError(f"no images in {', '.join(map(str, inputs))}")
    return files


def output_names(files: list[Path]) -> dict[Path, str]:
    """A distinct output name per file: the stem, ``stem_suffix`` for stems shared by several
    inputs, then ``_2``, ``_3`` ... for what is still shared (same name in different folders)."""
    stems: dict[str, int] = {}
    for f in files:
        stems[f.stem] = stems.get(f.stem, 0) + 1
    names, used = {}, set()
    for f in files:
        base = f.stem if stems[f.stem] == 1 else f"{f.stem}_{f.suffix.lstrip('.').lower()}"
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        names[f] = name
    return names




def _category(classes: list[dict] | None, label: int) -> tuple[int, str]:
    if classes and 1 <= label <= len(classes):
        return int(classes[label - 1]["id"]), str(classes[label - 1]["name"])
    return int(label), str(label)


def _records(det: dict, classes, score_thresh: float) -> list[dict]:
    keep = det["scores"] >= score_thresh
    out = []
    for box, label, score in zip(det["boxes"][keep].tolist(), det["labels"][keep].tolist(),
                                 det["scores"][keep].tolist()):
        cat_id, name = _category(classes, label)
        out.append({"box": [round(v, 2) for v in box], "category_id": cat_id, "label": label, "name": name,
                    "score": round(score, 5)})
    return out


def predict_images(checkpoint, images, out, score_thresh: float = 0.5, config=None, overrides=None,
                   device: str | None = None, per_image_json: bool = False, with_states: bool = False,
                   precision: str = "fp32") -> dict:
    """Run the detector on ``images`` (files, folders, globs) in ``precision`` (fp32 | bf16 | fp16 on
    CUDA) and write the outputs into ``out`` (see the module doc). Returns ``{"written": [paths],
    "skipped": [(file, reason)], "results": path}``."""
    import matplotlib.pyplot as plt

    from .engine.precision import autocast

    if not 0.0 <= score_thresh <= 1.0:
        raise ValueError(f"score_thresh = {score_thresh} is not a score: detector scores lie in [0, 1]")
    model, cfg, dev = load_trained(checkpoint, config, overrides, device)
    precision_ctx = autocast(dev, precision, model=model)  # checked for the device before any image is read
    neck = cfg["model"].get("neck")
    if with_states and neck not in GATED_NECKS:
        print(f"[dsic] warning: {checkpoint}: neck {neck!r} has no gates (only {', '.join(GATED_NECKS)} have them); "
              "the figures show the detections alone", file=sys.stderr, flush=True)
    classes = model.classes
    names = [c["name"] for c in classes] if classes else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = image_files(images)
    stem_of = output_names(files)
    written, skipped, results, image_recs = [], [], [], []
    progress = Progress(files, "images", "img")  # a bar on a terminal, plain lines in a redirected log
    for path in progress:
        try:
            image = read_image(path)
        except ValueError as err:
            progress.write(f"[dsic] warning: skipping {path}: {err.__cause__ or err}")
            skipped.append((str(path), str(err)))
            continue
        with torch.inference_mode(), precision_ctx:
            det = {k: v.cpu() for k, v in model([image.to(dev)])[0].items()}
        name = stem_of[path]
        if with_states:
            fig = gate_figure(image, det, gate_states(model), 0, names, score_thresh)
            written.append(save(fig, out / f"{name}_gates.png"))
            continue
        fig, ax = plt.subplots(figsize=(image.shape[2] / 100, image.shape[1] / 100))
        draw_detections(ax, image, det, names, score_thresh)
        fig.subplots_adjust(0, 0, 1, 1)
        written.append(save(fig, out / f"{name}_det.png"))
        image_id = len(image_recs) + 1
        height, width = image.shape[1:]
        image_recs.append({"id": image_id, "file_name": str(path), "width": width, "height": height})
        recs = _records(det, classes, score_thresh)
        for r in recs:
            x0, y0, x1, y1 = r["box"]
            results.append({"image_id": image_id, "category_id": r["category_id"],
                            "bbox": [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)], "score": r["score"]})
        if per_image_json:
            doc = {"file_name": str(path), "width": width, "height": height, "detections": recs}
            (out / f"{name}.json").write_text(json.dumps(doc, indent=1))
            written.append(out / f"{name}.json")
    report = {"written": written, "skipped": skipped, "results": None}
    if not with_states and image_recs:
        categories = ([{"id": c["id"], "name": c["name"]} for c in classes] if classes
                      else [{"id": i, "name": str(i)} for i in range(1, cfg["model"]["num_classes"] + 1)])
        (out / "images.json").write_text(json.dumps({"images": image_recs, "categories": categories}, indent=1))
        report["results"] = out / "results.json"
        report["results"].write_text(json.dumps(results))
    if skipped:
        print(f"[dsic] skipped {len(skipped)} of {len(files)} file(s) that could not be read", file=sys.stderr,
              flush=True)
    if len(skipped) == len(files):
        raise ValueError(f"no image could be read: {skipped[0][1]}" if len(files) == 1
                         else f"none of the {len(files)} files could be read as an image")
    return report


def predict_files(config, checkpoint, images, out, score_thresh=0.5, overrides=None, device=None,
                  precision="fp32") -> list[Path]:
    """Draw detections on every image (the model run in ``precision``: fp32 | bf16 | fp16 on CUDA);
    returns the written PNG paths (see :func:`predict_images`)."""
    return predict_images(checkpoint, images, out, score_thresh, config, overrides, device,
                          precision=precision)["written"]


def visualize_files(config, checkpoint, images, out, score_thresh=0.5, overrides=None, device=None) -> list[Path]:
    """Fig. 3 style figures (detections, CSG state matrix, ISG gates) for every image."""
    return predict_images(checkpoint, images, out, score_thresh, config, overrides, device,
                          with_states=True)["written"]
