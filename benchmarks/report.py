"""Regenerate the benchmark's tables from the committed run records.

    .venv/bin/python benchmarks/report.py                    # rewrites every generated section
    .venv/bin/python benchmarks/report.py --print headlines  # prints one section instead (or v2, v3, v7)
    .venv/bin/python benchmarks/report.py --check            # exit 1 if a file differs from its records

BENCHMARKS.md holds the headlines and the sections of the comparison protocols (v3, v7);
benchmarks/PROTOCOLS.md the section of protocol v2, kept as history. Each section is computed from
``benchmarks/results/<protocol>/*.json`` (one record per run, :mod:`dsic.results`) and nothing is
typed by hand, so a new machine regenerates the same text. The routing study's tables:
projects/routing/report.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsic.protocol import get_protocol, on_scenes
from dsic.results import format_ci, load_records, mask_records, mean_ci, paired_table

RESULTS = ROOT / "benchmarks" / "results"
GOAL_W_DIFF, GOAL_EFFECT = 0.10, 2  # issue 10's gate goal: a W entry this far apart, with this effect size


def markers(name: str, by: str = "benchmarks/report.py") -> tuple[str, str]:
    return f"<!-- {name} results start ({by}) -->", f"<!-- {name} results end -->"


# title: (benchmarks/run.py table, rows, reference); a table shows once two of its rows have records
TABLES = {
    "Table 4 analog: ISG / CSG ablation": ("table4", ["fpn", "isg", "csg", "dsic", "isg_gatelr01", "csg_gatelr01",
                                                      "dsic_gatelr01"], "fpn"),
    "Table 2 analog: necks compared": ("table2", ["fpn", "fcfpn", "panet", "fpg", "fpt", "dsic", "dsic_gatelr01"],
                                       "fpn"),
    "DSIC against dense ungated connections (FC-FPN)": ("table2", ["fcfpn", "dsic", "dsic_gatelr01"], "fcfpn"),
    "Table 5 analog: gate modes (ISG and CSG alike)": ("table5", ["fpn", "dsic_softmax", "dsic_sigmoid", "dsic",
                                                                  "dsic_softmax_gatelr01", "dsic_sigmoid_gatelr01",
                                                                  "dsic_gatelr01"], "fpn"),
    "Gate modes at the shipped gate lr, against tanh (dsic_gatelr01)": (
        "table5", ["dsic_gatelr01", "dsic_softmax_gatelr01", "dsic_sigmoid_gatelr01"], "dsic_gatelr01"),
    "The gate lr: DSIC as shipped (x0.1) against one lr for everything (dsic)": (
        "gates", ["dsic", "dsic_gatelr01", "dsic_gatelr10"], "dsic"),
    "Scenes: DSIC as shipped and FC-FPN against FPN": ("scenes", ["fpn", "dsic_gatelr01", "fcfpn"], "fpn"),
    "Scenes: DSIC as shipped against dense ungated connections (FC-FPN)": ("scenes", ["fcfpn", "dsic_gatelr01"],
                                                                           "fcfpn"),
}
# protocol v2's gate rows, shown in its history section as they were run
GATE_ROWS = ["dsic_control_running", "dsic_control_layer", "dsic_path", "dsic_gatelr01", "dsic_gatelr10",
             "dsic_signal01_gatelr01", "dsic_gatelr10_layer", "dsic_path_gatelr01",
             "dsic_path_layer_gatelr01", "dsic_path_running_gatelr01"]
HISTORY_TABLES = {**TABLES, "How CSG's gates learn": ("gates", ["fpn", "dsic", *GATE_ROWS], "fpn"),
                  "Gate designs against DSIC with one lr for everything (dsic)": ("gates", ["dsic", *GATE_ROWS], "dsic")}

# comparisons given seeds beyond the protocol's fixed ones, after its tables were made
# (benchmarks/PROTOCOLS.md, "v3's headline comparisons at 8 seeds"); the protocol's own tables keep its fixed seeds
EXTRA_SEEDS = {
    "v3": {"title": "v3's headline comparisons at seeds 0-7", "seeds": 8,
           "where": "on a later machine (one thread, two runs at a time)", "tables": [
               ("fpn", ["fpn", "fcfpn", "dsic_gatelr01"]), ("fcfpn", ["fcfpn", "dsic_gatelr01"])]},
    # benchmarks/PROTOCOLS.md, "v7's headline comparisons at 6 seeds"
    "v7": {"title": "v7's headline comparisons at seeds 0-5", "seeds": 6,
           "where": "on the machine of seeds 0-3 (one thread, two runs at a time)", "tables": [
               ("fpn", ["fpn", "fcfpn", "dsic_gatelr01"]), ("fcfpn", ["fcfpn", "dsic_gatelr01"])]},
}

# rows given seeds beyond the protocol's fixed ones on a later machine, paired with reference rows trained
# again there (<results>/rerun) for those seeds (benchmarks/PROTOCOLS.md, "Tables 4 and 5 at 8 seeds on v3")
RERUN_SEEDS = {
    "v3": {"title": "v3's Tables 4 and 5 at seeds 0-7", "seeds": 8, "again": ["fpn", "dsic_gatelr01"], "tables": [
        ("fpn", ["fpn", "isg_gatelr01", "csg_gatelr01", "dsic_gatelr01"]),
        ("dsic_gatelr01", ["dsic_gatelr01", "isg_gatelr01", "csg_gatelr01", "dsic_sigmoid_gatelr01",
                           "dsic_softmax_gatelr01"])]},
}

# What README.md and BENCHMARKS.md's answer quote: (protocol, row, reference, seeds, the rows whose runs
# at the added seeds are the ones trained again, rerun/); "The other pairing" takes the other runs.
AGAIN = tuple(RERUN_SEEDS["v3"]["again"])
HEADLINES = [
    ("v3", "dsic_gatelr01", "fpn", 8, ()),
    ("v3", "dsic_gatelr01", "fcfpn", 8, ()),
    ("v3", "fcfpn", "fpn", 8, ()),
    ("v3", "csg_gatelr01", "fpn", 8, AGAIN),
    ("v3", "isg_gatelr01", "fpn", 8, AGAIN),
    ("v3", "csg_gatelr01", "dsic_gatelr01", 8, AGAIN),
    ("v3", "isg_gatelr01", "dsic_gatelr01", 8, AGAIN),
    ("v3", "dsic_sigmoid_gatelr01", "dsic_gatelr01", 8, AGAIN),
    ("v3", "dsic_softmax_gatelr01", "dsic_gatelr01", 8, AGAIN),
    ("v3", "fcos_dsic_gatelr01", "fcos_fpn", 4, ()),  # issue 36: Table 1 in FCOS
    ("v3", "fcos_csg_gatelr01", "fcos_fpn", 4, ()),
    ("v3", "mask_rcnn_dsic_gatelr01", "mask_rcnn_fpn", 4, ()),  # issue 36: Table 1 in Mask R-CNN (box AP)
    ("v3", "mask_rcnn_csg_gatelr01", "mask_rcnn_fpn", 4, ()),
    ("v3", "mask_rcnn_dsic_gatelr01", "mask_rcnn_csg_gatelr01", 4, ()),
    ("v3", "r34_isg_gatelr01", "r34_fpn", 4, ()),  # issue 36: Table 4 on resnet_tiny34
    ("v3", "r34_csg_gatelr01", "r34_fpn", 4, ()),
    ("v3", "r34_dsic_gatelr01", "r34_fpn", 4, ()),
    ("v3", "r34_dsic_gatelr01", "r34_csg_gatelr01", 4, ()),
    ("v7", "dsic_gatelr01", "fpn", 6, ()),
    ("v7", "dsic_gatelr01", "fcfpn", 6, ()),
    ("v7", "fcfpn", "fpn", 6, ()),
]


def read_records(folders: list[Path]) -> dict:
    """``{row: {seed: record}}`` of every folder that exists, merged."""
    out: dict = {}
    for folder in folders:
        if folder.is_dir():
            for row, runs in load_records(folder).items():
                out.setdefault(row, {}).update(runs)
    return out


def load_reruns(results: Path) -> dict:
    """The runs trained again on a later machine (``<results>/rerun/``), by row and seed; {} if none."""
    folder = results / "rerun"
    return load_records(folder) if folder.is_dir() else {}


def fixed_seeds(records: dict, seeds: int) -> dict:
    """``records`` without the runs of seeds >= ``seeds`` (rows left with no run dropped)."""
    kept = {row: {s: r for s, r in runs.items() if s < seeds} for row, runs in records.items()}
    return {row: runs for row, runs in kept.items() if runs}


def with_reruns(records: dict, again: dict, rows, first_seed: int) -> dict:
    """``records`` with the runs of ``rows`` at seeds >= ``first_seed`` taken from ``again`` (the same
    runs trained again on a later machine); such a seed without a run there is dropped, so that a
    pair never mixes machines."""
    out = {row: dict(runs) for row, runs in records.items()}
    for row in rows:
        kept = {s: r for s, r in out.get(row, {}).items() if s < first_seed}
        kept.update({s: r for s, r in again.get(row, {}).items() if s >= first_seed})
        out[row] = kept
    return {row: runs for row, runs in out.items() if runs}


def extra_seeds(records: dict, protocol: str, spec: dict = EXTRA_SEEDS) -> list[str]:
    """The ``spec`` tables of ``protocol`` (empty until some run beyond its fixed seeds is recorded)."""
    extra = spec.get(protocol)
    fixed = get_protocol(protocol).seeds
    if not extra or not any(s >= fixed for runs in records.values() for s in runs):
        return []
    records = fixed_seeds(records, extra["seeds"])
    added = f"{fixed}-{extra['seeds'] - 1}"
    out = ["", f"### {extra['title']}", "",
           (f"Seeds {added} were added after the tables above (fixed at seeds 0-{fixed - 1}), "
            f"n fixed at {extra['seeds']} before their runs (benchmarks/PROTOCOLS.md). Each row's difference to the "
            f"first, paired by seed, with the 95 % t-interval; seeds {added} were run {extra['where']}.")]
    for reference, rows in extra["tables"]:
        present = [r for r in rows if r in records]
        if reference in present and len(present) > 1:
            out += ["", paired_table(records, present, reference=reference)]
    return out


def rerun_seeds(records: dict, again: dict, protocol: str) -> list[str]:
    """The RERUN_SEEDS tables of ``protocol`` (empty until a new row has a run beyond its fixed seeds)."""
    extra = RERUN_SEEDS.get(protocol)
    fixed = get_protocol(protocol).seeds
    if not extra:
        return []
    new_rows = {r for _, rows in extra["tables"] for r in rows} - set(extra["again"])
    if not any(s >= fixed for row in new_rows for s in records.get(row, {})):
        return []
    merged = fixed_seeds(with_reruns(records, again, extra["again"], fixed), extra["seeds"])
    added = f"{fixed}-{extra['seeds'] - 1}"
    out = ["", f"### {extra['title']}", "",
           (f"Seeds {added} were added after the tables above, n fixed at {extra['seeds']} before their runs "
            f"(benchmarks/PROTOCOLS.md). At seeds {added}, {' and '.join(extra['again'])} are the runs trained again "
            f"on the new rows' machine (`rerun/`), so every pair comes from one machine. Each row's difference to "
            "the first, paired by seed, with the 95 % t-interval.")]
    missing = {}  # n is fixed: a row shows once it has every seed, never on a part of them
    for reference, rows in extra["tables"]:
        for row in rows:
            lacking = [s for s in range(extra["seeds"]) if s not in merged.get(row, {})]
            if lacking:
                missing[row] = lacking
        complete = [r for r in rows if r not in missing]
        if reference in complete and len(complete) > 1:
            out += ["", paired_table(merged, complete, reference=reference)]
    if missing:
        out += ["", "Not shown until every seed is in: " + "; ".join(
            f"{row} (not run)" if len(seeds) == extra["seeds"] else f"{row} (seeds {', '.join(map(str, seeds))} missing)"
            for row, seeds in missing.items()) + "."]
    return out


def fpn_sd(records: dict) -> float | None:
    aps = [r["metrics"]["AP"] for r in records.get("fpn", {}).values()]
    return statistics.stdev(aps) if len(aps) > 1 else None


def fpn_variance(records: dict, earlier: dict | None = None) -> str:
    runs = records.get("fpn", {})
    if not runs:
        return "No FPN runs recorded yet."
    aps = [runs[s]["metrics"]["AP"] for s in sorted(runs)]
    sd = statistics.stdev(aps) if len(aps) > 1 else float("nan")
    per_seed = ", ".join(f"seed {s}: {runs[s]['metrics']['AP']:.2f}" for s in sorted(runs))
    walls = [runs[s].get("wall_s") for s in sorted(runs) if runs[s].get("wall_s")]
    verdict = ("meets" if sd <= 1.0 else "does not meet") + " the goal of a standard deviation <= 1.0 AP"
    return (f"FPN AP over {len(aps)} seeds: {per_seed}; mean {statistics.mean(aps):.2f}, sample standard "
            f"deviation {sd:.2f} AP, which {verdict}. Wall time per run "
            f"{min(walls):.0f}-{max(walls):.0f} s (one thread; two runs at a time)." + _against(sd, earlier))


def _against(sd: float, earlier: dict | None) -> str:
    """v3's rule (benchmarks/PROTOCOLS.md): adopted if FPN's sd is below v2's."""
    before = fpn_sd(earlier) if earlier else None
    if before is None:
        return ""
    verdict = "below" if sd < before else "not below"
    return (f" Protocol v2's was {before:.2f} AP: this is {verdict} it, so by the rule fixed before these runs "
            f"finished, v3 {'is' if sd < before else 'is not'} the comparison protocol.")


def probe_table(records: dict) -> str:
    lines = [("| run | W max abs(small − large) (entry i,k) | effect size | W predicts group (chance 33 %) | "
             "small vs large (chance 50 %) | S max abs(small − large) (effect size) | ISG a max abs(small − large) | "
             "single channel max abs(small − large) (effect size) | channel std over images (median) | "
             "live control units per level |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in sorted(records):
        for seed, rec in sorted(records[row].items()):
            p = rec.get("gate_probe")
            if not p:
                continue
            w = (f"{p['W_max_diff']:.4f} ({p['W_max_diff_at'][0]},{p['W_max_diff_at'][1]})"
                 if "W_max_diff" in p else "-")
            eff = f"{p['W_effect_size']:.2f}" if "W_effect_size" in p else "-"
            acc = f"{100 * p['W_group_accuracy']:.0f} %" if "W_group_accuracy" in p else "-"
            acc2 = f"{100 * p['W_small_large_accuracy']:.0f} %" if "W_small_large_accuracy" in p else "-"
            a = f"{p['a_max_diff']:.4f}" if "a_max_diff" in p else "-"
            sel = f"{p['S_max_diff']:.4f} ({p['S_effect_size']:.2f})" if "S_max_diff" in p else "-"
            ch = (f"{p['w_channel_max_diff']:.4f} ({p['w_channel_effect_size']:.2f})"
                  if "w_channel_max_diff" in p else "-")
            ch_std = f"{p['w_channel_image_std']:.4f}" if "w_channel_image_std" in p else "-"
            alive = " / ".join(f"{100 * x:.0f} %" for x in p.get("control_units_alive", [])) or "-"
            lines.append(f"| {row} seed {seed} | {w} | {eff} | {acc} | {acc2} | {sel} | {a} | {ch} | {ch_std} | {alive} |")
    return "\n".join(lines)


def meets_goal(probe: dict) -> bool:
    """Whether some W entry differs by >= GOAL_W_DIFF between the small and large probe groups with
    effect size >= GOAL_EFFECT (group-mean difference over the pooled within-group std, as the
    probe's). Records without the per-entry stds are judged by their largest-difference entry."""
    if not all(k in probe for k in ("W_small", "W_large", "W_std_small", "W_std_large")):
        return probe["W_max_diff"] >= GOAL_W_DIFF and probe["W_effect_size"] >= GOAL_EFFECT
    flat = ([v for row in probe[k] for v in row] for k in ("W_small", "W_large", "W_std_small", "W_std_large"))
    for small, large, s_std, l_std in zip(*flat):
        diff = abs(small - large)
        if diff >= GOAL_W_DIFF and diff >= GOAL_EFFECT * max(((s_std ** 2 + l_std ** 2) / 2) ** 0.5, 1e-12):
            return True
    return False


def goal_summary(records: dict) -> str:
    """Per gated row, the seeds whose probe meets the gate goal (:func:`meets_goal`)."""
    parts = []
    for row in sorted(records):
        probes = {seed: rec["gate_probe"] for seed, rec in sorted(records[row].items())
                  if "W_max_diff" in rec.get("gate_probe", {})}
        if probes:
            met = [s for s, p in probes.items() if meets_goal(p)]
            parts.append(f"{row} {len(met)} of {len(probes)}")
    return "Seeds meeting the goal: " + ("; ".join(parts) if parts else "no gated run recorded") + "."




def rerun_table(again: dict, records: dict) -> str:
    """Runs trained again on a later machine (``again``, from :func:`load_reruns`: the same row, seed,
    code and thread count) beside the recorded runs they repeat: how far a run moves between machines."""
    lines = [f"| {row} | {seed} | {first['commit'][:7]} / {rec['commit'][:7]} | {first['metrics']['AP']:.2f} | "
             f"{rec['metrics']['AP']:.2f} | {rec['metrics']['AP'] - first['metrics']['AP']:+.2f} |"
             for row, runs in sorted(again.items()) for seed, rec in sorted(runs.items())
             if (first := records.get(row, {}).get(seed))]
    if not lines:
        return ""
    return "\n".join(["", ("The same runs trained again on a later machine (same row, seed, code and one thread; "
                       "`benchmarks/run.py <table> --protocol <p> --variants <row>` with `--results "
                       "<the protocol's records>/rerun`): the spread of one seed between machines."), "",
                       "| row | seed | commits (recorded / again) | AP recorded | AP again | again − recorded |",
                       "|---|---|---|---|---|---|", *lines])



def reading(low: float, high: float) -> str:
    """What an interval says; a bound that prints as 0.00 is "at the edge", given to three decimals."""
    if low > 0 or high < 0:
        edge = low if low > 0 else high
        if f"{abs(edge):.2f}" == "0.00":
            return f"at the edge ({'lower' if low > 0 else 'upper'} end {edge:+.3f})"
        return "higher" if low > 0 else "lower"
    return "not established"


def headline(protocol: str, row: str, reference: str, seeds: int, again_rows: tuple = ()) -> tuple[float, float, float]:
    """(mean, low, high) of ``row`` - ``reference`` AP, paired by seed over seeds 0..seeds-1, with the runs
    of ``again_rows`` at the seeds past the protocol's fixed ones taken from those trained again (rerun/)."""
    results = RESULTS / protocol
    records = load_records(results)
    if again_rows:
        records = with_reruns(records, load_reruns(results), again_rows, get_protocol(protocol).seeds)
    records = fixed_seeds(records, seeds)
    pairs = sorted(set(records.get(row, {})) & set(records.get(reference, {})))
    if pairs != list(range(seeds)):
        raise ValueError(f"{protocol} {row} - {reference}: seeds {pairs}, expected 0-{seeds - 1}")
    return mean_ci([records[row][s]["metrics"]["AP"] - records[reference][s]["metrics"]["AP"] for s in pairs])


def pairing(protocol: str, row: str, reference: str, seeds: int, again_rows: tuple) -> str:
    """Which runs a headline pairs at the seeds past the protocol's fixed ones."""
    fixed = get_protocol(protocol).seeds
    rows = [r for r in (row, reference) if r in (again_rows or AGAIN)] if load_reruns(RESULTS / protocol) else []
    if not rows:
        return f"seeds 0-{seeds - 1} as recorded (`benchmarks/results/{protocol}/`)"
    how = (f"trained again (`benchmarks/results/{protocol}/rerun/`)" if again_rows
           else f"as recorded (`benchmarks/results/{protocol}/`)")
    return f"seeds {fixed}-{seeds - 1}: {' and '.join(rows)} {how}"


def headlines() -> str:
    """The HEADLINES table: each comparison with the pairing it uses and, where runs trained again
    (``rerun/``) give another one, that pairing's interval too."""
    start, end = markers("headlines")
    lines = [start, "", "| comparison | protocol, seeds | AP difference [95 % CI] | reads | pairing | the other pairing |",
             "|---|---|---|---|---|---|"]
    for protocol, row, reference, seeds, again_rows in HEADLINES:
        m, lo, hi = headline(protocol, row, reference, seeds, again_rows)
        other_rows = () if again_rows else tuple(r for r in (row, reference) if r in AGAIN)
        other = "-"
        if load_reruns(RESULTS / protocol) and (again_rows or other_rows):
            om, olo, ohi = headline(protocol, row, reference, seeds, other_rows)
            other = f"{format_ci(om, olo, ohi)}, {reading(olo, ohi)} ({pairing(protocol, row, reference, seeds, other_rows)})"
        lines.append(f"| {row} − {reference} | {protocol}, 0-{seeds - 1} | **{format_ci(m, lo, hi)}** | "
                     f"{reading(lo, hi)} | {pairing(protocol, row, reference, seeds, again_rows)} | {other} |")
    return "\n".join(lines + ["", end])


def section(folders: Path | list[Path], protocol: str, tables: dict = TABLES, earlier: Path | None = None,
            by: str = "benchmarks/report.py", extra: dict = EXTRA_SEEDS, probe: bool = False, more=None,
            variance: bool = True, reruns: bool = True) -> str:
    """A protocol's generated section from the records in ``folders`` (merged; ``<folder>/rerun`` holds
    runs trained again): FPN's variance if ``variance``, ``tables`` (the ``scenes`` ones on the scenes
    protocols only), the added seeds (``extra``; RERUN_SEEDS if ``reruns``), the gate probe if ``probe``,
    then ``more(folders, records, again)`` (a list of tables) and the runs trained again."""
    folders = [folders] if isinstance(folders, Path) else list(folders)
    everything = read_records(folders)
    again = read_records([f / "rerun" for f in folders])
    seeds = get_protocol(protocol).seeds
    records = fixed_seeds(everything, seeds)
    start, end = markers(protocol, by)
    if not records:
        return "\n".join([start, "", f"No run of protocol {protocol} is recorded yet.", "", end])
    out = [start]
    before = load_records(earlier) if earlier is not None and earlier.is_dir() else None
    if variance and "fpn" in records:
        decides = " (decides the protocol)" if protocol in ("v2", "v3", "v7") else ""
        out += ["", f"### FPN's run-to-run variance{decides}", "", fpn_variance(records, before)]
    for title, (table, rows, ref) in tables.items():
        present = [r for r in rows if r in records]
        if (table == "scenes") != on_scenes(protocol) or ref not in present or len(present) < 2:
            continue
        out += ["", f"### {title}", "",
                (f"`benchmarks/run.py {table} --protocol {protocol} --seeds {seeds}`; difference to **{ref}**, paired "
                 "by seed, with the 95 % t-interval."), "", paired_table(records, present, reference=ref)]
    out += extra_seeds(everything, protocol, extra)
    if reruns:
        out += rerun_seeds(everything, again, protocol)
    if probe:
        out += ["", "### Do the gates route images differently? (gate probe)", "",
                ("Each gated run's `gate_probe` (50 images per probe group; `dsic.models.probe`). "
                 f"Goal: a W entry differing by >= {GOAL_W_DIFF:.2f} between all-small and all-large images with "
                 f"effect size >= {GOAL_EFFECT}: any entry (the W columns show the largest difference; until "
                 "2026-11-29 the count below checked that entry alone, which gives the same count on every run but "
                 "v7's dsic_pathstats_pathlr1_gatelr01 seed 0). S (the pixel selection maps' spatial means) is a "
                 "diagnostic beside it, recorded since the v3 runs; the single-channel columns (act(w_ik[c]) before "
                 "W's channel mean) since 2026-11-28."),
                "", probe_table(everything), "", goal_summary(everything)]
    out += [table for table in (more(folders, everything, again) if more else []) if table]
    out += [t for t in [rerun_table(read_records([folders[0] / "rerun"]), everything)] if t]  # the first folder's
    return "\n".join(out + ["", end])


# Issue 36's tables (docs/breadth.md): each detector's rows, paired against its own FPN; Faster R-CNN's are
# v3's own rows. Step 1 keeps a detector's setting when FPN's AP sd over seeds 0-3 is <= 1.0 and no run took
# more than 15 min of CPU time.
DETECTORS = {"faster_rcnn": "", "fcos": "fcos_", "retinanet": "retinanet_", "mask_rcnn": "mask_rcnn_"}
BREADTH_NECKS = ["fpn", "dsic_gatelr01", "csg_gatelr01"]
TINY34_ROWS = ["r34_fpn", "r34_isg_gatelr01", "r34_csg_gatelr01", "r34_dsic_gatelr01"]
BREADTH_SEEDS, SD_LIMIT, CPU_LIMIT_S = 4, 1.0, 900.0
# budget extension 2 (docs/breadth.md) raised the limit to 30 min for these detectors' settings from N on
RAISED_CPU_LIMIT_S, RAISED_FROM = 1800.0, {"retinanet": 4, "mask_rcnn": 2}
TABLE1_SETTINGS = ("fcos", "retinanet", "mask_rcnn")  # settings numbered from 0; records of replaced ones
# live in benchmarks/results/v3/table1_setting<N>/


def cpu_limit(arch: str, setting: str) -> float:
    """The CPU seconds a run of ``arch``'s FPN may take in ``setting`` (a number, or "v3")."""
    raised = arch in RAISED_FROM and setting.isdigit() and int(setting) >= RAISED_FROM[arch]
    return RAISED_CPU_LIMIT_S if raised else CPU_LIMIT_S


def setting_kept(runs: dict, limit_s: float = CPU_LIMIT_S) -> str:
    """Step 1's verdict on a detector's FPN runs (``{seed: record}``), each allowed ``limit_s`` of CPU."""
    aps = [runs[s]["metrics"]["AP"] for s in sorted(runs)]
    cpus = [runs[s]["cpu_s"] for s in sorted(runs) if runs[s].get("cpu_s")]
    sd = statistics.stdev(aps) if len(aps) > 1 else float("nan")
    over = [c for c in cpus if c > limit_s]
    if over:
        return f"not kept: a run took {max(over) / 60:.1f} min of CPU time (limit {limit_s / 60:.0f})"
    if len(aps) < BREADTH_SEEDS:
        # the seeds still to come can at best sit at the mean: the sd over all of them is then at least this
        floor = statistics.stdev(aps + [statistics.mean(aps)] * (BREADTH_SEEDS - len(aps)))
        if floor > SD_LIMIT:
            return f"not kept: sd over {BREADTH_SEEDS} seeds >= {floor:.2f} whatever the others give"
        return f"open: {len(aps)} of {BREADTH_SEEDS} seeds"
    return "kept" if sd <= SD_LIMIT else f"not kept: sd {sd:.2f} > {SD_LIMIT:.1f}"


def fpn_steps(records: dict, rows: dict[str, str], earlier: dict[int, dict] | None = None) -> str:
    """One line per detector and setting tried: FPN's AP per seed, sd, CPU time per run and step 1's verdict.
    ``records`` (seeds 0-3) are the current settings'; ``earlier`` ({setting number: records}) the ones replaced."""
    lines = ["| detector | setting | FPN row | AP per seed | mean | sd | CPU time per run | machines | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    earlier = earlier or {}
    for arch, row in rows.items():
        tried = [n for n in sorted(earlier) if row in earlier[n]]
        lines += [fpn_line(arch, str(n), row, earlier[n][row], replaced=True) for n in tried]
        current = str(tried[-1] + 1) if tried else "0" if arch in TABLE1_SETTINGS else "v3"
        lines.append(fpn_line(arch, current, row, records.get(row, {})))
    return "\n".join(lines)


def fpn_line(arch: str, setting: str, row: str, runs: dict, replaced: bool = False) -> str:
    if not runs:
        return f"| {arch} | {setting} | {row} | - | - | - | - | - | open: no run yet |"
    aps = [runs[s]["metrics"]["AP"] for s in sorted(runs)]
    cpus = [runs[s]["cpu_s"] / 60 for s in sorted(runs) if runs[s].get("cpu_s")]
    sd = f"{statistics.stdev(aps):.2f}" if len(aps) > 1 else "-"
    cpu = "not recorded" if not cpus else f"{min(cpus):.1f} min"
    cpu = cpu if not cpus or f"{max(cpus):.1f}" == f"{min(cpus):.1f}" else f"{min(cpus):.1f}-{max(cpus):.1f} min"
    hosts = {json.dumps(runs[s].get("host"), sort_keys=True) for s in sorted(runs)}
    machines = "not recorded" if hosts == {"null"} else str(len(hosts))
    verdict = setting_kept(runs, cpu_limit(arch, setting))
    if replaced and verdict.startswith("open"):
        verdict = f"replaced after {len(aps)} seed{'s' * (len(aps) > 1)} (docs/breadth.md says why)"
    return (f"| {arch} | {setting} | {row} | {', '.join(f'{s}: {a:.2f}' for s, a in zip(sorted(runs), aps))} | "
            f"{statistics.mean(aps):.2f} | {sd} | {cpu} | {machines} | {verdict} |")


def cost_table(folder: Path) -> str:
    """Parameters, GFLOPs and time ratios to FPN per detector, from ``table1_<arch>_256_fp32.json``."""
    lines = ["| detector | neck | params (M) | GFLOPs | inference vs FPN | training step vs FPN | config profiled |",
             "|---|---|---|---|---|---|---|"]
    command = machine = None
    for arch in DETECTORS:
        path = folder / f"table1_{arch}_256_fp32.json"
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        config = record["command"].split("--config ")[1].split()[0]
        command = command or record["command"].replace(config, "C").split(" --out")[0]
        machine = machine or (f"{record['cpu']}, {record['cpu_count']} cores, native bf16: "
                              f"{'yes' if record.get('native_bf16_cpu') else 'no'}, {record['date'][:10]}")
        for row in record["rows"]:
            ratio = row["ratio"]
            lines.append(f"| {arch} | {row['neck']} | {row['detector_params_m']:.2f} | {row['detector_gflops']:.2f} | "
                         f"{ratio['detector_ms']:.2f}x | {ratio['train_step_ms']:.2f}x | `{config}` |")
    if command is None:
        return ""
    return (f"`{command}` (records `benchmarks/results/profile/table1_<detector>_256_fp32.json`), C = the config "
            "of the detector's Table 1 setting: v3's for Faster R-CNN, the `config.yaml` of the `<arch>_fpn` run that "
            "`benchmarks/run.py table1` writes for the others (the neck is swapped by `--necks`). resnet_tiny at 256 "
            f"px, batch 2, one thread, CPU time of the process; {machine}, with the benchmark runs paused while it "
            "measured. Ratios of the whole detector: the heads' share of the time differs per detector, so the same "
            "neck costs a different fraction.\n\n" + "\n".join(lines))


def earlier_settings(folder: Path) -> dict[int, dict]:
    """``{N: records}`` of the replaced settings in ``folder/table1_setting<N>/``."""
    return {int(d.name.removeprefix("table1_setting")): fixed_seeds(load_records(d), BREADTH_SEEDS)
            for d in folder.glob("table1_setting*") if d.name.removeprefix("table1_setting").isdigit()}


def breadth_section(folder: Path = RESULTS / "v3") -> str:
    """Issue 36's section: Table 1 per detector (step 1, then the necks with their cost) and Table 4 on
    resnet_tiny34."""
    start, end = markers("breadth")
    records = fixed_seeds(load_records(folder), BREADTH_SEEDS)
    out = [start, "", "### Table 1, step 1: each detector's setting, from FPN alone", "",
           ("`benchmarks/run.py table1 --protocol v3 --variants <arch>_fpn --only-seed S`, S = 0-3. A detector's "
            f"necks are trained once its setting is kept: FPN's AP sd <= {SD_LIMIT:.1f} over seeds 0-3 and no run "
            f"over {CPU_LIMIT_S / 60:.0f} min of CPU time ({RAISED_CPU_LIMIT_S / 60:.0f} for RetinaNet's settings from 4 "
            "and Mask R-CNN's from 2: budget extension 2 in docs/breadth.md; Faster R-CNN's setting is v3). Each "
            "setting tried has a line; its records are in `benchmarks/results/v3/table1_setting<N>/` once replaced. "
            "A run stopped before its end has no record (Mask R-CNN's setting 0: docs/breadth.md)."), "",
           fpn_steps(records, {arch: f"{prefix}fpn" for arch, prefix in DETECTORS.items()}, earlier_settings(folder))]
    for arch, prefix in DETECTORS.items():
        rows = [f"{prefix}{n}" for n in BREADTH_NECKS]
        present = [r for r in rows if r in records]
        if len(present) < 2 or rows[0] not in present:
            continue
        out += ["", f"### Table 1: necks in {arch} (box AP)", "",
                ("`benchmarks/run.py table1 --protocol v3 --seeds 4`" if prefix else "v3's own rows (seeds 0-3)")
                + f"; difference to **{rows[0]}**, paired by seed, with the 95 % t-interval.", "",
                paired_table(records, present, reference=rows[0])]
        if rows[1] in present and rows[2] in present:  # does ISG add to CSG in this detector?
            out += ["", f"Does ISG add to CSG in {arch}? DSIC (ISG + CSG) against CSG alone, paired by seed:", "",
                    paired_table(records, [rows[2], rows[1]], reference=rows[2])]
        masks = mask_records(records, present)
        if arch == "mask_rcnn" and sum(bool(m) for m in masks.values()) >= 2:
            out += ["", "### Table 1: necks in mask_rcnn (mask AP)", "", paired_table(masks, present, reference=rows[0])]
    cost = cost_table(RESULTS / "profile")
    if cost:
        out += ["", "### What the necks cost in each detector", "", cost]
    out += ["", "### Table 4 on resnet_tiny34 (ISG has 2, 3, 5 and 2 former blocks to choose from)", "",
            ("`benchmarks/run.py table4_tiny34 --protocol v3 --reference r34_fpn --seeds 4`; FPN first, kept by "
             "the same rule; then ISG, CSG and DSIC as shipped (n = 4, hypotheses in docs/breadth.md)."), "",
            fpn_steps(records, {"faster_rcnn, resnet_tiny34": "r34_fpn"})]
    present = [r for r in TINY34_ROWS if r in records]
    if "r34_fpn" in present and len(present) >= 2:
        out += ["", paired_table(records, present, reference="r34_fpn")]
    if {"r34_csg_gatelr01", "r34_dsic_gatelr01"} <= set(present):
        out += ["", "DSIC against CSG (does ISG add to CSG when it has blocks to choose?):", "",
                paired_table(records, ["r34_csg_gatelr01", "r34_dsic_gatelr01"], reference="r34_csg_gatelr01")]
    moved = cross_machine_table(folder / "cross_machine", records)
    if moved:
        out += ["", "### The same run on two machines", "", moved]
    return "\n".join(out + ["", end])


def host_name(record: dict) -> str:
    host = record.get("host") or {}
    return f"{host.get('cpu', 'not recorded')}, native bf16: {'yes' if host.get('bf16_native') else 'no'}"


def cross_machine_table(folder: Path, records: dict) -> str:
    """A run kept from an earlier machine (``folder``: same row, seed and config as one in ``records``) beside
    the run of the step's own machine: how far the same run moves between machines."""
    earlier = load_records(folder) if folder.is_dir() else {}
    lines = ["| row | seed | AP, earlier machine | AP, this step's machine | difference | machines (earlier / this) |",
             "|---|---|---|---|---|---|"]
    for row, runs in sorted(earlier.items()):
        for seed, old in sorted(runs.items()):
            new = records.get(row, {}).get(seed)
            ap = old["metrics"]["AP"]
            now = f"{new['metrics']['AP']:.2f}" if new else "not run yet"
            diff = f"{new['metrics']['AP'] - ap:+.2f}" if new else "-"
            hosts = host_name(old) + " / " + (host_name(new) if new else "-")
            lines.append(f"| {row} | {seed} | {ap:.2f} | {now} | {diff} | {hosts} |")
    if len(lines) == 2:
        return ""
    return ("`benchmarks/results/v3/cross_machine/`: runs whose step moved to another machine, trained again there "
            "with the same config and seed so that each step's pairs come from one machine.\n\n" + "\n".join(lines))


def bf16_section(folder: Path = RESULTS / "v3" / "bf16") -> str:
    """Issue 38's bf16 training pairs (docs/precision.md): per neck, bf16 - fp32 AP paired by seed, and the
    CPU time per iteration of each row."""
    start, end = markers("bf16")
    records = load_records(folder) if folder.is_dir() else {}
    if not records:
        return f"{start}\n\nNo bf16 training run is recorded yet.\n\n{end}"
    out = [start, ""]
    for ref in ("fpn", "dsic_gatelr01"):
        rows = [r for r in (ref, f"{ref}_bf16") if r in records]
        if len(rows) == 2:
            out += [paired_table(records, rows, reference=ref), ""]
    lines = ["| row | seeds | CPU s per iteration (one thread) | hosts |", "|---|---|---|---|"]
    for row in ("fpn", "fpn_bf16", "dsic_gatelr01", "dsic_gatelr01_bf16"):
        runs = records.get(row, {})
        per_it = [r["cpu_s"] / r["iterations"] for r in runs.values() if r.get("cpu_s") and r.get("iterations")]
        hosts = {(r.get("host") or {}).get("cpu", "?") + (" bf16" if (r.get("host") or {}).get("bf16_native") else "")
                 for r in runs.values()}
        if runs:
            lines.append(f"| {row} | {','.join(map(str, sorted(runs)))} | "
                         f"{statistics.mean(per_it):.2f} | {', '.join(sorted(hosts))} |" if per_it else
                         f"| {row} | {','.join(map(str, sorted(runs)))} | - | {', '.join(sorted(hosts))} |")
    return "\n".join(out + lines + ["", end])


def sections() -> dict[Path, dict[str, str]]:
    """Every generated section, by the file that holds it."""
    return {ROOT / "BENCHMARKS.md": {"headlines": headlines(), "v3": section(RESULTS / "v3", "v3", earlier=RESULTS / "v2"),
                                     "breadth": breadth_section(), "bf16": bf16_section(),
                                     "v7": section(RESULTS / "v7", "v7")},
            ROOT / "benchmarks" / "PROTOCOLS.md": {"v2": section(RESULTS / "v2", "v2", HISTORY_TABLES, probe=True)}}


def replace_sections(doc: str, texts: dict[str, str], by: str, where: Path) -> str:
    """``doc`` with each named section between its markers replaced by its text."""
    for name, text in texts.items():
        start, end = markers(name, by)
        if start not in doc or end not in doc:
            raise SystemExit(f"{where}: the markers {start!r} and {end!r} are missing")
        head, rest = doc.split(start, 1)
        doc = head + text + rest.split(end, 1)[1]
    return doc


def write(files: dict[Path, dict[str, str]], by: str, argv=None) -> int:
    """The command line of this report and of the routing study's: write, --print NAME or --check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [name for texts in files.values() for name in texts]
    parser.add_argument("--print", choices=names, default=None, help="print one section instead of writing")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file differs from its records")
    args = parser.parse_args(argv)
    stale = []
    for path, texts in files.items():
        if args.print:
            if args.print in texts:
                print(texts[args.print])
            continue
        doc = path.read_text()
        new = replace_sections(doc, texts, by, path)
        if args.check:
            stale += [path] if new != doc else []
        elif new != doc:
            path.write_text(new)
            print(f"[dsic] {path.relative_to(ROOT)}: regenerated from the records", flush=True)
    for path in stale:
        print(f"[dsic] {path.relative_to(ROOT)} differs from its records: run {by}", file=sys.stderr)
    return 1 if stale else 0


def main(argv=None) -> int:
    return write(sections(), "benchmarks/report.py", argv)


if __name__ == "__main__":
    sys.exit(main())
