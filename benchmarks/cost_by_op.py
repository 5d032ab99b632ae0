"""Where DSIC's extra time over FPN goes, by operator: torch.profiler of both detectors in one process.

    python benchmarks/cost_by_op.py [--size 512] [--repeats 2] [--threads 1] [--neck dsic] [--out JSON]

Faster R-CNN R50 (random weights, ``--size`` px, the RoI heads given the same proposals through
dsic.profiling.SharedProposals), fp32. For an inference pass and for a training step (forward with
synthetic targets, backward, SGD with lr 0) of FPN and of ``--neck``, the self CPU time of every
aten operator summed over ``--repeats`` profiled passes (after one unprofiled warm-up), per pass.
Prints a markdown table of the operators whose difference is largest, writes everything as JSON.
Self times add up to the pass; on a loaded machine each op's time is inflated alike, so read the
shares, not the ms.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch.profiler import ProfilerActivity, profile

from dsic.engine.precision import machine
from dsic.models import build_detector
from dsic.profiling import SharedProposals, _train_step, native_logs_dropped, synthetic_targets


def op_ms(fn, repeats: int) -> dict[str, float]:
    """Self CPU ms per pass of each operator of ``fn()``."""
    fn()
    with native_logs_dropped(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            fn()
    return {e.key: e.self_cpu_time_total / 1000 / repeats for e in prof.key_averages()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--neck", default="dsic")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    shared = SharedProposals()
    image = [torch.rand(3, args.size, args.size, generator=torch.Generator().manual_seed(0))]
    targets = synthetic_targets(1, args.size, 80, "faster_rcnn")
    result = {"command": " ".join(["python", *sys.argv]), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "threads": args.threads, "machine": machine(), "loadavg_1_5_15": list(__import__("os").getloadavg()),
              "passes": {}}
    models = {}
    for neck in ("fpn", args.neck):
        torch.manual_seed(0)
        model = build_detector(arch="faster_rcnn", backbone="resnet50", neck=neck, num_classes=80, min_size=args.size,
                               max_size=args.size, pretrained_backbone=None,
                               detector_cfg={"rpn_nms_thresh": 1.0}).eval()
        model.rpn.register_forward_hook(shared)
        models[neck] = (model, torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0))

    def infer(model):
        with torch.inference_mode():
            model.eval()(image)

    for kind in ("inference", "train_step"):
        per_neck = {}
        for neck, (model, opt) in models.items():
            fn = (lambda m=model: infer(m)) if kind == "inference" else \
                (lambda m=model, o=opt: _train_step(m, o, image, targets, torch.device("cpu"), "fp32"))
            per_neck[neck] = op_ms(fn, args.repeats)
        result["passes"][kind] = per_neck
        base, other = per_neck["fpn"], per_neck[args.neck]
        total_b, total_o = sum(base.values()), sum(other.values())
        diff = sorted(((o, other.get(o, 0.0) - base.get(o, 0.0)) for o in set(base) | set(other)),
                      key=lambda t: -abs(t[1]))
        print(f"\n{kind}: fpn {total_b:.0f} ms, {args.neck} {total_o:.0f} ms per pass ({total_o / total_b:.2f}x); "
              f"the difference {total_o - total_b:.0f} ms by operator:\n")
        print(f"| op | fpn ms | {args.neck} ms | difference ms | share of the difference |\n|---|---|---|---|---|")
        for op, d in diff[:args.top]:
            print(f"| {op} | {base.get(op, 0):.1f} | {other.get(op, 0):.1f} | {d:+.1f} | "
                  f"{100 * d / (total_o - total_b):.0f} % |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
