"""The command line shared by the analyses of one trained run over the probe groups
(projects/routing/routing_incentive.py, projects/routing/control_inputs.py, projects/routing/path_readout.py): load ``<run>/config.yaml`` and
``<run>/final.pth`` on the CPU, compute, stamp the result with the run, commit, threads and wall
time, print it as JSON and, with ``--out``, write it there."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "projects" / "routing")]

import routing  # noqa: F401 - registers the study's neck, dsic_routing
from dsic.inference import load_model
from dsic.results import git_commit


def main(description: str, analyse, default_images: int, argv=None) -> int:
    """``analyse(model, cfg, probe_folder, images) -> dict``; returns the exit code."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("run", type=Path, help="a finished run folder (config.yaml, final.pth)")
    parser.add_argument("--probe", type=Path, required=True, help="a synth folder with probe groups")
    parser.add_argument("--images", type=int, default=default_images, help="images per probe group")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    start = time.time()
    model, cfg, _ = load_model(args.run / "config.yaml", args.run / "final.pth", device="cpu")
    return write_stamped(analyse(model, cfg, args.probe, args.images), args.run, args.out, start)


def write_stamped(stats: dict, run: Path, out: Path | None, start: float) -> int:
    """Stamp ``stats`` with the run's name, commit, threads and wall time since ``start``, print it
    as JSON and, with ``out``, write it there; returns 0 (the exit code)."""
    stats.update(run=run.name, commit=git_commit(ROOT), threads=torch.get_num_threads(),
                 wall_s=round(time.time() - start, 1))
    text = json.dumps(stats, indent=1)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    return 0
