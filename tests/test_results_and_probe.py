"""Run records, paired differences with t-intervals, and the gate-probe statistics."""

import json
import math
import statistics

import numpy as np
import pytest

from dsic.analysis.probe import individuality, nearest_centroid_cv
from dsic.results import (
    load_records,
    mask_records,
    mean_ci,
    paired_rows,
    paired_table,
    run_record,
    t975,
    verdict,
    write_record,
)


def test_t_quantiles_and_interval_by_hand():
    assert t975(1) == 12.706 and t975(3) == 3.182 and t975(30) == 2.042
    assert 1.96 < t975(200) < 1.98
    with pytest.raises(ValueError, match="at least 2 paired seeds"):
        t975(0)
    values = [1.0, 2.0, 4.0]
    m, lo, hi = mean_ci(values)
    half = 4.303 * statistics.stdev(values) / math.sqrt(3)
    assert m == pytest.approx(7 / 3) and lo == pytest.approx(m - half) and hi == pytest.approx(m + half)
    assert math.isnan(mean_ci([3.0])[1])


def _rec(row, seed, ap):
    bbox = {m: 0.5 for m in ("AP", "AP50", "AP75", "APs", "APm", "APl")} | {"AP": ap}
    return run_record("v2", row, seed, [f"model.neck={row}"], bbox, commit="abc", threads=1, wall_s=1.0)


def test_mask_records_pair_mask_ap_and_leave_out_box_only_records():
    records = {"a": {0: _rec("a", 0, 0.40), 1: _rec("a", 1, 0.42)}, "b": {0: _rec("b", 0, 0.41)}}
    records["a"][0]["mask_metrics"] = {"AP": 35.0}
    records["b"][0]["mask_metrics"] = {"AP": 36.5}
    masks = mask_records(records, ["a", "b", "c"])
    assert masks == {"a": {0: dict(records["a"][0], metrics={"AP": 35.0})},
                     "b": {0: dict(records["b"][0], metrics={"AP": 36.5})}, "c": {}}
    assert records["a"][0]["metrics"]["AP"] == pytest.approx(40.0)  # the box records are not changed


def test_records_round_trip_and_paired_differences(tmp_path):
    aps = {"fpn": [0.40, 0.42, 0.41, 0.43], "dsic": [0.42, 0.43, 0.44, 0.44], "isg": [0.39, 0.45]}
    for row, values in aps.items():
        for seed, ap in enumerate(values):
            write_record(tmp_path, _rec(row, seed, ap))
    saved = json.loads((tmp_path / "dsic_seed2.json").read_text())
    assert saved["metrics"]["AP"] == 44.0 and saved["commit"] == "abc" and saved["threads"] == 1
    records = load_records(tmp_path)
    assert sorted(records) == ["dsic", "fpn", "isg"] and sorted(records["fpn"]) == [0, 1, 2, 3]
    rows = {e["row"]: e for e in paired_rows(records, ["fpn", "dsic", "isg", "csg"])}
    diffs = [2.0, 1.0, 3.0, 1.0]
    assert rows["dsic"]["diffs"] == pytest.approx(diffs) and rows["dsic"]["paired"] == [0, 1, 2, 3]
    half = 3.182 * statistics.stdev(diffs) / 2
    assert rows["dsic"]["low"] == pytest.approx(1.75 - half) and rows["dsic"]["high"] == pytest.approx(1.75 + half)
    assert verdict(rows["dsic"]) == "higher" and verdict(rows["isg"]) == "not established"
    assert rows["isg"]["paired"] == [0, 1] and rows["csg"]["seeds"] == []
    assert "| csg | none |" in paired_table(records, ["fpn", "csg"])
    table = paired_table(records, ["fpn", "dsic", "isg", "csg"])
    line = next(x for x in table.splitlines() if x.startswith("| dsic |"))
    assert "| 0,1,2,3 |" in line and "42.0 / 43.0 / 44.0 / 44.0" in line and "+1.75 [" in line and "higher" in line
    assert next(x for x in table.splitlines() if x.startswith("| fpn |")).endswith("| - | - |")
    (tmp_path / "junk_seed0.json").write_text("{}")
    with pytest.raises(ValueError, match="junk_seed0.json: not a run record"):
        load_records(tmp_path)


def test_nearest_centroid_accuracy_separable_and_random():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    separable = rng.normal(size=(60, 4)) * 0.1 + labels[:, None]
    assert nearest_centroid_cv(separable, labels) == 1.0
    noise = rng.normal(size=(60, 4))
    assert nearest_centroid_cv(noise, labels) < 0.6


def test_individuality_numbers_from_known_state_matrices():
    rng = np.random.default_rng(1)
    base = np.full((30, 2, 2), 0.25)
    small = base + rng.normal(0, 0.01, base.shape)
    large = base + rng.normal(0, 0.01, base.shape)
    large[:, 1, 0] += 0.2  # one entry routes large-object images differently
    mixed = base + rng.normal(0, 0.01, base.shape)
    alive = [np.array([True, False, False, True])]
    groups = {g: {"W": w, "a": np.full((30, 3), v), "alive": alive}
              for g, w, v in (("small", small, 0.1), ("large", large, 0.3), ("mixed", mixed, 0.2))}
    out = individuality(groups)
    assert out["W_max_diff_at"] == [1, 0]
    assert out["W_max_diff"] == pytest.approx(0.2, abs=0.01)
    assert out["W_effect_size"] > 10
    # 3 of 4 entries are noise; small and mixed are alike, so about 2/3 of the groups are told apart
    assert out["W_small_large_accuracy"] > 0.9 and 0.5 < out["W_group_accuracy"] < 0.8
    assert np.array(out["W_large"]).shape == (2, 2) and np.array(out["W_std_small"]).max() < 0.02
    assert out["a_max_diff"] == pytest.approx(0.2)
    assert out["control_units_alive"] == [0.5]
    assert "S_max_diff" not in out  # no selection maps given


def test_individuality_of_selection_maps():
    rng = np.random.default_rng(2)
    groups = {}
    for g, shift in (("small", 0.0), ("large", 0.1), ("mixed", 0.05)):
        sel = np.full((20, 3, 3), 0.5) + rng.normal(0, 0.01, (20, 3, 3))
        sel[:, 0, 2] += shift
        groups[g] = {"W": None, "S": sel, "a": None, "alive": []}
    out = individuality(groups)
    assert out["S_max_diff_at"] == [0, 2] and out["S_max_diff"] == pytest.approx(0.1, abs=0.01)
    assert out["S_effect_size"] > 5 and np.array(out["S_mixed"]).shape == (3, 3)


def test_individuality_of_single_channels():
    rng = np.random.default_rng(3)
    groups = {}
    for g, shift in (("small", 0.0), ("large", 0.3), ("mixed", 0.1)):
        ch = np.full((25, 2, 2, 8), 0.25) + rng.normal(0, 0.01, (25, 2, 2, 8))  # [N, n_out, n_in, C]
        ch[:, 1, 0, 5] += shift  # channel 5 of path 0 -> level 1
        groups[g] = {"W": None, "w_channels": ch, "a": None, "alive": []}
    out = individuality(groups)
    assert out["w_channel_max_diff_at"] == [0, 1, 5]
    assert out["w_channel_max_diff"] == pytest.approx(0.3, abs=0.01) and out["w_channel_effect_size"] > 10
    assert out["w_channel_image_std"] == pytest.approx(0.01, abs=0.003)  # the median channel is noise alone


def test_collect_states_keeps_every_channel_of_a_real_dsic():
    import torch

    from dsic.analysis.probe import collect_states
    from dsic.models.builder import build_detector

    torch.manual_seed(0)
    model = build_detector("faster_rcnn", "resnet_tiny", "dsic", num_classes=3, min_size=64, max_size=64,
                           out_channels=32)
    states = collect_states(model, [torch.rand(3, 64, 64) for _ in range(3)])
    n = states["W"].shape[1]
    assert states["w_channels"].shape == (3, n, n, 32)
    # W[i, k] is the channel mean of act(w_ik): the same numbers, kept before the mean
    np.testing.assert_allclose(states["w_channels"].mean(-1).transpose(0, 2, 1), states["W"], atol=1e-6)
