"""Parameters, FLOPs, latency, throughput and peak memory of necks and detectors (``dsic profile``).

* FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass in eval
  mode, fp32 (one multiply-add = 2 FLOPs; ops it has no formula for, e.g. pooling and
  interpolation, count 0). GFLOPs = 1e9 FLOPs.
* Latency (``neck_ms``, ``detector_ms``) is the median wall time of ``repeats`` forward passes after
  ``warmup`` passes, in eval mode under ``torch.inference_mode``, one image of ``size`` x ``size``;
  on CUDA each pass is synchronised. The neck latency times the neck alone on precomputed backbone
  features. Every (neck, precision) candidate is timed round-robin in one process, so that a
  slower moment of a shared machine hits them alike; ratios between rows are therefore more
  trustworthy than the absolute numbers on a loaded machine.
* Throughput (``batch`` > 0): images/s of an inference pass on ``batch`` images
  (``infer_img_s``) and of a training step (``train_img_s``: forward with targets, backward,
  SGD update with lr 0 so that every repeat does the same work; ``train_step_ms`` is its median),
  both round-robin like the latency.
* Peak memory (``memory``): the peak of tensor memory allocated during one inference pass on
  ``batch`` images (``infer_peak_mb``) and during one training step (``train_peak_mb``), above
  what was allocated before the pass, i.e. activations, gradients and temporaries, not the
  weights (their size is ``4 * params`` bytes in fp32). CUDA: ``torch.cuda.max_memory_allocated``;
  CPU: the allocation timeline of ``torch.profiler`` (``profile_memory=True``; its
  ``_memory_profile()`` replays every allocation and free of the pass in order).
* Precisions (``precisions``): each is run under :func:`dsic.engine.precision.autocast` (the
  detector's coordinates and scores in fp32, as ``dsic eval`` runs it). On a CPU without native
  bf16 kernels the bf16 rows are skipped with a one-line warning (``slow_bf16=True`` times them
  anyway): oneDNN's fallback is 10-200x slower than fp32, so their times say nothing about bf16.

The heads' work is held equal across necks: with random weights the proposals of an R-CNN depend
on the neck's output, and so would the RoI heads' cost. R-CNNs are therefore profiled with
``rpn_nms_thresh=1.0`` (the RPN always keeps ``rpn_post_nms_top_n`` boxes, its NMS suppresses
nothing) and ``fixed_proposals``: the RPN still runs, but a forward hook replaces its proposals
by those the *reference* neck's detector produced in fp32 on the same images (one set for eval,
one for training), so every detector's RoI heads process the same boxes. Single-stage detectors
(FCOS, RetinaNet) have no such hook; their dense heads' cost depends on the neck only through
post-processing (score threshold and NMS).
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from .engine.distributed import resolve_device
from .engine.precision import (
    PrecisionError,
    SlowPrecisionWarning,
    autocast,
    check_precision,
    cpu_model,
    machine,
    native_bf16_cpu,
)
from .models import build_detector

FIGURES = ("neck_ms", "detector_ms", "infer_img_s", "infer_peak_mb", "train_step_ms", "train_img_s",
           "train_peak_mb")


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
    precision: str = "fp32"
    batch: int | None = None
    infer_img_s: float | None = None
    infer_peak_mb: float | None = None
    train_step_ms: float | None = None
    train_img_s: float | None = None
    train_peak_mb: float | None = None
    #: figure -> this row / the reference neck's row of the same precision
    ratio: dict = field(default_factory=dict)
    #: figure -> this row / this neck's fp32 row (rows of other precisions)
    vs_fp32: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def count_flops(fn, *args) -> int:
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops()


def interleaved_median_ms(calls: list, warmup: int = 2, repeats: int = 10,
                          device: torch.device | None = None, clock=time.perf_counter) -> list[float]:
    """Median ms of each ``(fn, args)`` in ``calls``, timed round-robin so that drifts of the
    machine's speed (other load, frequency scaling) hit every candidate alike. ``clock``:
    ``time.perf_counter`` (wall time) or ``time.thread_time`` (CPU time of the calling thread: with
    one torch thread on a loaded CPU it leaves out the time other processes held the core)."""
    sync = torch.cuda.synchronize if device is not None and device.type == "cuda" else (lambda: None)
    for fn, args in calls:
        for _ in range(warmup):
            fn(*args)
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for j, (fn, args) in enumerate(calls):
            sync()
            start = clock()
            fn(*args)
            sync()
            times[j].append((clock() - start) * 1000)
    return [statistics.median(t) for t in times]


# a line of the C++ logs torch.profiler's backend (kineto) writes to the stderr descriptor, e.g.
# 'USDT:2026-12-07 13:08:11 8884:8884 SyncActivityProfilerHandler.cpp:39] profiler_start', or c10's
# '[W1207 15:27:27.963245182 CPUAllocator.cpp:245] Memory block of unknown size was allocated before ...'
_NATIVE_LOG = re.compile(r"^([A-Z]+:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \d+:\d+ |\[[IWE]\d{4} \d\d:\d\d:\d\d\.\d+ )"
                         r"\S+\.cpp:\d+\] ")


@contextlib.contextmanager
def native_logs_dropped():
    """While open, the stderr file descriptor goes to a temporary file; on exit the lines of C++
    logs (:data:`_NATIVE_LOG`) are dropped and every other line is written to stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode(errors="replace").splitlines(keepends=True)
                    if not _NATIVE_LOG.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def peak_memory_mb(fn, device: torch.device) -> float:
    """Peak tensor memory (MiB) allocated while ``fn()`` runs, above what was allocated before."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    from torch.profiler._memory_profiler import Action

    with native_logs_dropped(), torch_profile(activities=[ProfilerActivity.CPU], profile_memory=True,
                                              record_shapes=True, with_stack=True) as prof:
        fn()
    current = peak = 0
    live: set = set()  # created during fn: frees of older tensors do not lower the count
    for _, action, (key, _version), size in prof._memory_profile().timeline:
        if key.device.type != "cpu":
            continue
        if action == Action.CREATE:
            live.add(key)
            current += size
            peak = max(peak, current)
        elif action == Action.DESTROY and key in live:
            live.discard(key)
            current -= size
    return peak / 2**20


def params_m(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


class SharedProposals:
    """Forward hook for ``model.rpn``: the first call in a mode (train / eval) and batch size records
    the proposals; every later call, of any model, gets the recorded ones instead of its own."""

    def __init__(self):
        self.store: dict = {}

    def __call__(self, module, inputs, output):
        boxes, losses = output
        key = (module.training, len(boxes))
        if key not in self.store:
            self.store[key] = [b.detach().float().clone() for b in boxes]
        return [b.to(o.dtype) for b, o in zip(self.store[key], boxes)], losses


def synthetic_targets(batch: int, size: int, num_classes: int, arch: str, boxes_per_image: int = 4) -> list[dict]:
    """Fixed random boxes (and masks for Mask R-CNN) for the training-step figures."""
    g = torch.Generator().manual_seed(1)
    targets = []
    for _ in range(batch):
        xy = torch.rand(boxes_per_image, 2, generator=g) * size * 0.6
        wh = torch.rand(boxes_per_image, 2, generator=g) * size * 0.3 + size * 0.05
        t = {"boxes": torch.cat([xy, xy + wh], 1),
             "labels": torch.randint(1, num_classes + 1, (boxes_per_image,), generator=g)}
        if arch == "mask_rcnn":
            masks = torch.zeros(boxes_per_image, size, size, dtype=torch.uint8)
            for m, (x0, y0, x1, y1) in zip(masks, t["boxes"].round().long().tolist()):
                m[y0:y1, x0:x1] = 1
            t["masks"] = masks
        targets.append(t)
    return targets


def profile(arch: str = "faster_rcnn", backbone: str = "resnet50", necks: list[str] | str = ("fpn", "dsic"),
            size: int = 512, num_classes: int = 80, warmup: int = 2, repeats: int = 10, device: str = "cpu",
            neck_cfg: dict | None = None, model_cfg: dict | None = None, precisions=("fp32",),
            batch: int | None = None, train: bool = False, memory: bool = False, train_repeats: int | None = None,
            threads: int | None = None, fixed_proposals: bool = True, reference: str = "fpn",
            cpu_time: bool = False, slow_bf16: bool = False) -> list[Profile]:
    """Profile one detector per neck (and the neck alone) on a ``size`` x ``size`` image, in each of
    ``precisions`` (one row per neck and precision, necks varying fastest).

    ``model_cfg`` (a config's ``model`` section) gives the other :func:`build_detector` arguments;
    its arch, backbone, neck, sizes and class count are replaced by this function's arguments.
    ``batch`` (images per pass) enables the throughput figures, ``train`` the training-step figures
    (``train_repeats`` timed steps, default ``max(3, repeats // 3)``), ``memory`` the peak memory;
    ``threads`` sets ``torch.set_num_threads`` for the run. ``reference`` (or the first neck when it
    is not profiled) is the reference of the ratios and of ``fixed_proposals`` (see the module doc).
    ``cpu_time``: every ms figure is the calling thread's CPU time (``time.thread_time``) instead of
    wall time; meaningful with one torch thread, it leaves out the time other processes held the core.
    ``slow_bf16``: time bf16 on a CPU without native bf16 kernels too (skipped otherwise, see the module doc).
    """
    necks = [necks] if isinstance(necks, str) else list(necks)
    precisions = [precisions] if isinstance(precisions, str) else list(precisions)
    dev = resolve_device(device)
    for p in precisions:
        check_precision(p, dev, warn=slow_bf16)
    if "bf16" in precisions and dev.type == "cpu" and not slow_bf16 and not native_bf16_cpu():
        reason = (f"no native bf16 on this CPU ({cpu_model()}: no AVX512-BF16 / AMX), its bf16 kernels are "
                  "10-200x slower than fp32")
        precisions.remove("bf16")
        if not precisions:
            raise PrecisionError(f"bf16 not profiled: {reason}")
        warnings.warn(f"bf16 rows skipped: {reason}", SlowPrecisionWarning, stacklevel=2)
    if threads:
        torch.set_num_threads(threads)
    rcnn = arch.endswith("rcnn")
    fixed = {"rpn_nms_thresh": 1.0} if rcnn else {}
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, size, size, generator=g).to(dev) for _ in range(max(batch or 1, 1))]
    image = images[:1]
    targets = [{k: v.to(dev) for k, v in t.items()}
               for t in synthetic_targets(len(images), size, num_classes, arch)] if train else None
    shared = SharedProposals() if rcnn and fixed_proposals else None
    ref = necks.index(reference) if reference in necks else 0
    models, blocks, optimizers = [], {}, []
    for neck in necks:
        torch.manual_seed(0)
        kwargs = dict(model_cfg or {})
        kwargs.update(arch=arch, backbone=backbone, neck=neck, num_classes=num_classes, min_size=size,
                      max_size=size, init_from=None, pretrained_backbone=None,
                      neck_cfg=neck_cfg if neck_cfg and neck != "fpn" else None,
                      detector_cfg={**kwargs.get("detector_cfg", {}), **fixed})
        model = build_detector(**kwargs).eval().to(dev)
        if shared is not None:
            model.rpn.register_forward_hook(shared)
        models.append(model)
        for p in precisions:  # the backbone's output as the neck sees it inside the detector
            with torch.inference_mode(), autocast(dev, p, warn=False):
                blocks[p, len(models) - 1] = model.backbone.body(model.transform(image)[0].tensors)
        optimizers.append(torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0))
    if shared is not None:  # the reference neck's fp32 proposals, for eval and training
        with torch.inference_mode():
            models[ref](image)
            models[ref](images)
        if train:
            _train_step(models[ref], optimizers[ref], images, targets, dev, "fp32")
            models[ref].eval()

    def infer(model, imgs, precision):
        with torch.inference_mode(), autocast(dev, precision, warn=False, model=model):
            return model(imgs)

    def neck_only(model, b, precision):
        with torch.inference_mode(), autocast(dev, precision, warn=False):
            return model.backbone.neck(b)

    combos = [(p, j) for p in precisions for j in range(len(necks))]
    clock = time.thread_time if cpu_time else time.perf_counter
    neck_ms = interleaved_median_ms([(neck_only, (models[j], blocks[p, j], p)) for p, j in combos], warmup, repeats,
                                    dev, clock)
    det_ms = interleaved_median_ms([(infer, (models[j], image, p)) for p, j in combos], warmup, repeats, dev, clock)
    batch_ms = train_ms = None
    if batch:
        batch_ms = interleaved_median_ms([(infer, (models[j], images, p)) for p, j in combos], min(warmup, 1),
                                         max(3, repeats // 3), dev, clock)
    if train:
        train_ms = interleaved_median_ms(
            [(_train_step, (models[j], optimizers[j], images, targets, dev, p)) for p, j in combos],
            1, train_repeats or max(3, repeats // 3), dev, clock)
        for m in models:
            m.eval()
    flops = []
    with torch.inference_mode():
        for j, m in enumerate(models):
            flops.append((count_flops(m.backbone.neck, blocks[precisions[0], j]) / 1e9, count_flops(m, image) / 1e9))
    rows = []
    for c, (p, j) in enumerate(combos):
        m = models[j]
        row = Profile(arch=arch, backbone=backbone, neck=necks[j], size=size,
                      neck_params_m=params_m(m.backbone.neck), detector_params_m=params_m(m),
                      neck_gflops=flops[j][0], detector_gflops=flops[j][1], neck_ms=neck_ms[c],
                      detector_ms=det_ms[c], precision=p, batch=len(images) if (batch or train) else None)
        if batch_ms is not None:
            row.infer_img_s = len(images) * 1000 / batch_ms[c]
        if train_ms is not None:
            row.train_step_ms = train_ms[c]
            row.train_img_s = len(images) * 1000 / train_ms[c]
        if memory:
            row.infer_peak_mb = peak_memory_mb(lambda m=m, p=p: infer(m, images, p), dev)
            if train:
                optimizers[j].zero_grad(set_to_none=True)  # the step's gradients count, not the last step's
                row.train_peak_mb = peak_memory_mb(
                    lambda j=j, p=p: _train_step(models[j], optimizers[j], images, targets, dev, p), dev)
                m.eval()
        rows.append(row)
    add_ratios(rows, necks[ref])
    return rows


def run_conditions(argv: list[str] | None = None) -> dict:
    """What a profile's numbers depend on: command, time, code version, torch, threads, CPU, load."""
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True,
                                timeout=10, cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"command": " ".join(["dsic", *(argv or sys.argv)[1:]]),
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "commit": commit,
            "threads": torch.get_num_threads(), **machine(),
            "loadavg_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def _train_step(model, optimizer, images, targets, device, precision) -> None:
    model.train()
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, precision, warn=False, model=model):
        losses = model(images, targets)
    sum(losses.values()).backward()
    optimizer.step()


def add_ratios(rows: list[Profile], reference: str = "fpn") -> list[Profile]:
    """Fill each row's ``ratio`` (vs the ``reference`` neck, same precision) and ``vs_fp32``."""
    by_key = {(r.neck, r.precision): r for r in rows}
    for r in rows:
        for attr, other in (("ratio", by_key.get((reference, r.precision))), ("vs_fp32", by_key.get((r.neck, "fp32")))):
            if other is None or (attr == "vs_fp32" and r.precision == "fp32"):
                continue
            setattr(r, attr, {f: round(getattr(r, f) / getattr(other, f), 4) for f in FIGURES
                              if getattr(r, f) is not None and getattr(other, f)})
    return rows


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(rows: list[Profile], reference: str = "fpn") -> str:
    """Markdown table; ``x`` columns are ratios to the ``reference`` neck's row of the same precision."""
    add_ratios(rows, reference)
    head = ("| arch | backbone | neck | size | precision | neck params (M) | params (M) | neck GFLOPs | GFLOPs "
            "| neck ms | detector ms | latency / " + reference + " | infer img/s | infer peak MB "
            "| train step ms | train img/s | train peak MB |")
    lines = [head, "|" + "---|" * 17]
    def fig(r, name, spec):
        value = getattr(r, name)
        if value is None:
            return "-"
        ratio = r.ratio.get(name)
        return format(value, spec) + (f" ({ratio:.2f}x)" if ratio is not None and r.neck != reference else "")

    for r in rows:
        ratio = f"{r.ratio['detector_ms']:.2f}x" if "detector_ms" in r.ratio else "-"
        lines.append(f"| {r.arch} | {r.backbone} | {r.neck} | {r.size} | {r.precision} | {r.neck_params_m:.2f} | "
                     f"{r.detector_params_m:.2f} | {r.neck_gflops:.1f} | {r.detector_gflops:.1f} | "
                     f"{fig(r, 'neck_ms', '.1f')} | {r.detector_ms:.1f} | {ratio} | {fig(r, 'infer_img_s', '.2f')} | "
                     f"{fig(r, 'infer_peak_mb', '.0f')} | {fig(r, 'train_step_ms', '.0f')} | {fig(r, 'train_img_s', '.2f')} | "
                     f"{fig(r, 'train_peak_mb', '.0f')} |")
    return "\n".join(lines)
