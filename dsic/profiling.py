"""Parameters, FLOPs and latency of necks and detectors (``dsic profile``).

* FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass in eval
  mode (one multiply-add = 2 FLOPs; ops it has no formula for, e.g. pooling and interpolation,
  count 0). GFLOPs = 1e9 FLOPs.
* Latency is the median wall time of ``repeats`` forward passes after ``warmup`` passes, in eval
  mode under ``torch.inference_mode``, one image of ``size`` x ``size``; on CUDA each pass is
  synchronised. The neck latency times the neck alone on precomputed backbone features. All
  candidates are timed round-robin, so that a slower moment of a shared machine hits them alike.
* R-CNNs are profiled with ``rpn_nms_thresh=1.0`` so that exactly ``rpn_post_nms_top_n_test``
  (1000) proposals reach the box head: with random weights the number surviving NMS would
  otherwise depend on the neck and swamp the neck's own cost.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from .models import build_detector


@dataclass
class Profile:
    arch: str
    backbone: str
    neck: str
    size: int
    neck_params_m: float
    detector_params_m: float
    neck_gflops: float
    detector_gflops: float
    neck_ms: float
    detector_ms: float

    def as_dict(self) -> dict:
        return asdict(self)


def count_flops(fn, *args) -> int:
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops()


def interleaved_median_ms(calls: list, warmup: int = 2, repeats: int = 10,
                          device: torch.device | None = None) -> list[float]:
    """Median ms of each ``(fn, args)`` in ``calls``, timed round-robin so that drifts of the
    machine's speed (other load, frequency scaling) hit every candidate alike."""
    sync = torch.cuda.synchronize if device is not None and device.type == "cuda" else (lambda: None)
    for fn, args in calls:
        for _ in range(warmup):
            fn(*args)
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for j, (fn, args) in enumerate(calls):
            sync()
            start = time.perf_counter()
            fn(*args)
            sync()
            times[j].append((time.perf_counter() - start) * 1000)
    return [statistics.median(t) for t in times]


def params_m(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


@torch.inference_mode()
def profile(arch: str = "faster_rcnn", backbone: str = "resnet50", necks: list[str] | str = ("fpn", "dsic"),
            size: int = 512, num_classes: int = 80, warmup: int = 2, repeats: int = 10, device: str = "cpu",
            neck_cfg: dict | None = None, model_cfg: dict | None = None) -> list[Profile]:
    """Profile one detector per neck (and the neck alone) on a ``size`` x ``size`` image.

    ``model_cfg`` (a config's ``model`` section) gives the other :func:`build_detector` arguments;
    its arch, backbone, neck, sizes and class count are replaced by this function's arguments.
    Latencies of all necks are measured interleaved (see :func:`interleaved_median_ms`).
    """
    necks = [necks] if isinstance(necks, str) else list(necks)
    dev = torch.device(device)
    fixed = {"rpn_nms_thresh": 1.0} if arch.endswith("rcnn") else {}
    image = [torch.rand(3, size, size, generator=torch.Generator().manual_seed(0)).to(dev)]
    models, blocks = [], []
    for neck in necks:
        torch.manual_seed(0)
        kwargs = dict(model_cfg or {})
        kwargs.update(arch=arch, backbone=backbone, neck=neck, num_classes=num_classes, min_size=size,
                      max_size=size, init_from=None, pretrained_backbone=None,
                      neck_cfg=neck_cfg if neck_cfg and neck != "fpn" else None,
                      detector_cfg={**kwargs.get("detector_cfg", {}), **fixed})
        model = build_detector(**kwargs).eval().to(dev)
        models.append(model)
        blocks.append(model.backbone.body(model.transform(image)[0].tensors))
    neck_ms = interleaved_median_ms([(m.backbone.neck, (b,)) for m, b in zip(models, blocks)], warmup, repeats, dev)
    det_ms = interleaved_median_ms([(m, (image,)) for m in models], warmup, repeats, dev)
    return [
        Profile(arch=arch, backbone=backbone, neck=neck, size=size,
                neck_params_m=params_m(m.backbone.neck), detector_params_m=params_m(m),
                neck_gflops=count_flops(m.backbone.neck, b) / 1e9, detector_gflops=count_flops(m, image) / 1e9,
                neck_ms=n_ms, detector_ms=d_ms)
        for neck, m, b, n_ms, d_ms in zip(necks, models, blocks, neck_ms, det_ms)
    ]


def format_table(rows: list[Profile], reference: str = "fpn") -> str:
    """Markdown table; ratios are relative to the ``reference`` neck's row when present."""
    ref = next((r for r in rows if r.neck == reference), None)
    head = ("| arch | backbone | neck | size | neck params (M) | params (M) | neck GFLOPs | GFLOPs "
            "| neck ms | detector ms | latency / " + reference + " |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        ratio = f"{r.detector_ms / ref.detector_ms:.2f}x" if ref else "-"
        lines.append(f"| {r.arch} | {r.backbone} | {r.neck} | {r.size} | {r.neck_params_m:.2f} | "
                     f"{r.detector_params_m:.2f} | {r.neck_gflops:.1f} | {r.detector_gflops:.1f} | "
                     f"{r.neck_ms:.1f} | {r.detector_ms:.1f} | {ratio} |")
    return "\n".join(lines)
