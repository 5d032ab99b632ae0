"""Records name their machine and detector; tables flag pairs across machines and intervals at the edge."""

import importlib.util
import sys
from pathlib import Path

from dsic.results import host_fingerprint, paired_rows, paired_table, verdict

ROOT = Path(__file__).resolve().parents[1]


def _record(row, seed, ap, host=None):
    rec = {"row": row, "seed": seed, "metrics": dict.fromkeys(("AP", "AP50", "AP75", "APs", "APm", "APl"), ap)}
    if host is not None:
        rec["host"] = host
    return rec


def test_host_fingerprint_names_cpu_cores_bf16_and_torch():
    import torch

    host = host_fingerprint()
    assert set(host) == {"cpu", "cores", "bf16_native", "torch"}
    assert host["cpu"] and host["cores"] >= 1 and isinstance(host["bf16_native"], bool)
    assert host["torch"] == torch.__version__


def test_pair_across_machines_is_flagged_and_old_records_are_not():
    a, b = {"cpu": "A", "cores": 2}, {"cpu": "B", "cores": 2}
    records = {"fpn": {s: _record("fpn", s, 50.0, a) for s in range(3)},
               "dsic": {0: _record("dsic", 0, 52.0, a), 1: _record("dsic", 1, 53.0, b), 2: _record("dsic", 2, 52.5)}}
    entry = paired_rows(records, ["fpn", "dsic"])[1]
    assert entry["two_machines"] == [1]  # seed 2 has no host: taken at the pairing rule's word
    line = paired_table(records, ["fpn", "dsic"]).splitlines()[-1]
    assert line.endswith("(seeds 1 on two machines) |")


def test_an_interval_whose_end_rounds_to_zero_is_at_the_edge():
    assert verdict({"diff": 0.54, "low": 0.002, "high": 1.07}) == "at the edge"
    assert verdict({"diff": -0.5, "low": -1.0, "high": -0.004}) == "at the edge"
    assert verdict({"diff": 0.54, "low": 0.006, "high": 1.07}) == "higher"
    assert verdict({"diff": -0.5, "low": -1.0, "high": -0.2}) == "lower"
    assert verdict({"diff": 0.1, "low": -0.3, "high": 0.5}) == "not established"


def test_table1_rows_per_detector_against_its_own_fpn():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    run = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = run
    spec.loader.exec_module(run)
    rows = run.variants("table1", "v3")
    assert list(rows) == [f"{a}_{n}" for a in ("fcos", "retinanet", "mask_rcnn")
                          for n in ("fpn", "dsic_gatelr01", "csg_gatelr01")]
    # each row: its detector's setting, then the neck (the rows of a detector differ in the neck alone)
    assert rows["fcos_dsic_gatelr01"] == run.TABLE1_ARCHS["fcos"] + ["model.neck=dsic", "train.gate_lr_mult=0.1"]
    assert rows["mask_rcnn_fpn"] == run.TABLE1_ARCHS["mask_rcnn"] + ["model.neck=fpn"]
    assert run.TABLE1_ARCHS["fcos"][0] == "model.arch=fcos"
    assert run.variants("table1", "v2") == {}
    deep = run.variants("table4_tiny34", "v3")
    assert list(deep) == ["r34_fpn", "r34_isg_gatelr01", "r34_csg_gatelr01", "r34_dsic_gatelr01"]
    assert deep["r34_isg_gatelr01"][0] == "model.backbone=resnet_tiny34"
    assert deep["r34_isg_gatelr01"][1].endswith("benchmarks/weights/resnet_tiny34_gn_crops.pth")
    assert Path(deep["r34_isg_gatelr01"][1].split("=", 1)[1]).is_file()
    masks = {"mask_rcnn_fpn": {0: dict(_record("mask_rcnn_fpn", 0, 40.0), mask_metrics=_record("", 0, 30.0)["metrics"])}}
    text = run.table1_markdown(masks, "v3")
    assert "**mask_rcnn, mask AP**" in text and "| mask_rcnn_fpn | 0 | 30.0 |" in text
