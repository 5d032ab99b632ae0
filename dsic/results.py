"""Benchmark results as small JSON files, and tables of paired differences computed from them.

Every finished benchmark run writes one record (:func:`run_record`), e.g.
``benchmarks/results/v2/dsic_seed0.json``::

    {"protocol": "v2", "row": "dsic", "seed": 0, "overrides": [...],
     "metrics": {"AP": 41.2, "AP50": ..., "AP75": ..., "APs": ..., "APm": ..., "APl": ...},
     "commit": "5ad2bd6...", "threads": 1, "wall_s": 1234.5, "iterations": 400,
     "arch": "faster_rcnn", "backbone": "resnet_tiny",
     "host": {"cpu": "AMD EPYC", "cores": 2, "bf16_native": false, "torch": "2.14.1"},
     "gate_probe": {...}}          # gated rows: dsic.analysis.individuality

Metrics are COCO bbox metrics in percent. Tables are made from these files alone
(:func:`paired_table`), so a lost run folder loses nothing and any machine can regenerate them.

**Paired differences.** Runs of two rows at the same seed share their data order, augmentation
and the initial weights of everything but the neck (paired initialisation,
:mod:`dsic.models.builder`), so the per-seed difference d_s = AP(row, s) - AP(ref, s) measures the
rows' difference with the shared randomness removed. The table gives mean(d) and the 95 %
Student-t interval mean(d) +- t(0.975, n-1) * sd(d) / sqrt(n) over the n seeds both rows have.
An interval that contains 0 means the difference is not established; one whose end sits at
0.00 (rounded) is "at the edge". Records made since 2026-12-07 name the machine that trained them
(:func:`host_fingerprint`); a pair of runs from two machines is flagged in the tables, since the
same run trained again on another machine moved by up to 1.3 AP (protocol v3's ``rerun/``).
Earlier records carry no host.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
from pathlib import Path

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
# two-sided 95 % quantiles of Student's t, t(0.975, df) for df = 1..30
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)


def t975(df: int) -> float:
    """t(0.975, df); for df > 30 the normal approximation with a first-order correction."""
    if df < 1:
        raise ValueError(f"a t-interval needs at least 2 paired seeds (df >= 1), got df = {df}")
    return T975[df - 1] if df <= 30 else 1.95996 + 2.4 / df


def mean_ci(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high) of the 95 % t-interval of the mean; low = high = mean for one value."""
    m = statistics.mean(values)
    if len(values) < 2:
        return m, math.nan, math.nan
    half = t975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return m, m - half, m + half


def git_commit(root: str | Path = ".") -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def host_fingerprint() -> dict:
    """The machine a run trained on, in a record's ``host``: CPU model, core count, native bf16 and torch's
    version, as :func:`dsic.host.machine` reads them for profile and precision records. Two records pair
    on one machine when these agree."""
    from .host import machine

    m = machine()
    return {"cpu": m["cpu"], "cores": m["cpu_count"], "bf16_native": m["native_bf16_cpu"], "torch": m["torch"]}


def percent_metrics(bbox: dict) -> dict[str, float]:
    """The recorded METRICS of COCO ``bbox`` metrics given as fractions (0..1), in percent."""
    return {m: round(100 * float(bbox[m]), 3) for m in METRICS}


def run_record(protocol: str, row: str, seed: int, overrides: list[str], bbox: dict, **extra) -> dict:
    """The record of one finished run; ``bbox`` holds COCO metrics as fractions (0..1)."""
    metrics = percent_metrics(bbox)
    return {"protocol": protocol, "row": row, "seed": seed, "overrides": list(overrides), "metrics": metrics, **extra}


def write_record(folder: str | Path, record: dict) -> Path:
    path = Path(folder) / f"{record['row']}_seed{record['seed']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


def load_records(folder: str | Path) -> dict[str, dict[int, dict]]:
    """``{row: {seed: record}}`` of every ``*.json`` record in ``folder``."""
    rows: dict[str, dict[int, dict]] = {}
    for path in sorted(Path(folder).glob("*_seed*.json")):
        rec = json.loads(path.read_text())
        if not {"row", "seed", "metrics"} <= set(rec):
            raise ValueError(f"{path}: not a run record (needs row, seed and metrics)")
        rows.setdefault(rec["row"], {})[int(rec["seed"])] = rec
    return rows


def mask_records(records: dict[str, dict[int, dict]], rows: list[str]) -> dict[str, dict[int, dict]]:
    """``rows`` of ``records`` with their mask metrics in place of the box ones (for a mask-AP
    :func:`paired_table`); a record without ``mask_metrics`` is left out."""
    return {r: {s: dict(rec, metrics=rec["mask_metrics"]) for s, rec in records.get(r, {}).items()
                if "mask_metrics" in rec} for r in rows}


def format_ci(m: float, lo: float, hi: float) -> str:
    """``+m [+lo, +hi]``, or ``+m`` alone when the interval is undefined (one value)."""
    if math.isnan(lo):
        return f"{m:+.2f}"
    return f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def paired_rows(records: dict[str, dict[int, dict]], rows: list[str], reference: str = "fpn",
                metric: str = "AP") -> list[dict]:
    """Per row: seeds, mean ± sd of ``metric`` and, against ``reference``, the paired difference
    over the seeds both have with its 95 % t-interval (``diff``, ``low``, ``high``, ``paired``)."""
    ref = records.get(reference, {})
    out = []
    for row in rows:
        runs = records.get(row, {})
        if not runs:
            out.append({"row": row, "seeds": []})
            continue
        seeds = sorted(runs)
        values = [runs[s]["metrics"][metric] for s in seeds]
        entry = {"row": row, "seeds": seeds, "values": values, "mean": statistics.mean(values),
                 "sd": statistics.stdev(values) if len(values) > 1 else math.nan}
        entry["means"] = {m: statistics.mean(runs[s]["metrics"][m] for s in seeds) for m in METRICS}
        common = [s for s in seeds if s in ref]
        if row != reference and common:
            diffs = [runs[s]["metrics"][metric] - ref[s]["metrics"][metric] for s in common]
            entry["diff"], entry["low"], entry["high"] = mean_ci(diffs)
            entry["paired"] = common
            entry["diffs"] = diffs
            entry["two_machines"] = [s for s in common if not same_machine(runs[s], ref[s])]
        out.append(entry)
    return out


def same_machine(a: dict, b: dict) -> bool:
    """Whether two records were trained on one machine, as far as their ``host`` tells (records
    without one, made before hosts were recorded, are taken at their pairing rule's word)."""
    return "host" not in a or "host" not in b or a["host"] == b["host"]


def verdict(entry: dict) -> str:
    """What the interval says; an end that rounds to 0.00 is "at the edge", not a difference."""
    if "diff" not in entry or math.isnan(entry["low"]):
        return "-"
    if entry["low"] > 0 or entry["high"] < 0:
        if round(entry["low"], 2) == 0 or round(entry["high"], 2) == 0:
            return "at the edge"
        return "higher" if entry["low"] > 0 else "lower"
    return "not established"


def paired_table(records: dict[str, dict[int, dict]], rows: list[str], reference: str = "fpn",
                 metric: str = "AP") -> str:
    """Markdown: every row's metrics (mean over its seeds), its AP per seed, and its paired
    difference to ``reference`` with the 95 % t-interval and what the interval says."""
    head = (f"| row | seeds | {' | '.join(METRICS)} | {metric} per seed | {metric} sd | "
            f"{metric} − {reference} (95 % CI) | verdict |")
    lines = [head, "|" + "---|" * (len(METRICS) + 6)]
    for e in paired_rows(records, rows, reference, metric):
        if not e["seeds"]:
            lines.append(f"| {e['row']} | none |" + " |" * (len(METRICS) + 4))
            continue
        cells = " | ".join(f"{e['means'][m]:.1f}" for m in METRICS)
        per_seed = " / ".join(f"{v:.1f}" for v in e["values"])
        sd = "-" if math.isnan(e["sd"]) else f"{e['sd']:.2f}"
        diff = format_ci(e["diff"], e["low"], e["high"]) if "diff" in e else "-"
        seeds = ",".join(map(str, e["seeds"]))
        note = f" (seeds {','.join(map(str, e['two_machines']))} on two machines)" if e.get("two_machines") else ""
        lines.append(f"| {e['row']} | {seeds} | {cells} | {per_seed} | {sd} | {diff} | {verdict(e)}{note} |")
    return "\n".join(lines)
