"""``dsic export``: a trained detector as an ONNX file or a TorchScript program (see docs/export.md).

* ONNX: ``torch.onnx.export`` (the TorchScript-based exporter, ``dynamo=False``, opset 17) traced
  on one example image of ``size``; input ``image`` float32 [3, H, W] in [0, 1] (H and W
  dynamic), outputs ``boxes`` [N, 4] (xyxy pixels of the input), ``labels`` [N] int64,
  ``scores`` [N] (and ``masks`` [N, 1, H, W] for Mask R-CNN). Needs ``pip install -e '.[export]'``.
* TorchScript: ``torch.jit.script`` of the detector (the gated necks are traced inside it,
  see :meth:`dsic.necks.base.Neck.__prepare_scriptable__`); ``torch.jit.load(path)(images)``
  returns torchvision's ``(losses, detections)`` pair, as scripted torchvision detectors do.

The model runs in float32 on the CPU while exporting; labels are the model's labels 1..K
(``model.classes`` in the checkpoint's config names them).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

FORMATS = ("onnx", "torchscript")
SUFFIXES = {".onnx": "onnx", ".pt": "torchscript", ".pth": "torchscript", ".ts": "torchscript"}


def output_format(out: str | Path, fmt: str | None = None) -> str:
    """``fmt``, or the format ``out``'s suffix names when ``fmt`` is None; a suffix of the other
    format is refused (an ONNX file named ``.pt`` would pass for TorchScript)."""
    suffix = Path(out).suffix.lower()
    implied = SUFFIXES.get(suffix)
    if fmt is None and implied is None:
        raise ValueError(f"{out}: the suffix does not say the format; name the file .onnx or .pt, or give --format")
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt is not None and implied is not None and implied != fmt:
        raise ValueError(f"{out}: a {suffix} file would hold {implied}, but the format is {fmt}; "
                         f"name the file {'.onnx' if fmt == 'onnx' else '.pt'}")
    return fmt or implied


def output_names(arch: str) -> list[str]:
    return ["boxes", "labels", "scores"] + (["masks"] if arch == "mask_rcnn" else [])


def export_onnx(model: torch.nn.Module, path: str | Path, size: tuple[int, int] = (800, 800),
                arch: str = "faster_rcnn") -> Path:
    """Write ``model`` (eval mode, CPU) as ONNX, traced on a random image of ``size`` (H, W)."""
    try:
        import onnx  # noqa: F401 - torch.onnx needs it
    except ImportError as err:
        raise ImportError("ONNX export needs the onnx package: pip install -e '.[export]'") from err
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = torch.rand(3, *size, generator=torch.Generator().manual_seed(0))
    names = output_names(arch)
    dynamic = {"image": {1: "height", 2: "width"}} | {n: {0: "detections"} for n in names}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python values recorded as constants
        torch.onnx.export(model, ([image],), str(path), dynamo=False, opset_version=17, input_names=["image"],
                          output_names=names, dynamic_axes=dynamic, do_constant_folding=True)
    return path


def script_model(model: torch.nn.Module) -> torch.jit.ScriptModule:
    """``torch.jit.script`` of a copy of ``model``. Scripting ``model`` itself works too, but
    ``torch.jit.script`` puts the prepared forms (``__prepare_scriptable__``) into the module it is
    given: the backbone body becomes a ``ScriptableStaged`` and gated necks their traces, which
    changes its state-dict keys and stops its gate states."""
    import copy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.script(copy.deepcopy(model))


def export_torchscript(model: torch.nn.Module, path: str | Path) -> Path:
    """Write :func:`script_model` of ``model`` to ``path`` (load with ``torch.jit.load``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    script_model(model).save(str(path))
    return path


def export(checkpoint, out, fmt: str | None = None, config=None, overrides=None,
           size: tuple[int, int] = (800, 800)) -> Path:
    """Load ``checkpoint`` (its own config, or ``config``) and write it as ``fmt`` (None: the one
    ``out``'s suffix names, :func:`output_format`) to ``out``."""
    from .inference import load_trained

    fmt = output_format(out, fmt)
    if min(size) < 32:
        raise ValueError(f"the example size must be at least 32x32 pixels, got {size[0]}x{size[1]}")
    model, cfg, _ = load_trained(checkpoint, config, overrides, device="cpu")
    if fmt == "onnx":
        return export_onnx(model, out, size, cfg["model"]["arch"])
    return export_torchscript(model, out)
