"""Is the AP a routed DSIC loses paid at inference? Evaluate a run as trained and with its path
logits frozen at their bias (:mod:`routing.static_routing`).

    OMP_NUM_THREADS=1 python projects/routing/static_routing.py runs/v7/dsic_pathstats_pathlr1_gatelr01_seed0 \
        --out benchmarks/results/v7/static_routing/dsic_pathstats_pathlr1_gatelr01_seed0.json

Loads ``<run>/config.yaml`` and ``<run>/final.pth`` on the CPU and evaluates both on the config's
validation split (fp32, the config's evaluator, as training's last evaluation); prints (and with
``--out`` writes) the two metric sets (percent), their AP difference, and run, commit, threads and
wall time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from probe_analysis import write_stamped  # also puts the repository on sys.path

from dsic.engine.builders import make_eval_loader
from dsic.engine.distributed import init_distributed
from dsic.engine.evaluate import evaluate
from dsic.inference import load_trained
from dsic.results import percent_metrics
from routing.static_routing import freeze_path_logits


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run folder (config.yaml, final.pth)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    start = time.time()
    model, cfg, _ = load_trained(args.run / "final.pth", args.run / "config.yaml", device="cpu", split="val")
    info = init_distributed("cpu")
    loader = make_eval_loader(cfg, info)
    ev = cfg["eval"]

    def run_eval():
        return percent_metrics(evaluate(model, loader, ev["evaluator"], ev["iou_types"], ev["max_dets"], info)["bbox"])

    routed = run_eval()
    units = freeze_path_logits(model)
    static = run_eval()
    stats = {"routed": routed, "static": static, "static_minus_routed": round(static["AP"] - routed["AP"], 3),
             "units_frozen": units}
    return write_stamped(stats, args.run, args.out, start)


if __name__ == "__main__":
    sys.exit(main())
