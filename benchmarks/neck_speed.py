"""DSIC before and after a code change, and FPN, timed round-robin in one process.

    python benchmarks/neck_speed.py [--before a25c281] [--repeats 7] [--cpu-time | --clock process]
                                    [--train] [--out benchmarks/results/precision/x.json]

Builds Faster R-CNN R50 (random weights, 512x512, 1000 proposals shared by all detectors, see
dsic/profiling.py) with FPN and with DSIC, and the DSIC detector of the whole ``dsic`` package at git
revision ``--before`` (``git archive``, imported as ``dsic_<rev>``; same weights). Prints the largest output
difference of the two DSIC necks and the median ms of the neck alone and of the detector, with ratios to
FPN, as JSON. One torch thread. ``--train`` adds a training step of each: the neck alone (forward,
backward of the mean square of its outputs, with gradients for its input features) and the detector
(its losses on fixed random boxes, backward, an SGD step with learning rate 0 so that the weights stay
equal), and the median minor page faults per call of each figure (``getrusage``: they do not depend
on the machine's load). ``--out`` also writes the record (command, commit, machine, load average).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch

from dsic.host import machine
from dsic.models import build_detector
from dsic.profiling import SharedProposals, interleaved_median_ms, synthetic_targets


def package_at(rev: str):
    """The ``dsic`` package at git revision ``rev``, imported as ``dsic_<rev>`` (its imports are relative)."""
    folder = Path(tempfile.mkdtemp())
    archive = subprocess.run(["git", "archive", rev, "dsic"], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    name = f"dsic_{rev}"
    (folder / "dsic").rename(folder / name)
    sys.path.insert(0, str(folder))
    importlib.import_module(f"{name}.models")
    return importlib.import_module(name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="a25c281")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--cpu-time", action="store_true", help="the calling thread's CPU time (--clock thread)")
    parser.add_argument("--clock", choices=("wall", "thread", "process"), default=None)
    parser.add_argument("--train", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    clock_name = args.clock or ("thread" if args.cpu_time else "wall")
    load_before = os.getloadavg()
    torch.set_num_threads(1)
    image = [torch.rand(3, args.size, args.size, generator=torch.Generator().manual_seed(0))]
    shared = SharedProposals()

    def detector(neck, neck_cfg=None, build=build_detector):
        torch.manual_seed(0)
        m = build("faster_rcnn", "resnet50", neck, num_classes=80, min_size=args.size, max_size=args.size,
                           pretrained_backbone=None, neck_cfg=neck_cfg, detector_cfg={"rpn_nms_thresh": 1.0}).eval()
        m.rpn.register_forward_hook(shared)
        return m

    fpn, now = detector("fpn"), detector("dsic")
    before = detector("dsic", build=package_at(args.before).models.build_detector)
    before.load_state_dict(now.state_dict())
    models = {"fpn": fpn, "dsic_before": before, "dsic_now": now}
    clock = {"wall": time.perf_counter, "thread": time.thread_time, "process": time.process_time}[clock_name]
    with torch.inference_mode():
        fpn(image)  # records the shared proposals
        feats = {k: m.backbone.body(m.transform(image)[0].tensors) for k, m in models.items()}
        a, b = before.backbone.neck(feats["dsic_before"]), now.backbone.neck(feats["dsic_now"])
        diff = max(((a[k] - b[k]).abs().max() / b[k].abs().max()).item() for k in a)
        neck = interleaved_median_ms([(m.backbone.neck, (feats[k],)) for k, m in models.items()], 1, args.repeats,
                                     clock=clock)
        det = interleaved_median_ms([(m, (image,)) for m in models.values()], 1, args.repeats, clock=clock)
    out = {"command": " ".join(["python", *sys.argv]), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True, capture_output=True,
                                    text=True).stdout.strip(),
           "before": args.before, "machine": machine(), "threads": torch.get_num_threads(), "size": args.size,
           "repeats": args.repeats, "max_rel_output_diff": diff, "clock": clock_name,
           "neck_ms": dict(zip(models, neck)), "detector_ms": dict(zip(models, det))}
    figures = ["neck_ms", "detector_ms"]
    if args.train:
        out.update(train_figures(models, feats, image, args, clock))
        figures += ["neck_train_ms", "detector_train_ms"]
    out["ratio_to_fpn"] = {f: {k: round(v / out[f]["fpn"], 3) for k, v in out[f].items()} for f in figures}
    out["load_average"] = {"start": [round(x, 2) for x in load_before], "end": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


def minor_faults(fn, *args) -> int:
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fn(*args)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start


def train_figures(models: dict, feats: dict, image: list, args, clock) -> dict:
    """Median ms and minor page faults of a training step of each neck alone and each detector."""
    images = [image[0]]
    targets = synthetic_targets(1, args.size, 80, "faster_rcnn")
    optimizers = {k: torch.optim.SGD(m.parameters(), lr=0.0, momentum=0.9, weight_decay=1e-4)
                  for k, m in models.items()}

    def leaves(x):  # normal tensors (feats are inference tensors) that take gradients, made once
        if isinstance(x, torch.Tensor):
            return x.clone().requires_grad_()
        return {k: leaves(v) for k, v in x.items()} if isinstance(x, dict) else [leaves(v) for v in x]

    def flat(x):
        if isinstance(x, torch.Tensor):
            return [x]
        return [t for v in (x.values() if isinstance(x, dict) else x) for t in flat(v)]

    inputs = {k: leaves(v) for k, v in feats.items()}

    def neck_step(name):
        neck = models[name].backbone.neck.train()
        neck.zero_grad(set_to_none=True)
        for x in flat(inputs[name]):
            x.grad = None
        sum(v.pow(2).mean() for v in neck(inputs[name]).values()).backward()

    def detector_step(name):
        model, optimizer = models[name].train(), optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        sum(model(images, targets).values()).backward()
        optimizer.step()

    neck = interleaved_median_ms([(neck_step, (k,)) for k in models], 1, args.repeats, clock=clock)
    faults = {k: statistics.median(minor_faults(neck_step, k) for _ in range(3)) for k in models}
    det = interleaved_median_ms([(detector_step, (k,)) for k in models], 1, args.repeats, clock=clock)
    det_faults = {k: statistics.median(minor_faults(detector_step, k) for _ in range(3)) for k in models}
    for m in models.values():
        m.eval()
    return {"neck_train_ms": dict(zip(models, neck)), "detector_train_ms": dict(zip(models, det)),
            "neck_train_minor_faults": faults, "detector_train_minor_faults": det_faults}


if __name__ == "__main__":
    sys.exit(main())
