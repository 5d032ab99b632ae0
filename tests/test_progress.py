"""Plain progress without a terminal: dsic predict / visualize print whole lines (no carriage
returns, warnings on lines of their own); make demo's parallel runs report their iteration and ETA."""

import io
import types

from dsic.cli import main
from dsic.engine.reporting import Progress, format_line, run_progress


def test_predict_without_a_terminal_prints_plain_progress_lines(checkpoint, image_folder, tmp_path, capsys):
    assert main(["predict", str(checkpoint), str(image_folder), "--out", str(tmp_path / "p"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "it/s" not in err and "img/s" not in err  # no tqdm bar in a redirected log
    lines = err.splitlines()
    assert all(line.startswith("[dsic] ") for line in lines), lines
    progress = [line for line in lines if line.startswith("[dsic] images ")]
    assert [line.split()[2:4] for line in progress] == [["1/4", "(25%)"], ["4/4", "(100%)"]]
    assert " s/img eta " in progress[0]
    assert any(line.startswith(f"[dsic] warning: skipping {image_folder / 'broken.jpg'}: ") for line in lines)


def test_visualize_without_a_terminal_prints_plain_progress_lines(checkpoint, image_folder, tmp_path, capsys):
    assert main(["visualize", str(checkpoint), str(image_folder), "--out", str(tmp_path / "v"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "[dsic] images 4/4 (100%)" in err


def test_progress_lines_come_every_interval_and_a_warning_stands_alone(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    progress = Progress(list(range(5)), "images", "img", every=0.0, bar=False)
    for i in progress:
        if i == 2:
            progress.write("[dsic] warning: skipping 2")
    lines = err.getvalue().splitlines()
    assert [line.split()[2] for line in lines if "images" in line] == ["1/5", "2/5", "3/5", "4/5", "5/5"]
    assert "[dsic] warning: skipping 2" in lines
    assert Progress([1], "images", bar=False).bar is None and not list(Progress([], "x", bar=False))


def test_run_progress_reads_the_latest_training_line_back():
    rec = {"iter": 40, "epoch": 1, "loss": 1.23456, "loss_classifier": 0.5, "lr": 0.02, "time": 0.85}
    text = "\n".join(["[dsic] something else", format_line({**rec, "iter": 20}, 1200, 4, 60.0),
                      format_line(rec, 1200, 4, 985.0), "[dsic] eval after epoch 1 (iter 40): bbox AP 1.0 AP50 2.0"])
    assert run_progress(text) == "iter 40/1200 (3%), epoch 1/4, loss 1.2346, eta 0:16:25"
    assert run_progress(format_line({**rec, "iter": 1}, 1200, 4, None)) == "iter 1/1200 (0%), epoch 1/4, loss 1.2346"
    assert run_progress("[dsic] training fpn\n") is None


def test_parallel_demo_runs_show_their_progress(tmp_path, monkeypatch, capsys):
    """make demo trains its runs as subprocesses with their output in <run>.log: the terminal gets a
    line per run with its iteration and ETA (it said nothing for minutes)."""
    from dsic import demo

    class FakeRun:  # writes two plain training lines into its log, then ends
        def __init__(self, cmd, env, stdout, stderr):
            self.log, self.polls = stdout, 0

        def poll(self):
            self.polls += 1
            if self.polls <= 2:
                rec = {"iter": 10 * self.polls, "epoch": 1, "loss": 1.5, "lr": 0.02, "time": 0.5}
                self.log.write(format_line(rec, 100, 2, 45.0) + "\n")
                self.log.flush()
                return None
            self.returncode = 0
            return 0

    monkeypatch.setattr(demo, "ensure_data", lambda out, protocol, quick: tmp_path / "data")
    monkeypatch.setattr(demo, "train_command", lambda *a: ["c.yaml"])
    monkeypatch.setattr(demo, "_stamp", lambda *a, **k: None)
    monkeypatch.setattr("dsic.results.git_commit", lambda folder: None)
    monkeypatch.setattr(demo.subprocess, "Popen", FakeRun)
    monkeypatch.setattr(demo.time, "sleep", lambda s: None)
    demo.train_runs(tmp_path, types.SimpleNamespace(threads=1), {"fpn": []}, [0], jobs=2, status_seconds=0.0)
    out = capsys.readouterr().out
    assert "[dsic] fpn (seed 0): iter 10/100 (10%), epoch 1/2, loss 1.5000, eta 0:00:45\n" in out
    assert "[dsic] fpn (seed 0): iter 20/100 (20%), epoch 1/2, loss 1.5000, eta 0:00:45\n" in out


def test_a_run_trained_in_a_process_of_its_own_records_its_cpu_time():
    """make demo and jobs > 1 train in subprocesses; their wall.json gets the child's CPU time too."""
    import subprocess
    import sys

    from dsic import demo

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    proc = subprocess.Popen([sys.executable, "-c", burn])
    returncode, cpu = None, None
    while returncode is None:
        returncode, cpu = demo.poll_cpu(proc)
    assert returncode == 0 and 0.3 <= cpu < 5.0
