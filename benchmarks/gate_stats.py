"""What a trained gated neck learned: ISG and CSG gate statistics over validation images.

    python benchmarks/gate_stats.py runs/demo/dsic_seed0 --images 20

Loads ``<run>/config.yaml`` and ``<run>/final.pth``, runs the detector on the first ``--images``
validation images one at a time (eval mode) and prints, from :func:`dsic.models.gate_states`:

* per ISG stage: mean and max of the Fine Selection a_i, the fraction of channels with a_i > 0.1,
  each block's weight in C'_i = (1 - a_i) B_in + a_i sum_j b_ij B_ij (mean over channels and images),
  and the largest |b_ij| of the coarse signals;
* for CSG: the state matrix W[i, k] (channel-mean act(w_ik)) averaged over images, and its std
  over images (how sample-individual the channel gating is).

With ``--probe DATA`` (a synth folder with probe groups, ``dsic data synth --probe N``) it prints
instead how differently the neck routes all-small, all-large and mixed images
(:func:`dsic.analysis.individuality`: group means and stds of W, the largest small-vs-large
difference and its effect size, how well W predicts the group, live control units), as JSON:

    python benchmarks/gate_stats.py runs/v2/dsic_seed0 --probe runs/v2/data/synth_hard --images 50
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsic.inference import image_files, load_model, read_image
from dsic.models.states import gate_states


def collect(run: Path, images: int) -> dict:
    model, cfg, device = load_model(run / "config.yaml", run / "final.pth", device="cpu")
    paths = image_files([cfg["data"]["val"]["images"]])[:images]
    a, b, w = [], [], []
    with torch.no_grad():
        for path in paths:
            model([read_image(path).to(device)])
            states = gate_states(model)
            if "isg" in states:
                a.append([x[0] for x in states["isg"]["a"]])
                b.append([None if x is None else x[0] for x in states["isg"]["b"]])
            if "csg" in states:
                w.append(states["csg"]["w"][0])
    if not (a or w):
        raise SystemExit(f"{run}: the neck has no gates (fpn, fcfpn, panet, fpg, fpt)")
    return {"a": a, "b": b, "w": w, "images": len(paths)}


def report(stats: dict) -> str:
    lines = [f"{stats['images']} validation images"]
    for i in range(len(stats["a"][0]) if stats["a"] else 0):
        a = torch.stack([row[i] for row in stats["a"]])
        line = (f"ISG stage {i}: a mean {a.mean():.3f}, max {a.max():.3f}, "
                f"channels with a > 0.1: {100 * (a > 0.1).float().mean():.0f} %")
        if stats["b"][0][i] is not None:
            b = torch.stack([row[i] for row in stats["b"]])  # [images, n-1, C]
            line += f"; coarse signals max |b| {b.abs().max():.2f}"
            # C'_i = (1 - a) B_in + a sum_j b_j B_ij: each block's weight, mean over channels and images
            weights = [(a * b[:, j]).mean().item() for j in range(b.shape[1])] + [(1 - a).mean().item()]
            line += "; block weights " + " ".join(f"{v:+.3f}" for v in weights) + " (last: the stage's output)"
        lines.append(line)
    if stats["w"]:
        w = torch.stack(stats["w"])
        lines.append("CSG state matrix W[i, k] (rows: input level i, columns: output level k), mean over images:")
        lines += ["  " + " ".join(f"{v:.3f}" for v in row) for row in w.mean(0).tolist()]
        lines.append(f"CSG W std over images (mean over entries): {w.std(0).mean():.4f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder with config.yaml and final.pth")
    parser.add_argument("--images", type=int, default=20, help="images (per probe group with --probe)")
    parser.add_argument("--probe", type=Path, default=None, help="a synth folder holding probe_{small,large,mixed}")
    args = parser.parse_args(argv)
    for name in ("config.yaml", "final.pth"):
        if not (args.run / name).is_file():
            raise SystemExit(f"{args.run / name}: missing (is this a finished run folder?)")
    if args.probe is not None:
        import json

        from dsic.analysis import probe_model

        model, _, _ = load_model(args.run / "config.yaml", args.run / "final.pth", device="cpu")
        print(json.dumps(probe_model(model, args.probe, args.images), indent=1))
        return 0
    print(report(collect(args.run, args.images)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
