"""How deep each gated row routes against what it costs: one point per run, from the records alone.

    .venv/bin/python projects/routing/routing_frontier.py     # v7 -> projects/routing/routing_frontier_v7.png
    .venv/bin/python projects/routing/routing_frontier.py --protocol v7 --out FILE.png

x: the largest small-vs-large difference of a state-matrix entry W[i, k] on the probe (``gate_probe``
``W_max_diff``); a filled marker where its effect size is >= 2, a hollow one where it is not. y: the
run's AP minus the AP of DSIC as shipped (``dsic_gatelr01``) at the same seed, from the same machine:
rows learned second on networks trained again (``STARTED_FROM_RERUN``, projects/routing/report.py) against
those networks (``<study records>/rerun``), every other row against the recorded ``dsic_gatelr01`` run. The shaded corner
is issue 10's item 5: W moved by >= 0.10 (effect size >= 2) at no AP cost. Each point is also in
projects/routing/RESULTS.md's tables; the figure puts them side by side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "projects" / "routing")]

from report import GOAL_EFFECT, GOAL_W_DIFF, START_ROW, bench, frontier_points  # projects/routing/report.py

from dsic.protocol import get_protocol


def plot(points: list[dict], out: Path, title: str, floor: float = -4.0) -> Path:
    """The scatter; runs below ``floor`` are drawn on it as triangles, their AP difference beside them.
    Circles: rows learned second (``_gateft_`` in the name); squares: rows trained from scratch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted({p["row"] for p in points})
    fig, ax = plt.subplots(figsize=(10, 5.5))
    xmax = max([p["w"] for p in points] + [GOAL_W_DIFF]) * 1.1
    ymin = max(min([p["dap"] for p in points] + [0.0]), floor) - 0.25
    ymax = max([p["dap"] for p in points] + [0.0]) + 0.25
    ax.fill_between([GOAL_W_DIFF, xmax], 0, ymax, color="tab:green", alpha=0.12, label="item 5's goal")
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(GOAL_W_DIFF, color="grey", lw=0.8, ls="--")
    cmap = plt.get_cmap("tab20")
    for n, row in enumerate(rows):
        color, marker = cmap(n % 20), "o" if "_gateft_" in row else "s"
        for i, p in enumerate(q for q in points if q["row"] == row):
            clipped = p["dap"] < floor
            y = floor if clipped else p["dap"]
            ax.scatter([p["w"]], [y], s=40, marker="v" if clipped else marker, color=color,
                       facecolors=color if p["reliable"] else "none", label=row if i == 0 else None)
            if clipped:
                ax.annotate(f"{p['dap']:+.1f}", (p["w"], y), textcoords="offset points", xytext=(6, -3), fontsize=7)
    ax.set_xlim(0, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_xlabel(f"W's largest small-vs-large difference (hollow: effect size < {GOAL_EFFECT})")
    ax.set_ylabel(f"AP - {START_ROW} at the same seed")
    ax.set_title(title)
    ax.legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False,
              title="circles: learned second\nsquares: from scratch", title_fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="v7")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: projects/routing/routing_frontier_<protocol>.png")
    args = parser.parse_args(argv)
    proto = get_protocol(args.protocol)
    results = proto.study_dir  # the study's rows, with the benchmark's dsic_gatelr01 to pair them with
    points = frontier_points(bench.read_records([results, proto.results_dir]), bench.read_records([results / "rerun"]))
    if not points:
        raise SystemExit(f"routing_frontier: no gated run in {results} has a {START_ROW} run of its seed to pair with")
    out = plot(points, args.out or ROOT / "projects" / "routing" / f"routing_frontier_{args.protocol}.png",
               f"Routing by image against its AP cost, protocol {args.protocol} ({len(points)} runs)")
    print(f"[dsic] {out}: {len(points)} runs, {sum(p['w'] >= GOAL_W_DIFF and p['reliable'] and p['dap'] >= 0 for p in points)}"
          " of them in the goal's corner")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
