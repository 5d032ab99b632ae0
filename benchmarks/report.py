"""Regenerate BENCHMARKS.md's protocol sections (v2 to v7) from the committed run records.

    .venv/bin/python benchmarks/report.py                   # rewrites every section between its markers
    .venv/bin/python benchmarks/report.py --protocol v3 --print   # prints one section instead

Everything in a section is computed from ``benchmarks/results/<protocol>/*.json`` (one record per
run, :mod:`dsic.results`); nothing is typed by hand, so a new machine regenerates the same text.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsic.protocol import PROTOCOLS as ALL_PROTOCOLS
from dsic.protocol import get_protocol
from dsic.results import format_ci, load_records, mean_ci, paired_table

PROTOCOLS = tuple(p for p in ALL_PROTOCOLS if p != "v1")  # v1 is history, written by hand


def markers(protocol: str) -> tuple[str, str]:
    return f"<!-- {protocol} results start (benchmarks/report.py) -->", f"<!-- {protocol} results end -->"


GATE_ROWS = ["dsic_control_running", "dsic_control_layer", "dsic_path", "dsic_gatelr01", "dsic_gatelr10",
             "dsic_signal01_gatelr01", "dsic_gatelr10_layer", "dsic_path_gatelr01",
             "dsic_path_layer_gatelr01", "dsic_path_running_gatelr01"]
GOAL_W_DIFF, GOAL_EFFECT = 0.10, 2  # issue 10's gate goal: a W entry this far apart, with this effect size
TABLES = {
    "Table 4 analog: ISG / CSG ablation": ("table4", ["fpn", "isg", "csg", "dsic", "isg_gatelr01", "csg_gatelr01",
                                                      "dsic_gatelr01"], "fpn"),
    "Table 2 analog: necks compared": ("table2", ["fpn", "fcfpn", "panet", "fpg", "fpt", "dsic", "dsic_gatelr01"],
                                       "fpn"),
    "DSIC against dense ungated connections (FC-FPN)": ("table2", ["fcfpn", "dsic", "dsic_gatelr01", "dsic_path"],
                                                        "fcfpn"),
    "Table 5 analog: gate modes (ISG and CSG alike)": ("table5", ["fpn", "dsic_softmax", "dsic_sigmoid", "dsic",
                                                                  "dsic_softmax_gatelr01", "dsic_sigmoid_gatelr01",
                                                                  "dsic_gatelr01"], "fpn"),
    "Gate modes at the shipped gate lr, against tanh (dsic_gatelr01)": (
        "table5", ["dsic_gatelr01", "dsic_softmax_gatelr01", "dsic_sigmoid_gatelr01"], "dsic_gatelr01"),
    "Routing by image: scenes of different scales": ("scenes", ["fpn", "dsic_gatelr01", "fcfpn", "csg_gatelr01"],
                                                     "fpn"),
    "Scenes: the gated necks against dense ungated connections (FC-FPN)": (
        "scenes", ["fcfpn", "dsic_gatelr01", "csg_gatelr01"], "fcfpn"),
    "Scenes: gate designs against DSIC as shipped (dsic_gatelr01)": (
        "scenes", ["dsic_gatelr01", "dsic_path_gatelr01", "dsic_path_head1_gatelr01", "dsic_path_pathlr03_gatelr01",
                   "dsic_path_pathlr03_leaky_gatelr01", "dsic_path_leaky_gatelr01", "dsic_pathdesc_head1_gatelr01",
                   "dsic_pathstd_head1_gatelr01", "dsic_gatelr01_gateft_path", "dsic_path_running_gatelr01",
                   "dsic_pathstats_gatelr01", "dsic_pathstats_pathlr03_gatelr01", "dsic_pathstats_pathlr1_gatelr01",
                   "dsic_gatelr01_gateft_pathstats01", "dsic_gatelr01_gateft_pathstats03",
                   "dsic_gatelr01_gateft_pathstats02", "dsic_gatelr01_gateft_pathstats01_long",
                   "dsic_gatelr01_gateft_pathstd", "dsic_gatelr01_gateft_pathscale",
                   "dsic_gatelr01_gateft_pathscale_head05", "dsic_gatelr01_gateft_pathscale_fitted",
                   "dsic_gatelr01_gateft_pathpresence_fitted", "dsic_gatelr01_gateft_pathcells_fitted"],
        "dsic_gatelr01"),
    "How CSG's gates learn": ("gates", ["fpn", "dsic", *GATE_ROWS], "fpn"),
    "Gate designs against DSIC with one lr for everything (dsic)": ("gates", ["dsic", *GATE_ROWS], "dsic"),
}


# comparisons given seeds beyond the protocol's fixed ones, after its tables were made (docs/design.md
# "v3's headline comparisons at 8 seeds"); the protocol's own tables keep its fixed seeds
EXTRA_SEEDS = {
    "v3": {"title": "v3's headline comparisons at seeds 0-7", "seeds": 8,
           "where": "on a later machine (one thread, two runs at a time)", "tables": [
               ("fpn", ["fpn", "fcfpn", "dsic_gatelr01"]), ("fcfpn", ["fcfpn", "dsic_gatelr01"]),
               ("dsic_gatelr01", ["dsic_gatelr01", "dsic_path_gatelr01"])]},
    # docs/design.md, "v7's headline comparisons at 6 seeds"
    "v7": {"title": "v7's headline comparisons at seeds 0-5", "seeds": 6,
           "where": "on the machine of seeds 0-3 (one thread, two runs at a time)", "tables": [
               ("fpn", ["fpn", "fcfpn", "dsic_gatelr01"]), ("fcfpn", ["fcfpn", "dsic_gatelr01"])]},
}


def fixed_seeds(records: dict, seeds: int) -> dict:
    """``records`` without the runs of seeds >= ``seeds`` (rows left with no run dropped)."""
    kept = {row: {s: r for s, r in runs.items() if s < seeds} for row, runs in records.items()}
    return {row: runs for row, runs in kept.items() if runs}


def extra_seeds(records: dict, protocol: str) -> list[str]:
    """The EXTRA_SEEDS tables of ``protocol`` (empty until some run beyond its fixed seeds is recorded)."""
    extra = EXTRA_SEEDS.get(protocol)
    fixed = get_protocol(protocol).seeds
    if not extra or not any(s >= fixed for runs in records.values() for s in runs):
        return []
    records = fixed_seeds(records, extra["seeds"])
    added = f"{fixed}-{extra['seeds'] - 1}"
    out = ["", f"### {extra['title']}", "",
           (f"Seeds {added} were added after the tables above (fixed at seeds 0-{fixed - 1}), "
            f"n fixed at {extra['seeds']} before their runs (docs/design.md). Each row's difference to the first, "
            f"paired by seed, with the 95 % t-interval; seeds {added} were run {extra['where']}.")]
    for reference, rows in extra["tables"]:
        present = [r for r in rows if r in records]
        if reference in present and len(present) > 1:
            out += ["", paired_table(records, present, reference=reference)]
    return out


# rows given seeds beyond the protocol's fixed ones on a later machine, paired with reference rows trained
# again there (<results>/rerun) for those seeds (docs/design.md, "Tables 4 and 5 at 8 seeds on v3")
RERUN_SEEDS = {
    "v3": {"title": "v3's Tables 4 and 5 at seeds 0-7", "seeds": 8, "again": ["fpn", "dsic_gatelr01"], "tables": [
        ("fpn", ["fpn", "isg_gatelr01", "csg_gatelr01", "dsic_gatelr01"]),
        ("dsic_gatelr01", ["dsic_gatelr01", "isg_gatelr01", "csg_gatelr01", "dsic_sigmoid_gatelr01",
                           "dsic_softmax_gatelr01"])]},
}


def with_reruns(records: dict, again: dict, rows: list[str], first_seed: int) -> dict:
    """``records`` with the runs of ``rows`` at seeds >= ``first_seed`` taken from ``again`` (the same
    runs trained again on a later machine); such a seed without a run there is dropped, so that a
    pair never mixes machines."""
    out = {row: dict(runs) for row, runs in records.items()}
    for row in rows:
        kept = {s: r for s, r in out.get(row, {}).items() if s < first_seed}
        kept.update({s: r for s, r in again.get(row, {}).items() if s >= first_seed})
        out[row] = kept
    return {row: runs for row, runs in out.items() if runs}


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
            f"(docs/design.md). At seeds {added}, {' and '.join(extra['again'])} are the runs trained again on "
            f"the new rows' machine (`rerun/`), so every pair comes from one machine. Each row's difference to the "
            "first, paired by seed, with the 95 % t-interval.")]
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


@functools.cache
def _bench_run():
    """benchmarks/run.py as a module, loaded once."""
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def defined_rows(table: str, protocol: str) -> set[str]:
    """The rows ``benchmarks/run.py <table> --protocol <protocol>`` trains."""
    return set(_bench_run().variants(table, protocol))


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
    """v3's rule (dsic.protocol): adopted if FPN's sd is below v2's."""
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


def groups_caption(split: str, what: str) -> str:
    """The text above an incentive table measured on a dataset split's own images (benchmarks/train_groups.py)."""
    return (f"The same, on {what} instead of the probe set (`benchmarks/train_groups.py <data> --split {split} "
            "--out <groups>`: 50 images whose objects all have sqrt(area) < 32 px, 50 all >= 96 px, as the probe's, "
            "and 50 others; then `benchmarks/routing_incentive.py <run> --probe <groups> --images 50 --out "
            f"benchmarks/results/<protocol>/incentive_{split}/<run>.json`).")


def _analysis_records(folder: Path) -> list[tuple[str, dict]]:
    """(run, JSON) of each ``<folder>/<run>.json`` of a per-run analysis, by run name; [] without the folder."""
    return [(path.stem, json.loads(path.read_text())) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def _analysis_table(folder: Path, caption: str, header: str, row) -> str:
    """The table of a per-run analysis: ``caption``, then ``header`` (a markdown row; the separator
    follows from its columns) and ``row(record)`` (the cells after the run's) for each
    :func:`_analysis_records` entry; "" when there is none."""
    records = _analysis_records(folder)
    if not records:
        return ""
    separator = "|" + "---|" * (header.count("|") - 1)
    return "\n".join(["", caption, "", header, separator, *(f"| {stem} | {row(r)} |" for stem, r in records)])


def incentive_table(folder: Path, caption: str | None = None) -> str:
    """From ``<results>/incentive/*.json`` (benchmarks/routing_incentive.py): does the loss pull W
    differently for small- and large-object images? ``caption`` replaces the default text above it."""
    def row(g):
        opposite = ", ".join(f"({i},{k}) {g['G_effect_sizes'][i][k]:.2f}" for i, k in g["G_opposite"]) or "none"
        into = " / ".join(f"{max(column):.2f}" for column in zip(*g["G_effect_sizes"]))  # per output level k
        return (f"{g['G_max_diff']:.3f} ({g['G_max_diff_at'][0]},{g['G_max_diff_at'][1]}) | "
                f"{g['G_effect_size']:.2f} | {into} | {opposite} | {min(g['images'].values())}")
    return _analysis_table(folder, caption or (
        "Does the loss ask for routing by image? For each probe image, G[i, k] = sum_c dL/d "
        "act(w_ik[c]), the slope of its training loss when path i -> k opens by the same amount in "
        "every channel (`dsic.models.incentive`; `benchmarks/routing_incentive.py <run> --probe <data> "
        "--images 50 --out benchmarks/results/<protocol>/incentive/<run>.json`). Where the small and "
        "large groups' mean G differ, or have opposite signs, no fixed W is best for both."),
        ("| run | dL/dW max abs(small − large) (entry i,k) | effect size | largest effect size into "
         "P2 / P3 / P4 / P5 | entries pulled opposite ways (effect size) | images per group |"), row)


def _levels(values: list, fmt: str) -> str:
    """One value per output level, P2 / P3 / ..."""
    return " / ".join(format(v, fmt) for v in values)


def _mean(values: list) -> float:
    return sum(values) / len(values) if values else float("nan")


def control_inputs_table(folder: Path) -> str:
    """From ``<results>/control_inputs/*.json`` (benchmarks/control_inputs.py): do the control units'
    descriptor and hidden layer tell small- from large-object images?"""
    def row(c):
        stats = [_levels(c[key], ".2f") if key in c else "-" for key in ("statistics_accuracy", "statistics_separation")]
        return (f"{_levels(c['descriptor_accuracy'], '.2f')} | {_levels(c['hidden_accuracy'], '.2f')} | "
                f"{_levels(c['hidden_alive'], '.2f')} | {_levels(c['hidden_separation'], '.2f')} | "
                f"{stats[0]} | {stats[1]}")
    return _analysis_table(folder, (
        "Do the control units see the image's scale? Per output level, how well the channel "
        "control unit's descriptor (GAP + GMP of its paths), its hidden layer and the 3n scale statistics "
        "of its magnitude maps (`scale_statistics`, what `csg_path_gate: statistics` reads; '-': not "
        "recorded) tell the small- from the "
        "large-object probe images (5-fold nearest-centroid accuracy, chance 0.50), and the largest "
        "effect size of a single hidden unit or statistic (`dsic.models.control_inputs`; `benchmarks/control_inputs.py "
        "<run> --probe <data> --images 50 --out benchmarks/results/<protocol>/control_inputs/<run>.json`)."),
        ("| run | descriptor accuracy (P2 / P3 / P4 / P5) | hidden-layer accuracy | hidden units alive | "
         "best hidden unit's effect size | scale statistics' accuracy | best statistic's effect size |"), row)


def path_readout_table(folder: Path) -> str:
    """From ``<results>/path_readout/*.json`` (benchmarks/path_readout.py): at W's entry that differs
    most between the small and large groups, how much the path logits and the channel logits route."""
    def row(r):
        diff = r["W_diff"]
        i, k = max(((i, k) for i in range(len(diff)) for k in range(len(diff[i]))), key=lambda e: abs(diff[e[0]][e[1]]))
        return (f"({i},{k}) | {diff[i][k]:+.3f} | {r['W_diff_path_only'][i][k]:+.3f} | "
                f"{r['W_diff_channels_only'][i][k]:+.3f} | {r['p_diff'][i][k]:+.3f} ({r['p_effect'][i][k]:.2f}) | "
                f"{r['W_slope'][i][k]:.2f}")
    return _analysis_table(folder, (
        "Where does W's routing come from? At the W entry that differs most between the small and "
        "large probe groups: the difference with only the path logits following the image (channel "
        "logits at their probe mean), with only the channel logits following it, the path logit's own "
        "difference, and dW/dp, the W a unit of path logit buys (`dsic.models.path_readout`; "
        "`benchmarks/path_readout.py <run> --probe <data> --images 50 --out "
        "benchmarks/results/<protocol>/path_readout/<run>.json`)."),
        ("| run | W entry (i,k) | W small − large | path logits alone | channel logits alone | "
         "path logit small − large (effect size) | dW/dp |"), row)


def static_routing_table(folder: Path) -> str:
    """From ``<results>/static_routing/*.json`` (benchmarks/static_routing.py): a routed run's AP as
    trained and with its path logits frozen at their bias."""
    def row(r):
        routed, static = r["routed"], r["static"]
        return (f"{routed['AP']:.2f} | {static['AP']:.2f} | {r['static_minus_routed']:+.2f} | "
                f"{routed['APs']:.2f} / {static['APs']:.2f} | {routed['APl']:.2f} / {static['APl']:.2f}")
    return _analysis_table(folder, (
        "Is routing's AP cost paid at inference? Each run evaluated on the validation set as trained "
        "and with every path layer's weights set to zero, so each path logit is its bias and W no longer "
        "follows the image through them (`dsic.models.static_routing`; `benchmarks/static_routing.py "
        "<run> --out benchmarks/results/<protocol>/static_routing/<run>.json`)."),
        ("| run | AP as trained | AP, path logits frozen | frozen − trained | APs trained / frozen | "
         "APl trained / frozen |"), row)


def scale_oracle_table(folder: Path) -> str:
    """From ``<results>/scale_oracle/*.json`` (benchmarks/scale_oracle.py): how far W routes by scale
    when path logits are fed each image's probe group and trained alone on a frozen network."""
    def row(r):
        p = r["gate_probe"]
        i, k = p["W_max_diff_at"]
        offsets = r["offsets"][k][i]  # the offsets of W's most different entry, path i into level k
        trained = r["groups_trained"]
        return (f"{r['lr_mult']:g} | {p['W_max_diff']:.3f} ({i},{k}) | {p['W_effect_size']:.2f} | "
                f"{'yes' if meets_goal(p) else 'no'} | {offsets[0] - offsets[1]:+.3f} | "
                f"{r['loss_first100']:.3f} -> {r['loss_last100']:.3f} | "
                f"{' / '.join(str(trained.get(g, 0)) for g in ('small', 'large', 'mixed'))}")
    return _analysis_table(folder, (
        "How deep does the loss want the routing by scale? Path logits fed each training image's probe "
        "group (small / large / mixed, from its boxes) as a one-hot, trained alone on the run's frozen "
        "weights for the protocol's schedule, then the probe groups with their own group set "
        "(`dsic.models.scale_oracle`; `benchmarks/scale_oracle.py --protocol <p> --seed <s>`). An "
        "instrument with a perfect scale reader, not a model: it needs targets, so it has no AP."),
        ("| start | path lr / schedule's | W max abs(small − large) (entry i,k) | effect size | gate goal | "
         "that path's logit, small − large | training loss, first -> last 100 iterations | "
         "training images small / large / mixed |"), row)


def scale_head_table(folder: Path) -> str:
    """From ``<results>/scale_head/*.json`` (benchmarks/scale_head.py): how well the heads of
    ``csg_path_gate: scale`` read the probe groups, and how their run's losses moved."""
    def row(r):
        q = r["probe"]["mean_q"]
        small, large = (r["order"].index(g) for g in ("small", "large"))
        return (f"{_levels(r['probe']['accuracy'], '.2f')} | {_levels([v[small] for v in q['small']], '.2f')} | "
                f"{_levels([v[large] for v in q['large']], '.2f')} | {r['scale_first100']:.3f} -> {r['scale_last100']:.3f} | "
                f"{r['detection_first100']:.3f} -> {r['detection_last100']:.3f}")
    return _analysis_table(folder, (
        "How well the scale heads read the image (`csg_path_gate: scale`, `dsic.models.scale_supervision`; "
        "`benchmarks/scale_head.py --protocol <p> --row <row> --seed <s>`): per output level, the fraction "
        "of probe images (50 per group) whose group the head names, its mean probability of \"small\" on "
        "all-small images and of \"large\" on all-large ones, and the run's `loss_scale` and detection loss "
        "(the other losses' sum), each the mean of the first and the last 100 iterations. The same "
        "probabilities for every image, the training set's group shares (v7: 12 / 18 / 70 %), give a "
        "`loss_scale` of about 0.81."),
        ("| run | probe accuracy (P2 / P3 / P4 / P5) | q(small), small images | q(large), large images | "
         "loss_scale, first -> last 100 | detection loss, first -> last 100 |"), row)


def scale_head_fit_table(folder: Path) -> str:
    """From ``<results>/scale_head_fit/*.json`` (benchmarks/fit_scale_head.py): the scale heads fitted
    once on a frozen network, per level: lambda, held-out and training fit, and the probe's reading."""
    def row(r):
        levels = r["levels"]
        small, large = (r["order"].index(g) for g in ("small", "large"))
        held = [next(s for s in lv["scores"] if s["l2"] == lv["l2"]) for lv in levels]
        return (f"{_levels([lv['l2'] for lv in levels], 'g')} | {_levels([h['held_out_ce'] for h in held], '.2f')} | "
                f"{_levels([h['held_out_accuracy'] for h in held], '.2f')} | "
                f"{_levels([lv['probe']['small']['accuracy'] for lv in levels], '.2f')} | "
                f"{_levels([lv['probe']['large']['accuracy'] for lv in levels], '.2f')} | "
                f"{_levels([lv['probe']['small']['mean_q'][small] for lv in levels], '.2f')} | "
                f"{_levels([lv['probe']['large']['mean_q'][large] for lv in levels], '.2f')} | {r['prior_ce']:.2f}")
    return _analysis_table(folder, (
        "The scale heads fitted once, before the routing learns (`dsic.models.scale_head_fit`; "
        "`OMP_NUM_THREADS=1 python benchmarks/fit_scale_head.py --protocol <p> --seed <s>`): multinomial "
        "logistic regression on the frozen network's standardised descriptors of every training image, "
        "lambda chosen by the cross-entropy of the last 20 % (fitted on the first 80 %), then fitted on "
        "all. Per output level: lambda, the held-out cross-entropy and accuracy (three groups) at it, "
        "the share of the probe's small-object (large-object) images named small (large), and the mean "
        "q(small) on small-object images and q(large) on large-object ones; last, the cross-entropy of "
        "the training set's group shares given to every image."),
        ("| fit | lambda (P2 / P3 / P4 / P5) | held-out CE | held-out accuracy | probe small named small | "
         "probe large named large | q(small), small images | q(large), large images | prior CE |"), row)


def load_reruns(results: Path) -> dict:
    """The runs trained again on a later machine (``<results>/rerun/``), by row and seed; {} if none."""
    folder = results / "rerun"
    return load_records(folder) if folder.is_dir() else {}


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
                       "benchmarks/results/<p>/rerun`): the spread of one seed between machines."), "",
                       "| row | seed | commits (recorded / again) | AP recorded | AP again | again − recorded |",
                       "|---|---|---|---|---|---|", *lines])


# rows learned second that started from START_ROW trained again on their own machine (<results>/rerun):
# their AP is paired against those networks, not against the recorded ones from an earlier machine
START_ROW = "dsic_gatelr01"
STARTED_FROM_RERUN = ("dsic_gatelr01_gateft_pathstd", "dsic_gatelr01_gateft_pathscale",
                      "dsic_gatelr01_gateft_pathscale_head05", "dsic_gatelr01_gateft_pathscale_fitted",
                      "dsic_gatelr01_gateft_pathpresence_fitted", "dsic_gatelr01_gateft_pathcells_fitted")


def started_from_table(again: dict, records: dict) -> str:
    """Rows learned second on networks trained again on the same machine (:data:`STARTED_FROM_RERUN`,
    their starts in ``again``, from :func:`load_reruns`): every seed's AP beside the network it
    started from, and the mean paired difference."""
    start = again.get(START_ROW, {})
    lines = []
    for row in STARTED_FROM_RERUN:
        pairs = [(seed, rec["metrics"]["AP"], start[seed]["metrics"]["AP"])
                 for seed, rec in sorted(records.get(row, {}).items()) if seed in start]
        if pairs:
            seeds = "; ".join(f"{seed}: {ap:.2f} vs {ap0:.2f} ({ap - ap0:+.2f})" for seed, ap, ap0 in pairs)
            mean = format_ci(*mean_ci([ap - ap0 for _, ap, ap0 in pairs]))
            lines.append(f"| {row} | {START_ROW} (trained again) | {seeds} | {mean} |")
    if not lines:
        return ""
    return "\n".join(["", (f"Rows learned second, paired against the very networks they started from (`{START_ROW}` "
        "trained again on the same machine, `rerun/`): AP per seed, "
        "and the mean paired difference with its 95 % t-interval (from 2 seeds on)."), "",
        "| row | started from | seed: AP vs the start's (difference) | mean difference |", "|---|---|---|---|", *lines])


def unit_dynamics_table(folder: Path, early: int = 200, window: int = 50) -> str:
    """From ``<results>/unit_dynamics/*.json`` (benchmarks/unit_dynamics.py): how each control unit's
    hidden units live through training, and how much gradient reaches them through the path logits."""
    def row(d):
        units = d["per_iteration"]
        alive = [u["alive"] for u in units]
        lowest = [min(_mean(a[s:s + window]) for s in range(0, len(a), window)) for a in alive]
        ratios = [[p / c if c > 0 else 0.0 for p, c in zip(u["grad_path"], u["grad_channel"])] for u in units]
        return (f"{d['iterations']} | {_levels([_mean(a[:window]) for a in alive], '.2f')} | "
                f"{_levels([_mean(a[-window:]) for a in alive], '.2f')} | {_levels(lowest, '.2f')} | "
                f"{_levels([_mean(u['preact'][:window]) for u in units], '.2f')} | "
                f"{_levels([_mean(u['preact'][-window:]) for u in units], '.2f')} | "
                f"{_levels([_mean(r[:early]) for r in ratios], '.2f')} | {_levels([_mean(r) for r in ratios], '.2f')}")
    return _analysis_table(folder, (
        "When do the control units' hidden units die, and through which branch does their gradient come? "
        "Per output level, the fraction of the channel unit's hidden units > 0 on some image of the training "
        "batch, their mean pre-activation, and the norm of the loss's gradient reaching the hidden layer "
        "through the path-logit layer over that through the channel layer (0 without path logits), at every "
        "training iteration "
        "(`dsic.models.unit_dynamics`; `benchmarks/unit_dynamics.py --protocol <protocol> --row <row> "
        "--seed <seed>`, which trains the row as benchmarks/run.py does)."),
        (f"| run | iterations | alive, first {window} (P2 / P3 / P4 / P5) | alive, last {window} | "
         f"lowest {window}-iteration mean | mean pre-activation, first {window} | the same, last {window} | "
         f"path / channel gradient, iterations 1-{early} | the same, whole run |"), row)


def unit_drift_table(folder: Path) -> str:
    """From ``<results>/unit_drift/*.json`` (benchmarks/unit_drift.py): did the hidden units die by
    their own weights or by their inputs?"""
    def row(d):
        norms = " / ".join(f"{a:.0f} → {b:.0f}" for a, b in zip(d["descriptor_norm_init"], d["descriptor_norm_final"]))
        return (f"{norms} | {_levels(d['alive_init_init'], '.2f')} | "
                f"{_levels(d['alive_init_final'], '.2f')} | {_levels(d['alive_final_final'], '.2f')} | "
                f"{_levels([100 * v for v in d['weight_change']], '.1f')} % | {_levels(d['descriptor_spread'], '.2f')}")
    return _analysis_table(folder, (
        "Did the hidden units die by their own weights or by their inputs? The fraction of each channel "
        "unit's hidden units > 0 on some probe image (20 per group), with the initial or trained weights of its "
        "first layer on the initial or trained model's descriptors, that layer's relative weight change, and how much the "
        "images' trained descriptors differ (|std over images| / |mean|) "
        "(`dsic.models.unit_drift`; `benchmarks/unit_drift.py <run> --probe <data> --images 20 --out "
        "benchmarks/results/<protocol>/unit_drift/<run>.json`)."),
        ("| run | descriptor norm, initial → trained (P2 / P3 / P4 / P5) | alive: initial weights, initial inputs | "
         "initial weights, trained inputs | trained weights, trained inputs | weight change | descriptor spread over images |"),
        row)


def section(results: Path, protocol: str = "v2", earlier: Path | None = None) -> str:
    everything = load_records(results)
    again = load_reruns(results)
    seeds = get_protocol(protocol).seeds
    records = fixed_seeds(everything, seeds)
    start, end = markers(protocol)
    before = load_records(earlier) if earlier is not None and earlier.is_dir() else None
    decides = " (decides the protocol)" if protocol in ("v2", "v3", "v7") else ""
    out = [start]
    if not records:
        return "\n".join([start, "", f"No run of protocol {protocol} is recorded yet.", "", end])
    if any("fpn" in defined_rows(table, protocol) for table, _, _ in TABLES.values()):  # v5 and v6 have no FPN row
        out += ["", f"### FPN's run-to-run variance{decides}", "", fpn_variance(records, before)]
    for title, (table, rows, ref) in TABLES.items():
        rows = [r for r in rows if r in defined_rows(table, protocol)]
        present = [r for r in rows if r in records]
        if len(present) < 2:
            continue
        missing = [r for r in rows if r not in records]
        out += ["", f"### {title}", "",
                f"`benchmarks/run.py {table} --protocol {protocol} --seeds {seeds}`; difference to **{ref}**, paired by seed, with the "
                "95 % t-interval." + (f" Not measured yet: {', '.join(missing)}." if missing else ""), "",
                paired_table(records, present, reference=ref)]
    out += extra_seeds(everything, protocol)
    out += rerun_seeds(everything, again, protocol)
    out += ["", "### Do the gates route images differently? (gate probe)", "",
            ("Each gated run's `gate_probe` (50 images per probe group; `dsic.models.probe`). "
            f"Goal: a W entry differing by >= {GOAL_W_DIFF:.2f} between all-small and all-large images with effect "
            f"size >= {GOAL_EFFECT}: any entry (the W columns show the largest difference; until 2026-11-29 "
            "the count below checked that entry alone, which gives the same count on every run but v7's "
            "dsic_pathstats_pathlr1_gatelr01 seed 0). "
            "S (the pixel selection maps' spatial means) is a diagnostic beside it, recorded since the v3 runs; "
            "the single-channel columns (act(w_ik[c]) before W's channel mean) since 2026-11-28."),
            "", probe_table(everything), "", goal_summary(everything)]
    analyses = [incentive_table(results / "incentive"),
                incentive_table(results / "incentive_train", groups_caption("train", "training images")),
                incentive_table(results / "incentive_val", groups_caption("val", "validation images (never trained on)")),
                control_inputs_table(results / "control_inputs"), path_readout_table(results / "path_readout"),
                unit_dynamics_table(results / "unit_dynamics"), unit_drift_table(results / "unit_drift"),
                static_routing_table(results / "static_routing"), scale_oracle_table(results / "scale_oracle"),
                scale_head_table(results / "scale_head"), scale_head_fit_table(results / "scale_head_fit"),
                rerun_table(again, everything), started_from_table(again, everything)]
    out += [table for table in analyses if table]  # an analysis with no record adds nothing
    return "\n".join(out + ["", end])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=PROTOCOLS, default=None, help="one section (default: all)")
    parser.add_argument("--results", type=Path, default=None, help="records (default benchmarks/results/<protocol>)")
    parser.add_argument("--file", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--print", action="store_true", help="print the section instead of writing it")
    args = parser.parse_args(argv)
    doc = args.file.read_text()
    for protocol in [args.protocol] if args.protocol else PROTOCOLS:
        results = args.results or ROOT / "benchmarks" / "results" / protocol
        earlier = ROOT / "benchmarks" / "results" / "v2" if protocol == "v3" else None  # v3's adoption rule
        text = section(results, protocol, earlier)
        if args.print:
            print(text)
            continue
        start, end = markers(protocol)
        if start not in doc or end not in doc:
            raise SystemExit(f"{args.file}: the markers {start!r} and {end!r} are missing")
        head, rest = doc.split(start, 1)
        doc = head + text + rest.split(end, 1)[1]
        print(f"[dsic] {args.file}: protocol-{protocol} section regenerated from {results}")
    if not args.print:
        args.file.write_text(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
