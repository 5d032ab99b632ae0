"""Parameters, FLOPs and latency of necks and detectors (``dsic profile``).

* FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass in eval
  mode (one multiply-add = 2 FLOPs; ops it has no formula for, e.g. pooling and interpolation,
  count 0). GFLOPs = 1e9 FLOPs.
* Latency is the median wall time of ``repeats`` forward passes after ``warmup`` passes, in eval
  mode under ``torch.inference_mode``, one image of ``size`` x ``size``; on CUDA each pass is
  synchronised. The neck latency times the neck alone on precomputed backbone features.
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


def median_ms(fn, *args, warmup: int = 2, repeats: int = 10, device: torch.device | None = None) -> float:
    sync = torch.cuda.synchronize if device is not None and device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn(*args)
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn(*args)
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def params_m(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


@torch.inference_mode()
def profile(arch: str = "faster_rcnn", backbone: str = "resnet50", neck: str = "dsic", size: int = 512,
            num_classes: int = 80, warmup: int = 2, repeats: int = 10, device: str = "cpu",
            neck_cfg: dict | None = None) -> Profile:
    """Profile one detector (and its neck) on a ``size`` x ``size`` image."""
    dev = torch.device(device)
    torch.manual_seed(0)
    fixed = {"rpn_nms_thresh": 1.0} if arch.endswith("rcnn") else {}
    model = build_detector(arch, backbone, neck, num_classes, min_size=size, max_size=size,
                           neck_cfg=neck_cfg, detector_cfg=fixed).eval().to(dev)
    image = [torch.rand(3, size, size, device=dev)]
    blocks = model.backbone.body(torch.rand(1, 3, size, size, device=dev))
    the_neck = model.backbone.neck
    return Profile(
        arch=arch, backbone=backbone, neck=neck, size=size,
        neck_params_m=params_m(the_neck), detector_params_m=params_m(model),
        neck_gflops=count_flops(the_neck, blocks) / 1e9, detector_gflops=count_flops(model, image) / 1e9,
        neck_ms=median_ms(the_neck, blocks, warmup=warmup, repeats=repeats, device=dev),
        detector_ms=median_ms(model, image, warmup=warmup, repeats=repeats, device=dev),
    )


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
