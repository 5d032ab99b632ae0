"""The command line end to end on seconds-long runs: demo --quick, eval, predict, visualize, synth."""

import json
from pathlib import Path

import pytest
import torch

from dsic.cli import main
from dsic.config import ConfigError
from dsic.demo import BASE_CONFIG, data_overrides

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    main(["demo", "--quick", "--out", str(out)])
    return out


def test_demo_quick_writes_table_records_probe_and_plots(quick_demo, capsys):
    table = (quick_demo / "summary.md").read_text()
    # DSIC as shipped (train.gate_lr_mult 0.1) is shown as dsic; its record keeps the protocol-v3 row
    # name dsic_gatelr01 (the configs pin 1.0), so it pairs with the committed records
    assert "| fpn |" in table and "| dsic |" in table and "protocol v3" in table and "| dsic_gatelr01 |" not in table
    assert "dsic is the protocol row dsic_gatelr01" in table
    assert "\ndsic: routing differs between all-small and all-large images by up to" in table
    summary = json.loads((quick_demo / "summary.json").read_text())
    assert set(summary) == {"fpn", "dsic_gatelr01"}
    for row in ("fpn", "dsic_gatelr01"):
        record = json.loads((quick_demo / "results" / f"{row}_seed0.json").read_text())
        assert record["protocol"] == "v3" and record["seed"] == 0 and record["threads"] >= 1
        assert set(record["metrics"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl"} and record["wall_s"] > 0
        assert len(record["commit"]) >= 7 and record["iterations"] == 4
    probe = json.loads((quick_demo / "results" / "dsic_gatelr01_seed0.json").read_text())["gate_probe"]
    assert {"W_small", "W_large", "W_mixed", "W_std_small", "W_std_large", "W_max_diff", "W_effect_size",
            "W_group_accuracy", "a_small", "control_units_alive", "S_small", "S_max_diff",
            "w_channel_max_diff", "w_channel_image_std"} <= set(probe)
    assert len(probe["W_small"]) == 4 and len(probe["W_small"][0]) == 4
    assert "gate_probe" not in json.loads((quick_demo / "results" / "fpn_seed0.json").read_text())
    import yaml

    trained = yaml.safe_load((quick_demo / "dsic_gatelr01_seed0" / "config.yaml").read_text())["train"]
    assert trained["gate_lr_mult"] == 0.1
    for name in ("ap_bars.png", "loss_curves.png", "routing_dsic.png"):
        assert (quick_demo / "plots" / name).stat().st_size > 1000
    # a second run reuses the finished runs instead of training again
    main(["demo", "--quick", "--out", str(quick_demo)])
    assert "is complete, reusing it" in capsys.readouterr().out


def test_eval_predict_visualize(quick_demo, tmp_path, capsys):
    data = quick_demo / "data" / "synth_hard"
    ckpt = quick_demo / "dsic_gatelr01_seed0" / "final.pth"
    overrides = data_overrides(data) + ["model.neck=dsic", "model.min_size=160", "model.max_size=160",
                                        f"output_dir={tmp_path / 'eval'}"]
    main(["eval", str(BASE_CONFIG), str(ckpt), *overrides, "--evaluator", "pycocotools"])
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics["bbox"]) >= {"AP", "AP50", "APs", "APm", "APl"}
    images = sorted((data / "val").iterdir())[:2]
    main(["predict", str(BASE_CONFIG), str(ckpt), *map(str, images), "--out", str(tmp_path / "pred"),
          "--score-thresh", "0.0", "--set", *overrides])
    assert len(list((tmp_path / "pred").glob("*_det.png"))) == 2
    main(["visualize", str(BASE_CONFIG), str(ckpt), str(images[0]), "--out", str(tmp_path / "vis"),
          "--set", *overrides])
    assert (tmp_path / "vis" / f"{images[0].stem}_gates.png").stat().st_size > 1000


def test_bad_inputs_name_the_culprit(quick_demo, tmp_path, capsys):
    ckpt = quick_demo / "dsic_gatelr01_seed0" / "final.pth"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"no image here")
    overrides = data_overrides(quick_demo / "data" / "synth_hard") + ["model.neck=dsic"]
    assert main(["predict", str(BASE_CONFIG), str(ckpt), str(broken), "--out", str(tmp_path), *overrides]) == 2
    assert f"dsic: error: no image could be read: cannot read image {broken}" in capsys.readouterr().err
    assert main(["predict", str(BASE_CONFIG), str(tmp_path / "nope.pth"), str(broken), "--out", str(tmp_path)]) == 2
    assert f"dsic: error: checkpoint not found: {tmp_path / 'nope.pth'}" in capsys.readouterr().err
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("model:\n  nek: dsic\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'model.nek' \(did you mean 'model.neck'\?\)"):
        main(["train", str(bad_cfg), "--debug"])


def test_train_without_a_config_says_what_it_needs(capsys):
    assert main(["train"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [("dsic: error: dsic train needs a config: dsic train CONFIG.yaml [key=value ...] "
                    "(examples in configs/; README.md, 'Your own data') (--debug shows the traceback)")]


def test_quick_demo_loss_curves_show_every_logged_iteration(quick_demo):
    import matplotlib.pyplot as plt

    from dsic.visualize import plot_losses

    fig, ax = plt.subplots()
    drawn = plot_losses(ax, {"dsic": quick_demo / "dsic_gatelr01_seed0" / "log.jsonl"})
    assert drawn == 4 and ax.lines[0].get_marker() == "o"  # max_iters=4, each logged
    plt.close(fig)


def test_data_synth_command(tmp_path, capsys):
    main(["data", "synth", "--out", str(tmp_path / "s"), "--num-train", "3", "--num-val", "2", "--size", "96"])
    stats = json.loads(capsys.readouterr().out)
    assert stats["train"]["images"] == 3 and stats["val"]["images"] == 2
    assert (tmp_path / "s" / "annotations" / "instances_val.json").is_file()
    main(["data", "synth", "--out", str(tmp_path / "s"), "--num-train", "2", "--num-val", "1", "--size", "96"])
    assert json.loads(capsys.readouterr().out)["train"]["images"] == 2  # an earlier synthetic set is rewritten


def test_data_synth_does_not_write_over_a_folder_of_other_files(tmp_path, capsys):
    mine = tmp_path / "mine"
    (mine / "annotations").mkdir(parents=True)
    (mine / "annotations" / "instances_train.json").write_text("{}")
    assert main(["data", "synth", "--out", str(mine), "--num-train", "1", "--num-val", "1", "--size", "96"]) == 2
    assert capsys.readouterr().err == (f"dsic: error: {mine}: the folder holds files that dsic data synth did not "
                                       f"write (an earlier synthetic set has its README.txt); give a new or empty "
                                       f"--out (--debug shows the traceback)\n")
    assert (mine / "annotations" / "instances_train.json").read_text() == "{}"
    assert not (mine / "train").exists()


def test_benchmark_script_quick(quick_demo, capsys):
    import runpy
    import sys

    def run(*extra):
        argv = sys.argv
        sys.argv = ["run.py", "table4", "--quick", "--seeds", "1", "--jobs", "1", "--out", str(quick_demo), *extra]
        try:
            with pytest.raises(SystemExit) as done:
                runpy.run_path(str(ROOT / "benchmarks" / "run.py"), run_name="__main__")
        finally:
            sys.argv = argv
        assert done.value.code == 0

    results = quick_demo / "bench_results"
    run("--results", str(results))
    table = (results / "table4.md").read_text()
    for name in ("fpn", "isg", "csg", "dsic"):
        assert f"| {name} | 0 |" in table
        assert (results / f"{name}_seed0.json").is_file()
    assert "fpn_seed0 is complete, reusing it" in capsys.readouterr().out  # the demo's run
    committed = ROOT / "benchmarks" / "results" / "v2" / "table4.md"
    before = committed.read_bytes()
    run()  # without --results a smoke run's records and table stay in --out, off the committed ones
    assert (quick_demo / "results" / "table4.md").read_text() == table
    assert (quick_demo / "results" / "fpn_seed0.json").is_file() and committed.read_bytes() == before
    run("--results", str(results), "--variants", "fpn")  # a subset prints its rows and leaves the table whole
    assert (results / "table4.md").read_text() == table
    assert f"{results / 'table4.md'} left as it is" in capsys.readouterr().out


def test_summary_reports_mean_std_and_every_seed():
    from dsic.demo import METRICS, summarize, summary_table

    seeds = [{m: 0.5 for m in METRICS} | {"AP": 0.50}, {m: 0.5 for m in METRICS} | {"AP": 0.56}]
    r = summarize(seeds)
    assert r["AP"] == pytest.approx(0.53) and r["AP_std"] == pytest.approx(0.03) and r["seeds"] == 2
    row = summary_table({"dsic": r}, "t").splitlines()[-1]
    assert row.startswith("| dsic | 53.0 ± 3.0 | 50.0 ± 0.0 |") and "| 50.0 / 56.0 | - | - | - |" in row


def test_gate_stats_script_reads_a_trained_run(quick_demo):
    import runpy

    script = runpy.run_path(str(ROOT / "benchmarks" / "gate_stats.py"))
    stats = script["collect"](quick_demo / "dsic_gatelr01_seed0", images=2)
    assert stats["images"] == 2 and len(stats["a"]) == 2 and len(stats["a"][0]) == 4
    for a in stats["a"][0]:  # Fine Selection a = max(tanh(.), 0), one value per channel
        assert a.ndim == 1 and 0 <= a.min() and a.max() <= 1
    assert stats["w"][0].shape == (4, 4)  # state matrix: input level x output level
    text = script["report"](stats)
    assert "ISG stage 3: a mean" in text and "CSG W std over images" in text
    a0, b0 = (torch.stack([row[0] for row in stats[k]]) for k in ("a", "b"))  # stage 0: one former block
    weights = f"block weights {(a0 * b0[:, 0]).mean():+.3f} {(1 - a0).mean():+.3f} (last: the stage's output)"
    assert weights in text.splitlines()[1]
    with pytest.raises(SystemExit, match="has no gates"):
        script["collect"](quick_demo / "fpn_seed0", images=1)


@pytest.mark.parametrize("argv, message", [
    (["profile", "--size", "-64"], "argument --size: must be at least 32, got -64"),
    (["profile", "--repeats", "0"], "argument --repeats: must be at least 1, got 0"),
    (["profile", "--threads", "-1"], "argument --threads: must be at least 1, got -1"),
    (["profile", "--warmup", "x"], "argument --warmup: expected an integer >= 0, got 'x'"),
    (["data", "synth", "--out", "s", "--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    (["data", "synth", "--out", "s", "--num-train", "-3"], "argument --num-train: must be at least 0, got -3"),
    (["data", "pretrain", "--images", "i", "--annotations", "a", "--out", "o", "--threads", "0"],
     "argument --threads: must be at least 1, got 0"),
])
def test_counts_and_sizes_out_of_range_are_refused_by_the_parser(argv, message, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2 and capsys.readouterr().err.strip().endswith(f"error: {message}")
