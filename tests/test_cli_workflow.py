"""The practitioner's command line: predict outputs, exit codes, options anywhere, run reports, plots."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dsic.cli import main, parse
from dsic.config import load_config

from .conftest import tiny_overrides

ROOT = Path(__file__).resolve().parents[1]


def test_predict_takes_the_config_from_the_checkpoint_and_writes_coco_results(checkpoint, image_folder, tmp_path,
                                                                                capsys, tiny_synth):
    out = tmp_path / "pred"
    code = main(["predict", str(checkpoint), str(image_folder), "--out", str(out), "--score-thresh", "0.05",
                 "--per-image-json", "--device", "cpu"])
    assert code == 0
    assert sorted(p.name for p in out.glob("*_det.png")) == ["a_jpg_det.png", "a_png_det.png", "b_det.png"]
    err = capsys.readouterr().err
    assert f"[dsic] warning: skipping {image_folder / 'broken.jpg'}: cannot identify image file" in err
    assert "[dsic] skipped 1 of 4 file(s) that could not be read" in err
    index = json.loads((out / "images.json").read_text())
    assert [(i["id"], Path(i["file_name"]).name) for i in index["images"]] == [(1, "a.jpg"), (2, "a.png"),
                                                                               (3, "b.png")]
    gt_cats = json.loads((tiny_synth / "annotations" / "instances_train.json").read_text())["categories"]
    assert index["categories"] == [{"id": c["id"], "name": c["name"]} for c in sorted(gt_cats, key=lambda c: c["id"])]
    results = json.loads((out / "results.json").read_text())
    assert results and {r["image_id"] for r in results} <= {1, 2, 3}
    assert all(r["score"] >= 0.05 and len(r["bbox"]) == 4 for r in results)
    per_image = json.loads((out / "a_jpg.json").read_text())
    assert per_image["file_name"].endswith("a.jpg") and per_image["width"] == index["images"][0]["width"]
    first = [r for r in results if r["image_id"] == 1]
    assert len(per_image["detections"]) == len(first)
    if first:
        d, r = per_image["detections"][0], first[0]
        assert d["category_id"] == r["category_id"] and d["name"] in {c["name"] for c in gt_cats}
        assert d["box"][2] - d["box"][0] == pytest.approx(r["bbox"][2], abs=0.02)


def test_a_device_this_machine_lacks_is_one_line_and_exit_2_for_every_command(checkpoint, image_folder, tiny_synth,
                                                                              tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    no_cuda = "dsic: error: device 'cuda' asked for, but CUDA is not available here; use --device cpu"
    config = ROOT / "benchmarks" / "protocols" / "_base_" / "embedded.yaml"
    calls = [["train", str(config), *tiny_overrides(tiny_synth, tmp_path / "run"), "--device", "cuda"],
             ["predict", str(checkpoint), str(image_folder), "--out", str(tmp_path / "p"), "--device", "cuda"],
             ["profile", "--necks", "fpn", "--device", "cuda"]]
    for call in calls:
        assert main(call) == 2, call[0]
        assert capsys.readouterr().err == f"{no_cuda} (--debug shows the traceback)\n", call[0]
    assert not (tmp_path / "run").exists()  # nothing written before the device was checked
    for command in ("train", "eval", "predict", "profile"):  # not a device at all: argparse's own usage error
        words = [command] + (["--out", str(tmp_path)] if command == "predict" else []) + ["--device", "gpu0"]
        with pytest.raises(SystemExit) as exit_:
            main(words)
        assert exit_.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"dsic {command}: error: argument --device: expected auto, cpu, cuda or cuda:N, got 'gpu0'")


def test_predict_accepts_globs_and_an_optional_config(checkpoint, image_folder, tmp_path):
    out = tmp_path / "glob"
    assert main(["predict", str(checkpoint), str(image_folder / "*.png"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*_det.png")) == ["a_det.png", "b_det.png"]


def test_user_errors_exit_2_with_one_line_and_debug_shows_the_traceback(checkpoint, image_folder, tmp_path, capsys):
    missing = tmp_path / "nope.pth"
    assert main(["predict", str(missing), str(image_folder), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"dsic: error: checkpoint not found: {missing} (--debug shows the traceback)\n"
    assert main(["predict", str(checkpoint), str(image_folder / "broken.jpg"), "--out", str(tmp_path)]) == 2
    assert "dsic: error: no image could be read: cannot read image" in capsys.readouterr().err
    assert main(["predict", str(checkpoint), str(image_folder), "--out", str(tmp_path), "--device", "cuda:7"]) == 2
    assert "device 'cuda:7' asked for, but CUDA is not available here" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  nek: dsic\n")
    assert main(["train", str(bad)]) == 2
    assert capsys.readouterr().err.startswith(f"dsic: error: {bad.resolve()}: unknown key 'model.nek' (did you mean")
    with pytest.raises(FileNotFoundError):
        main(["--debug", "predict", str(missing), str(image_folder), "--out", str(tmp_path)])
    with pytest.raises(FileNotFoundError):
        main(["predict", str(missing), str(image_folder), "--out", str(tmp_path), "--debug"])


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_training_ends_with_one_line_and_the_shell_exit_code(monkeypatch, capsys, signum, code):
    """Training has saved interrupted.pth and said so (tests/test_engine_train.py); no traceback follows."""
    from dsic.engine import train

    def interrupted(*args, **kwargs):
        raise train.TrainingInterrupted(signum)

    monkeypatch.setattr(train, "main_train", interrupted)
    assert main(["train", "cfg.yaml"]) == code
    assert capsys.readouterr().err == f"dsic: training interrupted by signal {signum.name}\n"
    with pytest.raises(train.TrainingInterrupted):
        main(["train", "cfg.yaml", "--debug"])


@pytest.mark.parametrize("command", ["predict", "visualize"])
def test_a_score_threshold_outside_0_1_is_refused(command, capsys):
    with pytest.raises(SystemExit) as stop:
        parse([command, "ck.pth", "img.png", "--out", "o", "--score-thresh", "30"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.endswith("argument --score-thresh: 30 is not a score: detector scores lie in [0, 1]\n")
    with pytest.raises(SystemExit):
        parse([command, "ck.pth", "img.png", "--out", "o", "--score-thresh", "high"])
    assert "argument --score-thresh: expected a number in [0, 1], got 'high'" in capsys.readouterr().err
    from dsic.inference import predict_images
    with pytest.raises(ValueError, match=r"score_thresh = -0.1 is not a score"):
        predict_images("ck.pth", ["img.png"], "o", score_thresh=-0.1)


def test_visualize_says_when_the_model_has_no_gates(checkpoint, image_folder, tmp_path, capsys):
    """The fixture is an FPN detector: its figures can only show detections, and visualize says why."""
    assert main(["visualize", str(checkpoint), str(image_folder), "--out", str(tmp_path / "v")]) == 0
    err = capsys.readouterr().err
    # the gated necks listed are the library's, then any a project registered (the routing study's tests
    # register dsic_routing in this process)
    assert re.search(rf"\[dsic\] warning: {re.escape(str(checkpoint))}: neck 'fpn' has no gates "
                     r"\(only isg, csg, dsic(, \w+)* have them\); the figures show the detections alone\n", err)
    drawn = [p.name for p in (tmp_path / "v").iterdir()]
    assert drawn and all(name.endswith("_gates.png") for name in drawn)


def test_an_output_folder_that_is_a_file_is_named_in_one_line(checkpoint, image_folder, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("a user's file")
    assert main(["predict", str(checkpoint), str(image_folder), "--out", str(taken)]) == 2
    assert capsys.readouterr().err == (f"dsic: error: {taken}: exists and is not a folder (a folder is written "
                                       "there) (--debug shows the traceback)\n")
    assert main(["predict", str(checkpoint), str(image_folder), "--out", str(taken / "preds")]) == 2
    assert f"dsic: error: {taken / 'preds'}: part of this path is a file, not a folder" in capsys.readouterr().err
    assert taken.read_text() == "a user's file"


def test_a_dropped_box_is_warned_in_one_line_without_a_source_line(checkpoint, tiny_synth, tmp_path):
    data = json.loads((tiny_synth / "annotations" / "instances_val.json").read_text())
    data["annotations"].append({**data["annotations"][0], "id": 999, "bbox": [500, 500, 4, 4]})  # outside
    bad = tmp_path / "val.json"
    bad.write_text(json.dumps(data))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # the real stderr, no pytest capture
    done = subprocess.run([sys.executable, "-m", "dsic.cli", "eval", str(checkpoint), f"data.val.annotations={bad}",
                           f"data.val.images={tiny_synth / 'val'}", f"output_dir={tmp_path / 'eval'}",
                           "--evaluator", "pycocotools"], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    err = done.stderr.splitlines()
    assert f"[dsic] warning: {bad}: dropped 1 degenerate box(es) (empty inside their image) from training and " \
           "evaluation alike: annotation(s) 999" in err
    assert not [line for line in err if ".py:" in line or "warnings.warn" in line or line.startswith(" ")]


def test_help_shows_the_defaults(capsys):
    for command in (["profile"], ["data", "synth"], ["data", "pretrain"], ["demo"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for expected in ("--size SIZE square input side in pixels (default: 512)",
                     "--seed SEED the same seed writes the same dataset (default: 0)",
                     "--steps STEPS SGD steps (default: 1200)", "--seeds SEEDS seeds per neck (default: 1)"):
        assert expected in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_options_go_anywhere_and_overrides_are_key_value_words():
    args = parse(["train", "--resume", "cfg.yaml", "train.epochs=2", "--device", "cpu", "model.neck=fpn"])
    assert args.resume and args.device == "cpu" and args.words == ["cfg.yaml", "train.epochs=2", "model.neck=fpn"]
    args = parse(["train", "cfg.yaml", "train.epochs=2", "--resume"])
    assert args.resume and args.words == ["cfg.yaml", "train.epochs=2"]
    args = parse(["eval", "cfg.yaml", "--evaluator", "pycocotools", "run/final.pth", "eval.max_dets=50"])
    assert args.words == ["cfg.yaml", "run/final.pth", "eval.max_dets=50"] and args.evaluator == "pycocotools"


def test_version_and_exit_code_in_a_subprocess(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "dsic.cli", "--version"], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "dsic 0.1.0"
    done = subprocess.run([sys.executable, "-m", "dsic.cli", "eval", str(tmp_path / "x.yaml"), "ck.pth"],
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 2
    assert done.stderr == f"dsic: error: config file not found: {tmp_path / 'x.yaml'} (--debug shows the traceback)\n"


@pytest.fixture(scope="module")
def reported_run(tiny_synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    args = ["train", *tiny_overrides(tiny_synth, out, "model.neck=fpn", "model.num_classes=null", "train.epochs=1",
                                     "train.max_iters=3", "train.eval_every=1", "train.tensorboard=true")]
    return out, args


def test_train_without_a_terminal_logs_plain_lines_a_summary_and_run_info(reported_run, capsys):
    out, args = reported_run
    assert main(args) == 0
    stdout = capsys.readouterr().out
    lines = [line for line in stdout.splitlines() if line.startswith("[dsic] iter ")]
    assert [line.split()[2] for line in lines] == ["1/3", "2/3", "3/3"]
    assert "epoch 1/1 loss " in lines[0] and "(loss_classifier " in lines[0] and " s/it" in lines[0]
    assert " eta " not in lines[0] and re.search(r" s/it eta \d+:\d\d:\d\d$", lines[1])
    assert "[dsic] eval after epoch 1 (iter 3): bbox AP " in stdout
    summary = (out / "summary.md").read_text()
    assert summary.strip() in stdout and "| class | bbox AP |" in summary
    names = [c["name"] for c in load_config(out / "config.yaml")["model"]["classes"]]
    assert len(names) == 10 and all(f"| {n} |" in summary for n in names)
    assert f"- final: {out / 'final.pth'}" in summary and f"[dsic] outputs in {out}" in stdout
    info = json.loads((out / "run_info.json").read_text())
    assert info["packages"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert info["torch_threads"] == torch.get_num_threads() and info["host"] and info["command"][1:] == sys.argv[1:]
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    ckpt = torch.load(out / "final.pth", map_location="cpu", weights_only=False)
    assert [c["name"] for c in ckpt["config"]["model"]["classes"]] == names


def test_plot_draws_loss_and_ap_curves_of_a_run(reported_run, capsys):
    out, args = reported_run
    if not (out / "log.jsonl").is_file():
        main(args)
    assert main(["plot", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[-2:] == [str(out / "plots" / "loss.png"), str(out / "plots" / "ap.png")]
    assert all(Path(p).stat().st_size > 5000 for p in printed[-2:])
    assert main(["plot", str(out / "plots")]) == 2


def test_a_loss_curve_of_one_logged_iteration_is_visible(tmp_path):
    import matplotlib.pyplot as plt

    from dsic.visualize import plot_losses

    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"iter": 1, "epoch": 1, "lr": 0.01, "loss": 2.5}) + "\n")
    fig, ax = plt.subplots()
    assert plot_losses(ax, {"run": log}) == 1
    (line,) = ax.lines
    assert line.get_marker() == "o" and line.get_xydata().tolist() == [[1.0, 2.5]]
    plt.close(fig)


def test_per_class_ap_of_perfect_and_of_missing_predictions():
    from dsic.engine.reporting import per_class_ap

    from .test_engine_eval import make_gt

    gt = make_gt()
    gt["categories"] = gt["categories"] + [{"id": 99, "name": "unseen"}]
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
               for a in gt["annotations"] if not a["iscrowd"]]
    assert per_class_ap(gt, perfect) == {"cat": 1.0, "dog": 1.0, "eel": 1.0, "unseen": -1.0}
    without_dogs = [r for r in perfect if r["category_id"] != 7]
    assert per_class_ap(gt, without_dogs) == {"cat": 1.0, "dog": 0.0, "eel": 1.0, "unseen": -1.0}


def test_fine_selection_panel_shows_how_many_channels_open_and_how_far():
    import matplotlib.pyplot as plt

    from dsic.visualize import plot_fine_selection

    fig, ax = plt.subplots()
    # stage C2: 1 of 4 channels open at 0.8; C3 has a single block (None); C4: 2 of 4 at 0.5 / 0.2
    plot_fine_selection(ax, [torch.tensor([0.0, 0.8, 0.0, 0.0]).view(4, 1, 1), None, torch.tensor([0.2, 0, 0.5, 0])])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["C2: mean 0.20, 25 % > 0.1", "C4: mean 0.17, 50 % > 0.1"]
    c2, c4 = ax.get_lines()
    assert list(c2.get_xdata()) == [0.25, 0.5, 0.75, 1.0] and list(c2.get_ydata()) == [0.8, 0.0, 0.0, 0.0]
    assert list(c4.get_ydata()) == pytest.approx([0.5, 0.2, 0.0, 0.0])
    plt.close(fig)
