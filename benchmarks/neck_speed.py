"""DSIC's CSG before and after a code change, and FPN, timed round-robin in one process.

    python benchmarks/neck_speed.py [--before 0fd4ffe] [--repeats 7] [--cpu-time]

Builds Faster R-CNN R50 (random weights, 512x512, 1000 proposals shared by all detectors, see
dsic/profiling.py) with FPN and with DSIC, and a copy of the DSIC detector whose CSG is the class
from ``dsic/necks/csg.py`` at git revision ``--before`` (same weights). Prints the largest output
difference of the two CSGs and the median ms of the neck alone and of the detector, with ratios to
FPN, as JSON. One torch thread.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import inspect
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch

from dsic.models import build_detector
from dsic.profiling import SharedProposals, interleaved_median_ms


def csg_at(rev: str):
    """The ``CSG`` class of dsic/necks/csg.py at git revision ``rev`` (absolute imports)."""
    text = subprocess.run(["git", "show", f"{rev}:dsic/necks/csg.py"], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout
    for rel, absolute in (("from ..", "from dsic."), ("from .", "from dsic.necks.")):
        text = text.replace(rel, absolute)
    path = Path(tempfile.mkdtemp()) / f"csg_{rev}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CSG


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="0fd4ffe")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--cpu-time", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    image = [torch.rand(3, args.size, args.size, generator=torch.Generator().manual_seed(0))]
    shared = SharedProposals()

    def detector(neck, neck_cfg=None):
        torch.manual_seed(0)
        m = build_detector("faster_rcnn", "resnet50", neck, num_classes=80, min_size=args.size, max_size=args.size,
                           pretrained_backbone=None, neck_cfg=neck_cfg, detector_cfg={"rpn_nms_thresh": 1.0}).eval()
        m.rpn.register_forward_hook(shared)
        return m

    fpn, now = detector("fpn"), detector("dsic")
    before = copy.deepcopy(now)
    new_csg = now.backbone.neck.csg
    old_class = csg_at(args.before)
    # control_norm none (the revisions that had the option): the descriptors of today's CSG
    old_options = {"control_norm": "none"} if "control_norm" in inspect.signature(old_class).parameters else {}
    old_csg = old_class(before.backbone.neck.in_channels, new_csg.paths.lateral[0].out_channels, **old_options)
    old_csg.load_state_dict(new_csg.state_dict())
    before.backbone.neck.csg = old_csg.eval()
    models = {"fpn": fpn, "dsic_before": before, "dsic_now": now}
    clock = time.thread_time if args.cpu_time else time.perf_counter
    with torch.inference_mode():
        fpn(image)  # records the shared proposals
        feats = {k: m.backbone.body(m.transform(image)[0].tensors) for k, m in models.items()}
        a, b = before.backbone.neck(feats["dsic_before"]), now.backbone.neck(feats["dsic_now"])
        diff = max(((a[k] - b[k]).abs().max() / b[k].abs().max()).item() for k in a)
        neck = interleaved_median_ms([(m.backbone.neck, (feats[k],)) for k, m in models.items()], 1, args.repeats,
                                     clock=clock)
        det = interleaved_median_ms([(m, (image,)) for m in models.values()], 1, args.repeats, clock=clock)
    out = {"command": " ".join(["python", *sys.argv]), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "max_rel_output_diff": diff, "clock": "thread_time" if args.cpu_time else "wall",
           "neck_ms": dict(zip(models, neck)), "detector_ms": dict(zip(models, det))}
    out["ratio_to_fpn"] = {f: {k: round(v / out[f]["fpn"], 3) for k, v in out[f].items()} for f in ("neck_ms", "detector_ms")}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
