"""Regenerate BENCHMARKS.md's cost table (between its markers) from committed profile JSONs.

    python benchmarks/cost_table.py benchmarks/results/profile/r50_512_fp32_infer.json [MORE.json ...]

Each JSON is what ``dsic profile --out`` writes (the run's conditions and one row per neck and
precision); the section lists, per file, the command, date, commit, threads, CPU and load average,
then the table of :func:`dsic.profiling.format_table` (ratios to the reference neck of the same
precision). Only the text between ``<!-- cost table start -->`` and ``<!-- cost table end -->`` changes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsic.profiling import Profile, format_table

START, END = "<!-- cost table start -->", "<!-- cost table end -->"


INTRO = """How to read it: one row per neck and precision; `(1.23x)` and `latency / fpn` are ratios to FPN's
row of the same precision, measured in the same process with every candidate timed round-robin
(`dsic/profiling.py`), so a slower moment of the shared machine hits all of them alike; absolute ms
on a loaded machine are indicative only. The RoI heads' work is held equal across necks: the RPN
runs (with `rpn_nms_thresh=1.0`), but its proposals are replaced by the reference neck's fp32
proposals on the same images. Memory is the peak of tensors allocated during one pass above what
was allocated before it (activations, gradients, temporaries; not the weights). Throughput is
images/s of a pass on `--batch` images (a training step: forward, backward, SGD update)."""


def section(paths: list[Path], reference: str = "fpn") -> str:
    parts = [INTRO]
    for path in paths:
        data = json.loads(path.read_text())
        rows = [Profile(**r) for r in data["rows"]]
        load = data.get("loadavg_1_5_15")
        parts.append(
            f"`{data['command']}`  \n"
            f"{data['date']}, commit {data.get('commit')}, torch {data['torch']}, {data['threads']} thread(s), "
            f"{data['cpu']} ({data['cpu_count']} cores, native bf16: {data['native_bf16_cpu']}), load average at "
            f"the end {', '.join(f'{x:.1f}' for x in load) if load else '?'}; JSON: `{path.as_posix()}`\n\n"
            + format_table(rows, reference)
            + (f"\n\nLoaded machine (load average {load[0]:.1f} on {data['cpu_count']} cores): the wall times include "
               "the time other processes held the core, so absolute ms are far above an idle machine's and the "
               "ratios are indicative only." if load and data.get("cpu_count") and load[0] > data["cpu_count"] else ""))
    return "\n\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jsons", nargs="+", type=Path)
    parser.add_argument("--benchmarks", type=Path, default=Path(__file__).resolve().parents[1] / "BENCHMARKS.md")
    parser.add_argument("--reference", default="fpn")
    args = parser.parse_args(argv)
    text = args.benchmarks.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{args.benchmarks}: no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    args.benchmarks.write_text(head + START + "\n" + section(args.jsons, args.reference) + "\n" + END + tail)
    print(f"{args.benchmarks}: cost table regenerated from {len(args.jsons)} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
