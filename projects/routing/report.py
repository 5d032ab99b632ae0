"""Regenerate the routing study's tables (projects/routing/RESULTS.md) from its committed records.

    .venv/bin/python projects/routing/report.py                 # rewrites every protocol's section
    .venv/bin/python projects/routing/report.py --print v7      # prints one section instead
    .venv/bin/python projects/routing/report.py --check         # exit 1 if RESULTS.md differs from the records

A protocol's records are the study's (``projects/routing/results/<protocol>/``: its rows, its
analyses, the runs trained again in ``rerun/``) together with the benchmark's of the same protocol
(``benchmarks/results/<protocol>/``: FPN, FC-FPN and DSIC as shipped, the rows the study compares
against). The machinery is benchmarks/report.py's.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_report", ROOT / "benchmarks" / "report.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

from dsic.results import format_ci, mean_ci  # benchmarks/report.py put the repository on the path

RESULTS = ROOT / "projects" / "routing" / "results"
PROTOCOLS = ("v3", "v4", "v5", "v6", "v7")
meets_goal, GOAL_W_DIFF, GOAL_EFFECT = bench.meets_goal, bench.GOAL_W_DIFF, bench.GOAL_EFFECT

TABLES = {
    "How CSG's gates learn": ("gates", ["fpn", "dsic", *bench.GATE_ROWS], "fpn"),
    "Gate designs against DSIC with one lr for everything (dsic)": ("gates", ["dsic", *bench.GATE_ROWS], "dsic"),
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
}
# v3's path logits given seeds 4-7 with the headline comparisons (benchmarks/PROTOCOLS.md)
EXTRA_SEEDS = {"v3": {"title": "v3's path logits at seeds 0-7", "seeds": 8,
                      "where": "on a later machine (one thread, two runs at a time)",
                      "tables": [("dsic_gatelr01", ["dsic_gatelr01", "dsic_path_gatelr01"])]}}


def groups_caption(split: str, what: str) -> str:
    """The text above an incentive table measured on a dataset split's own images (benchmarks/train_groups.py)."""
    return (f"The same, on {what} instead of the probe set (`benchmarks/train_groups.py <data> --split {split} "
            "--out <groups>`: 50 images whose objects all have sqrt(area) < 32 px, 50 all >= 96 px, as the probe's, "
            "and 50 others; then `benchmarks/routing_incentive.py <run> --probe <groups> --images 50 --out "
            f"projects/routing/results/<protocol>/incentive_{split}/<run>.json`).")


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
        "--images 50 --out projects/routing/results/<protocol>/incentive/<run>.json`). Where the small and "
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
        "<run> --probe <data> --images 50 --out projects/routing/results/<protocol>/control_inputs/<run>.json`)."),
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
        "projects/routing/results/<protocol>/path_readout/<run>.json`)."),
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
        "<run> --out projects/routing/results/<protocol>/static_routing/<run>.json`)."),
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


def frontier_points(records: dict, rerun: dict) -> list[dict]:
    """One point per gated run that has a ``dsic_gatelr01`` run of its seed to pair with:
    ``row``, ``seed``, ``w`` (W_max_diff), ``reliable`` (effect size >= GOAL_EFFECT), ``dap``."""
    points = []
    for row in sorted(records):
        if row == START_ROW:
            continue
        starts = rerun.get(START_ROW, {}) if row in STARTED_FROM_RERUN else records.get(START_ROW, {})
        for seed, rec in sorted(records[row].items()):
            probe = rec.get("gate_probe", {})
            if "W_max_diff" not in probe or seed not in starts:
                continue
            points.append({"row": row, "seed": seed, "w": probe["W_max_diff"],
                           "reliable": probe["W_effect_size"] >= GOAL_EFFECT,
                           "dap": rec["metrics"]["AP"] - starts[seed]["metrics"]["AP"]})
    return points


def answer() -> str:
    """The numbers README.md's answer gives, from the records: how far DSIC as shipped routes, how its
    single channels do on v7, and every v7 routing run's depth against its AP cost (frontier_points)."""
    lines = [bench.markers("answer", "projects/routing/report.py")[0], ""]
    for protocol in ("v2", "v3", "v4", "v5", "v7"):
        row = "dsic" if protocol == "v2" else START_ROW  # v2 predates the gate lr x0.1
        proto = bench.get_protocol(protocol)
        runs = bench.read_records([proto.results_dir, proto.study_dir]).get(row, {})
        ws = [r["gate_probe"]["W_max_diff"] for r in runs.values() if "W_max_diff" in r.get("gate_probe", {})]
        lines.append(f"- {protocol}, `{row}`, {len(ws)} seeds: W's largest small − large difference "
                     f"{min(ws):.3f}-{max(ws):.3f}")
    v7 = bench.get_protocol("v7")
    probes = [r["gate_probe"] for r in bench.read_records([v7.results_dir])[START_ROW].values()]
    wide = [p for p in probes if p["w_channel_max_diff"] >= GOAL_W_DIFF and p["w_channel_effect_size"] >= GOAL_EFFECT]
    lines.append(f"- v7, `{START_ROW}`: some single channel differs by >= {GOAL_W_DIFF:.2f} at effect size >= "
                 f"{GOAL_EFFECT} at {len(wide)} of {len(probes)} seeds: by "
                 f"{min(p['w_channel_max_diff'] for p in wide):.2f}-{max(p['w_channel_max_diff'] for p in wide):.2f} "
                 f"(effect size {min(p['w_channel_effect_size'] for p in wide):.1f}-"
                 f"{max(p['w_channel_effect_size'] for p in wide):.1f})")
    points = frontier_points(bench.read_records([v7.study_dir, v7.results_dir]), bench.read_records([v7.study_dir / "rerun"]))
    deep = sorted((p for p in points if p["w"] >= GOAL_W_DIFF), key=lambda p: -p["dap"])
    short = [p for p in points if p["w"] < GOAL_W_DIFF and p["reliable"]]
    goal = [p for p in deep if p["reliable"] and p["dap"] >= 0]
    costs = ", ".join(f"{p['dap']:+.2f}" for p in deep)
    lines += [(f"- v7 routing runs paired with DSIC as shipped at their seed: {len(points)}; in the goal's corner "
               f"(W >= {GOAL_W_DIFF:.2f} at effect size >= {GOAL_EFFECT}, no AP lost): {len(goal)}"),
              f"- routed {GOAL_W_DIFF:.2f} or deeper: {len(deep)} runs, AP against DSIC as shipped {costs}",
              (f"- routed less deeply at effect size >= {GOAL_EFFECT}: {len(short)} runs, W "
               f"{min(p['w'] for p in short):.3f}-{max(p['w'] for p in short):.3f}, AP against DSIC as shipped "
               f"{min(p['dap'] for p in short):+.2f} to {max(p['dap'] for p in short):+.2f}"),
              "", bench.markers("answer", "projects/routing/report.py")[1]]
    return "\n".join(lines)


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
        "projects/routing/results/<protocol>/unit_drift/<run>.json`)."),
        ("| run | descriptor norm, initial → trained (P2 / P3 / P4 / P5) | alive: initial weights, initial inputs | "
         "initial weights, trained inputs | trained weights, trained inputs | weight change | descriptor spread over images |"),
        row)




def analyses(folders: list[Path], records: dict, again: dict) -> list[str]:
    """The per-run analyses of a protocol (``<study records>/<analysis>/*.json``)."""
    results = folders[0]
    return [incentive_table(results / "incentive"),
            incentive_table(results / "incentive_train", groups_caption("train", "training images")),
            incentive_table(results / "incentive_val", groups_caption("val", "validation images (never trained on)")),
            control_inputs_table(results / "control_inputs"), path_readout_table(results / "path_readout"),
            unit_dynamics_table(results / "unit_dynamics"), unit_drift_table(results / "unit_drift"),
            static_routing_table(results / "static_routing"), scale_oracle_table(results / "scale_oracle"),
            scale_head_table(results / "scale_head"), scale_head_fit_table(results / "scale_head_fit"),
            started_from_table(again, records)]


def section(protocol: str, study: Path | None = None, benchmark: Path | None = None) -> str:
    """The study's section of ``protocol``: its tables over its records and the benchmark's; FPN's
    variance only where the benchmark has no section of that protocol (v4-v6)."""
    study = study or RESULTS / protocol
    benchmark = benchmark or bench.RESULTS / protocol
    own = bench.read_records([study])
    tables = {title: spec for title, spec in TABLES.items() if any(row in own for row in spec[1])}
    return bench.section([study, benchmark], protocol, tables, by="projects/routing/report.py", extra=EXTRA_SEEDS,
                         probe=True, more=analyses, variance=not benchmark.is_dir(), reruns=False)


def main(argv=None) -> int:
    here = ROOT / "projects" / "routing"
    return bench.write({here / "README.md": {"answer": answer()},
                        here / "RESULTS.md": {protocol: section(protocol) for protocol in PROTOCOLS}},
                       "projects/routing/report.py", argv)


if __name__ == "__main__":
    sys.exit(main())
