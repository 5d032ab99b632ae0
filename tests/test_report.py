"""benchmarks/report.py and projects/routing/report.py: every generated table is computed from the
run records alone, and every headline number README.md and BENCHMARKS.md quote regenerates unchanged."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

from dsic.results import run_record, write_record

ROOT = Path(__file__).resolve().parents[1]


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report():
    return _load("benchmarks/report.py", "bench_report")


def _routing():
    return _load("projects/routing/report.py", "routing_report")


def _record(folder, row, seed, ap, probe=None, **more):
    bbox = {m: ap / 100 for m in ("AP", "AP50", "AP75", "APs", "APm", "APl")}
    extra = {"gate_probe": probe} if probe else {}
    extra.update(more)
    write_record(folder, run_record("v4", row, seed, [], bbox, threads=1, wall_s=900.0, commit="0123abcd", **extra))


def test_v4_section_pairs_scenes_rows_and_counts_seeds_meeting_the_gate_goal(tmp_path):
    for seed, (fpn, dsic, diff, eff) in enumerate([(50, 52, 0.12, 2.5), (51, 52, 0.12, 1.5), (49, 52, 0.05, 3.0)]):
        _record(tmp_path, "fpn", seed, fpn)
        _record(tmp_path, "dsic_gatelr01", seed, dsic, {"W_max_diff": diff, "W_max_diff_at": [0, 1],
                                                        "W_effect_size": eff})
    text = _routing().section("v4", tmp_path, tmp_path / "no benchmark records")
    assert "### FPN's run-to-run variance\n" in text  # v4 does not decide the comparison protocol
    assert "### Routing by image: scenes of different scales" in text
    assert "| dsic_gatelr01 | 0,1,2 |" in text and "+2.00 [" in text  # paired: 2, 1, 3 AP above fpn
    assert "Seeds meeting the goal: dsic_gatelr01 1 of 3." in text  # only seed 0 has both 0.10 and effect 2
    assert "Table 4" not in text and "(projects/routing/report.py)" in text


def test_v5_section_has_the_gate_rows_against_dsic_as_shipped_and_no_fpn(tmp_path):
    for seed in (0, 1):
        _record(tmp_path, "dsic_gatelr01", seed, 50 + seed, {"W_max_diff": 0.01, "W_max_diff_at": [0, 0],
                                                               "W_effect_size": 1.0})
        _record(tmp_path, "dsic_path_gatelr01", seed, 51 + seed, {"W_max_diff": 0.11, "W_max_diff_at": [3, 0],
                                                                    "W_effect_size": 2.2})
    text = _routing().section("v5", tmp_path, tmp_path / "no benchmark records")
    assert "FPN's run-to-run variance" not in text
    assert "### Scenes: gate designs against DSIC as shipped (dsic_gatelr01)" in text
    assert "`benchmarks/run.py scenes --protocol v5 --seeds 2`" in text
    assert "| dsic_path_gatelr01 | 0,1 |" in text and "+1.00 [" in text
    assert "Seeds meeting the goal: dsic_gatelr01 0 of 2; dsic_path_gatelr01 2 of 2." in text


def test_the_benchmark_shows_its_rows_and_the_study_its_own(tmp_path):
    """v7: FPN, FC-FPN and DSIC as shipped are the benchmark's; a routing row and its analyses are the
    study's, whose section pairs them with the benchmark's records without repeating its tables."""
    benchmark, study = tmp_path / "benchmark", tmp_path / "study"
    for seed in range(4):
        _record(benchmark, "fpn", seed, 70)
        _record(benchmark, "fcfpn", seed, 70.5)
        _record(benchmark, "dsic_gatelr01", seed, 72)
    for seed in range(2):
        _record(study, "dsic_pathstats_gatelr01", seed, 71.5, {"W_max_diff": 0.12, "W_max_diff_at": [0, 1],
                                                               "W_effect_size": 2.5})
    ours = _report().section(benchmark, "v7")
    assert "### Scenes: DSIC as shipped and FC-FPN against FPN" in ours and "Table 2" not in ours  # scenes only
    assert "dsic_pathstats" not in ours and "gate probe" not in ours
    theirs = _routing().section("v7", study, benchmark)
    assert "| dsic_pathstats_gatelr01 | 0,1 |" in theirs and "-0.50 [" in theirs  # paired with DSIC as shipped
    assert "FPN's run-to-run variance" not in theirs and "Scenes: DSIC as shipped and FC-FPN" not in theirs
    assert "Seeds meeting the goal: dsic_pathstats_gatelr01 2 of 2." in theirs


def test_incentive_table_from_its_files(tmp_path):
    import json

    import numpy as np

    from routing.incentive import incentive_statistics

    small = np.array([[[1.0, -0.5], [0.0, 2.0]], [[3.0, -0.5], [0.0, 2.0]]])
    large = np.array([[[-1.0, -0.5], [0.0, 2.0]], [[-3.0, -0.5], [0.0, 2.0]]])
    (tmp_path / "incentive").mkdir()
    (tmp_path / "incentive" / "dsic_gatelr01_seed0.json").write_text(
        json.dumps(incentive_statistics({"small": small, "large": large})))
    text = _routing().incentive_table(tmp_path / "incentive")
    assert "| dsic_gatelr01_seed0 | 4.000 (0,0) | 4.00 | 4.00 / 0.00 | (0,0) 4.00 | 2 |" in text
    assert _routing().incentive_table(tmp_path / "none") == ""
    captioned = _routing().incentive_table(tmp_path / "incentive", "On training images.")
    assert captioned.startswith("\nOn training images.\n\n| run |") and "For each probe image" not in captioned


def test_control_inputs_table_from_its_files(tmp_path):
    import json

    (tmp_path / "control_inputs").mkdir()
    (tmp_path / "control_inputs" / "dsic_gatelr01_seed0.json").write_text(json.dumps(
        {"descriptor_accuracy": [0.83, 0.85], "hidden_accuracy": [0.67, 0.5], "hidden_alive": [0.5, 1.0],
         "hidden_separation": [1.238, 0.0], "images": {"small": 50, "large": 50}}))
    (tmp_path / "control_inputs" / "dsic_gatelr01_seed1.json").write_text(json.dumps(
        {"descriptor_accuracy": [0.9, 0.8], "hidden_accuracy": [0.6, 0.5], "hidden_alive": [0.25, 1.0],
         "hidden_separation": [1.0, 2.0], "statistics_accuracy": [0.88, 0.84], "statistics_separation": [2.07, 1.5],
         "images": {"small": 50, "large": 50}}))
    text = _routing().control_inputs_table(tmp_path / "control_inputs")
    assert "| dsic_gatelr01_seed0 | 0.83 / 0.85 | 0.67 / 0.50 | 0.50 / 1.00 | 1.24 / 0.00 | - | - |" in text
    assert "| dsic_gatelr01_seed1 | 0.90 / 0.80 | 0.60 / 0.50 | 0.25 / 1.00 | 1.00 / 2.00 | 0.88 / 0.84 | 2.07 / 1.50 |" in text
    assert _routing().control_inputs_table(tmp_path / "none") == ""


def test_path_readout_table_from_its_files(tmp_path):
    folder = tmp_path / "path_readout"
    folder.mkdir()
    zeros = [[0.0] * 2 for _ in range(2)]
    record = {"W_diff": [[0.01, -0.07], [0.02, 0.0]], "W_diff_path_only": [[0.0, -0.06], [0.0, 0.0]],
              "W_diff_channels_only": [[0.0, -0.01], [0.0, 0.0]], "p_diff": [[0.0, -0.065], [0.0, 0.0]],
              "p_effect": [[0.0, 2.9], [0.0, 0.0]], "W_slope": [[0.9, 0.95], [0.9, 0.9]], "run": "r"}
    (folder / "dsic_path_gatelr01_seed0.json").write_text(json.dumps(record))
    (folder / "dsic_gatelr01_seed0.json").write_text(json.dumps(dict(record, p_diff=zeros, p_effect=zeros)))
    text = _routing().path_readout_table(folder)
    assert "| dsic_path_gatelr01_seed0 | (0,1) | -0.070 | -0.060 | -0.010 | -0.065 (2.90) | 0.95 |" in text
    assert "| dsic_gatelr01_seed0 | (0,1) | -0.070 | -0.060 | -0.010 | +0.000 (0.00) | 0.95 |" in text
    assert _routing().path_readout_table(tmp_path / "none") == ""


@pytest.mark.parametrize("protocol", ["v2", "v3", "v4", "v5", "v6", "v7"])
def test_every_recorded_row_of_a_protocol_has_a_paired_table(protocol):
    """A committed record whose row no table lists would never reach a generated file."""
    report, routing = _report(), _routing()
    listed = {row for spec in [*report.HISTORY_TABLES.values(), *routing.TABLES.values()] for row in spec[1]}
    listed |= {prefix + neck for prefix in report.DETECTORS.values() for neck in report.BREADTH_NECKS}
    listed |= set(report.TINY34_ROWS)
    folders = [ROOT / "benchmarks" / "results" / protocol, ROOT / "projects" / "routing" / "results" / protocol]
    assert set(report.read_records(folders)) <= listed


def test_a_protocol_with_no_records_says_so(tmp_path):
    text = _report().section(tmp_path / "none", "v7")
    assert "No run of protocol v7 is recorded yet." in text and "| run |" not in text


def test_v3_tables_keep_their_fixed_seeds_and_the_extra_seeds_get_their_own_table(tmp_path):
    for seed in range(8):
        _record(tmp_path, "fpn", seed, 50)
        _record(tmp_path, "fcfpn", seed, 51 + (seed >= 4))  # +1 at seeds 0-3, +2 at 4-7
        _record(tmp_path, "dsic_gatelr01", seed, 53)
    text = _report().section(tmp_path, "v3")
    fixed, extra = text.split("### v3's headline comparisons at seeds 0-7")
    assert "seed 3: 50.00; mean" in fixed and "seed 4" not in fixed  # FPN's variance: the deciding seeds
    assert "| fcfpn | 0,1,2,3 |" in fixed and "+1.00" in fixed and "0,1,2,3,4" not in fixed
    assert "| fcfpn | 0,1,2,3,4,5,6,7 | 51.5 |" in extra and "+1.50 [" in extra  # against fpn over 8 seeds
    assert "| dsic_gatelr01 | 0,1,2,3,4,5,6,7 | 53.0 |" in extra and "+1.50 [" in extra.split("fcfpn | 0,1")[-1]
    assert "Seeds 4-7 were added after the tables above" in extra
    _record(tmp_path / "fixed", "fpn", 0, 50)
    assert "headline comparisons" not in _report().section(tmp_path / "fixed", "v3")


def test_v3_table4_at_8_seeds_pairs_seeds_4_to_7_with_the_references_trained_again(tmp_path):
    for seed in range(8):
        _record(tmp_path, "fpn", seed, 50)  # recorded on an earlier machine
        _record(tmp_path, "dsic_gatelr01", seed, 53)
        _record(tmp_path, "isg_gatelr01", seed, 50.5)
    _record(tmp_path, "csg_gatelr01", 0, 54)
    for seed in range(4, 8):  # the references trained again beside the new rows: fpn 1 AP lower there
        _record(tmp_path / "rerun", "fpn", seed, 49)
    _record(tmp_path / "rerun", "dsic_gatelr01", 4, 52)  # dsic_gatelr01 again at seed 4 only so far

    def tables():
        text = _report().section(tmp_path, "v3")
        part = text.split("### v3's Tables 4 and 5 at seeds 0-7")[1].split("###")[0]
        return text, part.split("The same runs trained again")[0]

    text, part = tables()
    assert part.count("| row |") == 1  # against fpn only: the dsic_gatelr01 reference lacks seeds 5-7 here
    # isg - fpn: +0.5 at seeds 0-3 (recorded fpn), +1.5 at seeds 4-7 (fpn trained again)
    assert "| isg_gatelr01 | 0,1,2,3,4,5,6,7 | 50.5 |" in part and "+1.00 [" in part
    assert "| fpn | 0,1,2,3,4,5,6,7 | 49.5 |" in part
    assert "| dsic_gatelr01 |" not in part and "| csg_gatelr01 |" not in part  # n is fixed at 8: no partial rows
    assert ("Not shown until every seed is in: csg_gatelr01 (seeds 1, 2, 3, 4, 5, 6, 7 missing); dsic_gatelr01 "
            "(seeds 5, 6, 7 missing); dsic_sigmoid_gatelr01 (not run); dsic_softmax_gatelr01 (not run).") in part
    assert "rerun/" in part and "n fixed at 8" in part
    assert "| fpn | 4 |" in text.split("The same runs trained again")[1]  # and the reproduction table shows it
    for seed in range(5, 8):
        _record(tmp_path / "rerun", "dsic_gatelr01", seed, 52)
    against_fpn, against_dsic = tables()[1].split("| row |")[1:3]
    assert "| dsic_gatelr01 | 0,1,2,3,4,5,6,7 | 52.5 |" in against_fpn  # recorded 0-3, again 4-7, never mixed
    assert "| isg_gatelr01 | 0,1,2,3,4,5,6,7 | 50.5 |" in against_dsic and "-2.00 [" in against_dsic
    _record(tmp_path / "old", "fpn", 4, 50)  # no new row beyond seed 3: no such table
    _record(tmp_path / "old", "isg_gatelr01", 0, 50)
    assert "Tables 4 and 5 at seeds 0-7" not in _report().section(tmp_path / "old", "v3")


def test_v7_extra_seeds_4_and_5_get_their_own_table(tmp_path):
    for seed in range(6):
        _record(tmp_path, "fpn", seed, 70)
        _record(tmp_path, "fcfpn", seed, 70.5)
        _record(tmp_path, "dsic_gatelr01", seed, 72 - (seed >= 4))  # +2 at seeds 0-3, +1 at 4-5
    fixed, extra = _report().section(tmp_path, "v7").split("### v7's headline comparisons at seeds 0-5")
    assert "| dsic_gatelr01 | 0,1,2,3 |" in fixed and "seed 4" not in fixed
    assert "| dsic_gatelr01 | 0,1,2,3,4,5 | 71.7 |" in extra and "Seeds 4-5 were added after the tables above" in extra


def test_unit_dynamics_table_from_its_files(tmp_path):
    folder = tmp_path / "unit_dynamics"
    folder.mkdir()
    # two units, 4 iterations, windows of 2 and the first 2 iterations as "early"
    units = [{"alive": [1.0, 0.8, 0.4, 0.2], "preact": [0.5, 0.1, -1.0, -2.0], "grad_channel": [1.0, 1.0, 2.0, 2.0],
              "grad_path": [4.0, 2.0, 2.0, 0.0]},
             {"alive": [1.0] * 4, "preact": [0.0] * 4, "grad_channel": [1.0] * 4, "grad_path": [0.0] * 4}]
    (folder / "dsic_path_gatelr01_seed0.json").write_text(json.dumps({"iterations": 4, "per_iteration": units}))
    text = _routing().unit_dynamics_table(folder, early=2, window=2)
    # alive: first window 0.90 / 1.00, last 0.30 / 1.00, lowest window 0.30 / 1.00; pre-activation first
    # window 0.30 / 0.00, last -1.50 / 0.00; ratio early (4+2)/2, whole (4+2+1+0)/4
    assert ("| dsic_path_gatelr01_seed0 | 4 | 0.90 / 1.00 | 0.30 / 1.00 | 0.30 / 1.00 | 0.30 / 0.00 | -1.50 / 0.00 | "
            "3.00 / 0.00 | 1.75 / 0.00 |") in text
    assert _routing().unit_dynamics_table(tmp_path / "none") == ""


def test_unit_drift_table_from_its_files(tmp_path):
    folder = tmp_path / "unit_drift"
    folder.mkdir()
    record = {"descriptor_norm_init": [108.7, 50.2], "descriptor_norm_final": [73.6, 34.8],
              "alive_init_init": [0.62, 0.66], "alive_init_final": [0.59, 0.59], "alive_final_final": [0.25, 0.56],
              "weight_change": [0.029, 0.003], "descriptor_spread": [0.196, 0.217]}
    (folder / "dsic_gatelr01_seed0.json").write_text(json.dumps(record))
    text = _routing().unit_drift_table(folder)
    assert "| dsic_gatelr01_seed0 | 109 → 74 / 50 → 35 | 0.62 / 0.66 | 0.59 / 0.59 | 0.25 / 0.56 | 2.9 / 0.3 % | 0.20 / 0.22 |" in text
    assert _routing().unit_drift_table(tmp_path / "none") == ""


def test_gate_goal_is_met_by_any_entry_far_apart_and_reliably():
    """Issue 10's goal: some W entry differs by >= 0.10 between the small and large groups with
    effect size >= 2; the largest difference need not be that entry."""
    report = _report()
    probe = {"W_small": [[0.50, 0.40], [0.30, 0.20]], "W_large": [[0.28, 0.28], [0.30, 0.20]],
             "W_std_small": [[0.15, 0.05], [0.01, 0.01]], "W_std_large": [[0.15, 0.05], [0.01, 0.01]],
             "W_max_diff": 0.22, "W_effect_size": 1.47}
    assert report.meets_goal(probe)  # entry (0, 1): 0.12 at effect size 2.4
    probe["W_small"][0][1] = 0.37  # 0.09: no longer far enough apart
    assert not report.meets_goal(probe)
    probe["W_small"][0][1], probe["W_std_small"][0][1] = 0.40, 0.07  # 0.12 at effect size ~1.98
    assert not report.meets_goal(probe)
    # records without per-entry stds: judged by their largest-difference entry
    assert report.meets_goal({"W_max_diff": 0.11, "W_effect_size": 2.1})
    assert not report.meets_goal({"W_max_diff": 0.11, "W_effect_size": 1.9})
    records = {"dsic_x": {0: {"gate_probe": {"W_max_diff": 0.11, "W_effect_size": 2.1}},
                          1: {"gate_probe": {"W_max_diff": 0.05, "W_effect_size": 3.0}}}}
    assert report.goal_summary(records) == "Seeds meeting the goal: dsic_x 1 of 2."


def test_static_routing_table_from_its_files(tmp_path):
    import json

    (tmp_path / "static_routing").mkdir()
    metrics = {"AP": 70.762, "AP50": 93.2, "AP75": 85.0, "APs": 64.97, "APm": 79.6, "APl": 80.54}
    (tmp_path / "static_routing" / "dsic_x_seed0.json").write_text(json.dumps(
        {"routed": metrics, "static": dict(metrics, AP=71.1, APs=65.5, APl=80.0), "static_minus_routed": 0.338,
         "units_frozen": 4}))
    text = _routing().static_routing_table(tmp_path / "static_routing")
    assert "| dsic_x_seed0 | 70.76 | 71.10 | +0.34 | 64.97 / 65.50 | 80.54 / 80.00 |" in text
    assert _routing().static_routing_table(tmp_path / "none") == ""


def test_scale_oracle_table_from_its_files(tmp_path):
    import json

    (tmp_path / "scale_oracle").mkdir()
    probe = {"W_small": [[0.30, 0.2], [0.25, 0.25]], "W_large": [[0.18, 0.2], [0.25, 0.25]],
             "W_std_small": [[0.01, 0.01], [0.01, 0.01]], "W_std_large": [[0.01, 0.01], [0.01, 0.01]],
             "W_max_diff": 0.12, "W_max_diff_at": [0, 0], "W_effect_size": 12.0}
    offsets = [[[0.07, -0.06, 0.0], [0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]
    (tmp_path / "scale_oracle" / "dsic_gatelr01_seed0.json").write_text(json.dumps(
        {"lr_mult": 0.65, "gate_probe": probe, "offsets": offsets, "loss_first100": 0.4123, "loss_last100": 0.3987,
         "groups_trained": {"small": 770, "large": 1210, "mixed": 4400}}))
    text = _routing().scale_oracle_table(tmp_path / "scale_oracle")
    assert ("| dsic_gatelr01_seed0 | 0.65 | 0.120 (0,0) | 12.00 | yes | +0.130 | 0.412 -> 0.399 | 770 / 1210 / 4400 |"
            in text)
    assert _routing().scale_oracle_table(tmp_path / "none") == ""


def test_rerun_table_sets_runs_made_again_beside_their_records(tmp_path):
    import json

    (tmp_path / "rerun").mkdir()
    metrics = {"AP": 71.506, "AP50": 93.0, "AP75": 86.0, "APs": 65.9, "APm": 80.4, "APl": 79.0}
    (tmp_path / "rerun" / "dsic_x_seed1.json").write_text(json.dumps(
        {"row": "dsic_x", "seed": 1, "metrics": metrics, "commit": "ebb0b48abc"}))
    records = {"dsic_x": {1: {"metrics": dict(metrics, AP=71.963), "commit": "bf02c94def"}}}
    text = _report().rerun_table(_report().load_reruns(tmp_path), records)
    assert "| dsic_x | 1 | bf02c94 / ebb0b48 | 71.96 | 71.51 | -0.46 |" in text
    assert _report().load_reruns(tmp_path / "none") == {}
    assert _report().rerun_table({}, records) == ""


def test_started_from_table_pairs_rows_learned_second_with_the_networks_they_started_from(tmp_path):
    import json

    (tmp_path / "rerun").mkdir()
    for seed, ap in ((0, 71.886), (1, 71.506)):
        (tmp_path / "rerun" / f"dsic_gatelr01_seed{seed}.json").write_text(json.dumps(
            {"row": "dsic_gatelr01", "seed": seed, "metrics": {"AP": ap}, "commit": "ebb0b48"}))
    records = {"dsic_gatelr01_gateft_pathstd": {0: {"metrics": {"AP": 71.406}}, 1: {"metrics": {"AP": 71.156}},
                                                 2: {"metrics": {"AP": 70.0}}}}
    text = _routing().started_from_table(_report().load_reruns(tmp_path), records)
    # seed 2 has no network trained again to pair with; the interval of two differences -0.48, -0.35
    assert ("| dsic_gatelr01_gateft_pathstd | dsic_gatelr01 (trained again) | 0: 71.41 vs 71.89 (-0.48); "
            "1: 71.16 vs 71.51 (-0.35) | -0.41 [-1.24, +0.41] |") in text
    assert _routing().started_from_table({}, records) == ""


def test_scale_head_table_from_its_files(tmp_path):
    import json

    (tmp_path / "scale_head").mkdir()
    q = {"small": [[0.52, 0.06, 0.42]] * 4, "large": [[0.08, 0.73, 0.19]] * 4, "mixed": [[0.2, 0.3, 0.5]] * 4}
    (tmp_path / "scale_head" / "row_seed0.json").write_text(json.dumps(
        {"probe": {"accuracy": [0.67, 0.7, 0.68, 0.62], "mean_q": q}, "order": ["small", "large", "mixed"],
         "scale_first100": 0.6627, "scale_last100": 0.5066, "detection_first100": 0.3644, "detection_last100": 0.3577}))
    text = _routing().scale_head_table(tmp_path / "scale_head")
    assert ("| row_seed0 | 0.67 / 0.70 / 0.68 / 0.62 | 0.52 / 0.52 / 0.52 / 0.52 | 0.73 / 0.73 / 0.73 / 0.73 | "
            "0.663 -> 0.507 | 0.364 -> 0.358 |") in text
    assert _routing().scale_head_table(tmp_path / "none") == ""


def test_scale_head_fit_table_from_its_files(tmp_path):
    import json

    (tmp_path / "scale_head_fit").mkdir()
    level = {"l2": 0.1, "scores": [{"l2": 0.01, "held_out_ce": 0.33, "held_out_accuracy": 0.87},
                                   {"l2": 0.1, "held_out_ce": 0.3178, "held_out_accuracy": 0.8734}],
             "probe": {"small": {"accuracy": 0.36, "mean_q": [0.4109, 0.0056, 0.5835]},
                       "large": {"accuracy": 0.82, "mean_q": [0.0211, 0.6925, 0.2864]}}}
    (tmp_path / "scale_head_fit" / "dsic_gatelr01_seed0.json").write_text(json.dumps(
        {"order": ["small", "large", "mixed"], "prior_ce": 0.8059, "levels": [level] * 4}))
    text = _routing().scale_head_fit_table(tmp_path / "scale_head_fit")
    assert ("| dsic_gatelr01_seed0 | 0.1 / 0.1 / 0.1 / 0.1 | 0.32 / 0.32 / 0.32 / 0.32 | 0.87 / 0.87 / 0.87 / 0.87 | "
            "0.36 / 0.36 / 0.36 / 0.36 | 0.82 / 0.82 / 0.82 / 0.82 | 0.41 / 0.41 / 0.41 / 0.41 | "
            "0.69 / 0.69 / 0.69 / 0.69 | 0.81 |") in text
    assert _routing().scale_head_fit_table(tmp_path / "none") == ""


def _frontier():
    spec = importlib.util.spec_from_file_location("bench_frontier", ROOT / "projects" / "routing" / "routing_frontier.py")
    frontier = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(frontier)
    return frontier


def test_routing_frontier_pairs_each_run_with_dsic_as_shipped_from_its_own_machine(tmp_path):
    frontier = _frontier()
    recorded, rerun = tmp_path / "v7", tmp_path / "v7" / "rerun"
    for seed, ap in ((0, 71.0), (1, 72.0)):
        _record(recorded, "dsic_gatelr01", seed, ap, {"W_max_diff": 0.02, "W_effect_size": 2.5})
    _record(rerun, "dsic_gatelr01", 0, 70.5)  # the start trained again: rows learned second pair with it
    _record(recorded, "dsic_pathstats_gatelr01", 0, 70.0, {"W_max_diff": 0.12, "W_effect_size": 1.5})
    _record(recorded, "dsic_pathstats_gatelr01", 2, 70.0, {"W_max_diff": 0.12, "W_effect_size": 3.0})  # no pair
    _record(recorded, "dsic_gatelr01_gateft_pathcells_fitted", 0, 70.75, {"W_max_diff": 0.09, "W_effect_size": 8.0})
    _record(recorded, "dsic_gatelr01_gateft_pathcells_fitted", 1, 72.5, {"W_max_diff": 0.11, "W_effect_size": 4.0})
    points = frontier.frontier_points(frontier.bench.read_records([recorded]), frontier.bench.read_records([rerun]))
    got = [(p["row"], p["seed"], p["w"], p["reliable"], round(p["dap"], 4)) for p in points]
    assert got == [("dsic_gatelr01_gateft_pathcells_fitted", 0, 0.09, True, 0.25),  # against the rerun's 70.5
                   ("dsic_pathstats_gatelr01", 0, 0.12, False, -1.0)]  # from scratch: against the record
    out = frontier.plot(points, tmp_path / "f.png", "t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_headlines_regenerate_from_the_committed_records():
    """The numbers README.md quotes, each with the pairing it uses (issue 37: a lower bound at +0.00
    reads "at the edge"; the other pairing is given beside it)."""
    report = _report()
    got = {(p, row, ref): report.headline(p, row, ref, n, again) for p, row, ref, n, again in report.HEADLINES}
    fmt = {k: report.format_ci(*v) for k, v in got.items()}
    assert fmt["v3", "dsic_gatelr01", "fpn"] == "+2.62 [+2.16, +3.09]"
    assert report.format_ci(*report.headline("v3", "dsic_gatelr01", "fpn", 8, report.AGAIN)) == "+2.63 [+1.70, +3.57]"
    assert fmt["v3", "csg_gatelr01", "dsic_gatelr01"] == "+0.54 [+0.00, +1.07]"
    assert report.reading(*got["v3", "csg_gatelr01", "dsic_gatelr01"][1:]) == "at the edge (lower end +0.002)"
    assert report.format_ci(*report.headline("v3", "csg_gatelr01", "dsic_gatelr01", 8)) == "+0.61 [-0.02, +1.24]"
    assert fmt["v3", "csg_gatelr01", "fpn"] == "+3.17 [+2.46, +3.88]"
    assert fmt["v3", "isg_gatelr01", "fpn"] == "-0.52 [-1.72, +0.68]"
    assert fmt["v3", "dsic_gatelr01", "fcfpn"] == "+1.26 [+0.44, +2.08]"
    assert fmt["v3", "fcos_dsic_gatelr01", "fcos_fpn"] == "+2.10 [+1.17, +3.03]"  # issue 36, n = 4
    assert fmt["v3", "fcos_csg_gatelr01", "fcos_fpn"] == "+2.20 [+1.85, +2.55]"
    assert fmt["v3", "mask_rcnn_dsic_gatelr01", "mask_rcnn_fpn"] == "+3.84 [+2.09, +5.60]"  # box AP, n = 4
    assert fmt["v3", "r34_isg_gatelr01", "r34_fpn"] == "-1.20 [-2.59, +0.20]"  # ISG with blocks to choose
    assert fmt["v3", "r34_dsic_gatelr01", "r34_csg_gatelr01"] == "-0.18 [-2.37, +2.01]"
    assert fmt["v7", "dsic_gatelr01", "fpn"] == "+1.98 [+1.45, +2.51]"
    assert fmt["v7", "dsic_gatelr01", "fcfpn"] == "+1.27 [+0.84, +1.70]"
    assert report.reading(0.5, 1.0) == "higher" and report.reading(-0.2, 0.3) == "not established"
    assert report.reading(-1.0, -0.004) == "at the edge (upper end -0.004)"


def test_every_interval_a_document_quotes_is_a_generated_one():
    """README.md, the hand-written parts of BENCHMARKS.md and docs/*.md quote no interval that the
    records do not give (a regenerated headline or table)."""
    report, routing = _report(), _routing()
    generated = "".join(text for texts in report.sections().values() for text in texts.values())
    generated += "".join(routing.section(protocol) for protocol in routing.PROTOCOLS)
    interval = re.compile(r"[+-]\d+\.\d\d\**\s+(?:AP\s+)?\[[+-]\d+\.\d\d,\s+[+-]\d+\.\d\d\]")
    bench = ROOT / "BENCHMARKS.md"
    prose = re.sub(r"<!-- (\w+) results start.*?<!-- \1 results end -->", "", bench.read_text(), flags=re.DOTALL)
    for path, text in [(ROOT / "README.md", (ROOT / "README.md").read_text()), (bench, prose),
                       *[(p, p.read_text()) for p in sorted((ROOT / "docs").glob("*.md"))]]:
        for quoted in (" ".join(q.replace("*", "").replace("AP", "").split()) for q in interval.findall(text)):
            assert quoted in generated, f"{path.name} quotes {quoted}, which no generated table gives"


def test_readme_states_each_headline_with_its_pairing():
    readme = (ROOT / "README.md").read_text()
    assert "+0.54 [+0.00, +1.07]" in readme and "at the edge" in readme and "+0.61 [-0.02, +1.24]" in readme
    assert "+2.62 [+2.16, +3.09]" in readme and "+2.63 [+1.70, +3.57]" in readme
    assert "benchmarks/results/v3/rerun/" in readme and "benchmarks/report.py --print headlines" in readme
    assert "beats DSIC" not in readme and "by +0.54" not in readme


def test_the_generated_files_match_the_committed_records():
    """`benchmarks/report.py --check` and `projects/routing/report.py --check`: nothing hand-edited."""
    assert _report().main(["--check"]) == 0
    assert _routing().main(["--check"]) == 0


def test_breadth_keeps_a_detectors_setting_by_fpns_sd_and_cpu_time_alone(tmp_path):
    """Step 1 of docs/breadth.md: four FPN seeds, sd <= 1.0, no run over 15 min of CPU time; then a
    table per detector against its own FPN."""
    report = _report()
    for seed, ap in enumerate([34.0, 35.0, 34.5, 35.5]):
        _record(tmp_path, "fcos_fpn", seed, ap, cpu_s=600.0)
        _record(tmp_path, "retinanet_fpn", seed, ap * (1 + seed), cpu_s=600.0)  # sd far over 1.0
    _record(tmp_path, "mask_rcnn_fpn", 0, 40.0, cpu_s=1500.0)
    for seed in range(2):
        _record(tmp_path, "fcos_dsic_gatelr01", seed, 36.0 + seed, cpu_s=650.0)
    _record(tmp_path / "table1_setting0", "fcos_fpn", 0, 16.0, cpu_s=300.0)  # a setting replaced after one seed
    for seed, ap in enumerate([22.0, 24.6, 19.0]):  # 3 seeds whose sd cannot come down to 1.0
        _record(tmp_path / "table1_setting3", "retinanet_fpn", seed, ap, cpu_s=720.0)
    text = report.breadth_section(tmp_path)
    assert "| fcos | 0 | fcos_fpn | 0: 16.00 | 16.00 | - | 5.0 min | not recorded | replaced after 1 seed" in text
    assert ("| fcos | 1 | fcos_fpn | 0: 34.00, 1: 35.00, 2: 34.50, 3: 35.50 | 34.75 | 0.65 | 10.0 min | "
            "not recorded | kept |") in text
    assert "| not kept: sd 46.17 > 1.0 |" in text
    assert ("| mask_rcnn | 0 | mask_rcnn_fpn | 0: 40.00 | 40.00 | - | 25.0 min | not recorded | "
            "not kept: a run took 25.0 min") in text
    assert "| faster_rcnn | v3 | fpn | - |" in text
    assert "| retinanet | 3 | retinanet_fpn | 0: 22.00, 1: 24.60, 2: 19.00 |" in text
    assert "| not kept: sd over 4 seeds >= 2.29 whatever the others give |" in text
    assert "| retinanet | 4 | retinanet_fpn | 0: 34.00," in text  # the current setting comes after the replaced
    assert "### Table 1: necks in fcos (box AP)" in text and "| fcos_dsic_gatelr01 | 0,1 |" in text
    assert "necks in retinanet" not in text and "| v3 | r34_fpn | - |" in text


def test_breadth_allows_30_min_from_the_settings_of_budget_extension_2_and_pairs_dsic_against_csg(tmp_path):
    """Budget extension 2 raised the CPU limit to 30 min for RetinaNet from setting 4 and Mask R-CNN from
    setting 2; earlier settings keep their 15. ISG's share is DSIC - CSG in every detector, as H2 reads."""
    report = _report()
    assert report.cpu_limit("mask_rcnn", "1") == 900.0 and report.cpu_limit("mask_rcnn", "2") == 1800.0
    assert report.cpu_limit("retinanet", "3") == 900.0 and report.cpu_limit("retinanet", "4") == 1800.0
    assert report.cpu_limit("fcos", "9") == 900.0 and report.cpu_limit("faster_rcnn, resnet_tiny34", "v3") == 900.0
    for n in (0, 1):
        _record(tmp_path / f"table1_setting{n}", "mask_rcnn_fpn", 0, 44.0, cpu_s=1300.0)
    for seed in range(4):
        _record(tmp_path, "mask_rcnn_fpn", seed, 43.0 + seed / 10, cpu_s=1000.0)
        _record(tmp_path, "mask_rcnn_dsic_gatelr01", seed, 45.0 + seed / 10, cpu_s=1000.0)
        _record(tmp_path, "mask_rcnn_csg_gatelr01", seed, 44.0 + seed / 5, cpu_s=1000.0)
    text = report.breadth_section(tmp_path)
    assert "| mask_rcnn | 1 | mask_rcnn_fpn | 0: 44.00 | 44.00 | - | 21.7 min | not recorded | not kept: a run took" in text
    assert "| mask_rcnn | 2 | mask_rcnn_fpn | 0: 43.00, 1: 43.10, 2: 43.20, 3: 43.30 | 43.15 | 0.13 | 16.7 min |" in text
    assert text.split("| mask_rcnn | 2 |")[1].split("\n")[0].endswith("| kept |")
    isg = text.split("Does ISG add to CSG in mask_rcnn?")[1]
    assert isg.index("| mask_rcnn_csg_gatelr01 |") < isg.index("| mask_rcnn_dsic_gatelr01 |")
    assert "| mask_rcnn_dsic_gatelr01 | 0,1,2,3 |" in isg and "+0.85 [+0.64, +1.06]" in isg.split("\n\n")[1]
    _record(tmp_path / "cross_machine", "mask_rcnn_fpn", 0, 43.44, cpu_s=950.0)
    _record(tmp_path / "cross_machine", "mask_rcnn_fpn", 1, 43.5, cpu_s=950.0)
    moved = report.breadth_section(tmp_path).split("### The same run on two machines")[1]
    assert "| mask_rcnn_fpn | 0 | 43.44 | 43.00 | -0.44 | not recorded, native bf16: no / not recorded," in moved
    assert "| mask_rcnn_fpn | 1 | 43.50 | 43.10 | -0.40 |" in moved
    assert "The same run" not in text  # no earlier machine's run kept: no table


def test_bf16_section_pairs_each_neck_with_its_fp32_run_and_gives_the_step_cost(tmp_path):
    report = _report()
    assert "No bf16 training run is recorded yet." in report.bf16_section(tmp_path / "none")
    for seed in range(2):
        _record(tmp_path, "fpn", seed, 50.0 + seed, cpu_s=400.0, iterations=400)
        _record(tmp_path, "fpn_bf16", seed, 50.1 + seed, cpu_s=200.0, iterations=400)
    text = report.bf16_section(tmp_path)
    assert "| fpn_bf16 | 0,1 |" in text and "+0.10" in text
    assert "| fpn | 0,1 | 1.00 |" in text and "| fpn_bf16 | 0,1 | 0.50 |" in text
    assert "dsic_gatelr01" not in text


def test_cost_table_names_each_detectors_config_and_the_machine(tmp_path):
    report = _report()
    assert report.cost_table(tmp_path) == ""
    for arch, config in [("faster_rcnn", "configs/embedded_v3/faster_rcnn_tiny_fpn.yaml"),
                         ("fcos", "runs/v3/fcos_fpn_seed0/config.yaml")]:
        rows = [{"neck": neck, "detector_params_m": 5.0 + i, "detector_gflops": 5.0,
                 "ratio": {"detector_ms": 1.0 + i / 10, "train_step_ms": 1.0 + i / 5}}
                for i, neck in enumerate(["fpn", "dsic"])]
        record = {"command": f"dsic profile --config {config} --size 256 --cpu-time --out x.json", "rows": rows,
                  "cpu": "Some CPU", "cpu_count": 2, "native_bf16_cpu": True, "date": "2026-12-07 17:30:18 UTC"}
        (tmp_path / f"table1_{arch}_256_fp32.json").write_text(json.dumps(record))
    text = report.cost_table(tmp_path)
    assert text.startswith("`dsic profile --config C --size 256 --cpu-time`")
    assert "Some CPU, 2 cores, native bf16: yes, 2026-12-07" in text
    assert "| fcos | dsic | 6.00 | 5.00 | 1.10x | 1.20x | `runs/v3/fcos_fpn_seed0/config.yaml` |" in text
