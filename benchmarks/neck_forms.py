"""Each fused form of the DSIC neck on and off, timed as paired rounds of a neck training step.

    OMP_NUM_THREADS=1 python benchmarks/neck_forms.py [--before a25c281] [--repeats 15] [--size 512] [--out x.json]

R50 block outputs of one random 512x512 image (random weights); the ``dsic`` neck's training step
(forward, backward of the mean square of its outputs, gradients for its input features) with: the
whole package at ``--before``; today's code; today's code with one fused form replaced by its plain
operators (``gated_sum``: dsic.ops.gated_sum; ``global_pool``: dsic.ops.gate.global_pool). Each round
runs every variant once, in an order that rotates (process CPU time, one thread); the record gives the median ms of each and
the median and quartiles over rounds of each variant's difference to today's code (paired, so that
drifts of the machine's speed cancel), every round's figures, and minor page faults.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch

import dsic.necks.csg as csg_module
import dsic.necks.isg as isg_module
from dsic.host import machine
from dsic.models import build_detector
from dsic.ops.gate import plain_global_pool
from dsic.ops.gated_sum import plain_gated_sum

sys.path.insert(0, str(ROOT / "benchmarks"))
from neck_speed import package_at

PLAIN = {"gated_sum": [(csg_module, "gated_sum", plain_gated_sum)],
         "global_pool": [(csg_module, "global_pool", plain_global_pool), (isg_module, "global_pool", plain_global_pool)]}


@contextlib.contextmanager
def plain(form: str | None):
    saved = [(m, name, getattr(m, name)) for m, name, _ in PLAIN.get(form, [])]
    for m, name, f in PLAIN.get(form, []):
        setattr(m, name, f)
    try:
        yield
    finally:
        for m, name, f in saved:
            setattr(m, name, f)


def grad_leaves(x):
    if isinstance(x, torch.Tensor):
        return x.clone().requires_grad_()
    return {k: grad_leaves(v) for k, v in x.items()} if isinstance(x, dict) else [grad_leaves(v) for v in x]


def flat(x) -> list:
    if isinstance(x, torch.Tensor):
        return [x]
    return [t for v in (x.values() if isinstance(x, dict) else x) for t in flat(v)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="a25c281")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    image = [torch.rand(3, args.size, args.size, generator=torch.Generator().manual_seed(0))]

    def detector(build, neck="dsic"):
        torch.manual_seed(0)
        return build("faster_rcnn", "resnet50", neck, num_classes=80, min_size=args.size, max_size=args.size,
                     pretrained_backbone=None).eval()

    now = detector(build_detector)
    before = detector(package_at(args.before).models.build_detector)
    before.load_state_dict(now.state_dict())
    fpn = detector(build_detector, "fpn")
    with torch.no_grad():
        blocks = now.backbone.body(now.transform(image)[0].tensors)
        fpn_feats = fpn.backbone.body(fpn.transform(image)[0].tensors)
    leaves, fpn_leaves = grad_leaves(blocks), grad_leaves(fpn_feats)

    def step(neck, inputs, form=None):
        neck.train().zero_grad(set_to_none=True)
        for x in flat(inputs):
            x.grad = None
        with plain(form):
            sum(v.pow(2).mean() for v in neck(inputs).values()).backward()

    variants = {"fpn": (fpn.backbone.neck, fpn_leaves, None), "before": (before.backbone.neck, leaves, None),
                "now": (now.backbone.neck, leaves, None), "now_plain_gated_sum": (now.backbone.neck, leaves, "gated_sum"),
                "now_plain_global_pool": (now.backbone.neck, leaves, "global_pool")}
    times = {k: [] for k in variants}
    faults = {k: [] for k in variants}
    for v in variants.values():
        step(*v)
    names = list(variants)
    for r in range(args.repeats):
        for k in names[r % len(names):] + names[: r % len(names)]:  # the order rotates: no variant always follows another
            v = variants[k]
            f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
            step(*v)
            times[k].append((time.process_time() - t0) * 1000)
            faults[k].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    out = {"command": " ".join(["python", *sys.argv]), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True, capture_output=True,
                                    text=True).stdout.strip(),
           "before": args.before, "machine": machine(), "threads": torch.get_num_threads(), "size": args.size,
           "repeats": args.repeats, "clock": "process", "figure": "neck training step (forward + backward)",
           "median_ms": {k: round(statistics.median(t), 1) for k, t in times.items()},
           "paired_median_diff_to_now_ms": {k: round(statistics.median(a - b for a, b in zip(t, times["now"])), 1)
                                            for k, t in times.items()},
           "paired_diff_quartiles_ms": {k: [round(q, 1) for q in statistics.quantiles(
               [a - b for a, b in zip(t, times["now"])], n=4)] for k, t in times.items()},
           "rounds_ms": {k: [round(x, 1) for x in t] for k, t in times.items()},
           "median_minor_faults": {k: statistics.median(f) for k, f in faults.items()},
           "load_average": {"start": [round(x, 2) for x in load_before], "end": [round(x, 2) for x in os.getloadavg()]}}
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
