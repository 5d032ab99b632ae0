"""A run folder describes one run: a fresh run moves whatever an earlier run, ``dsic eval`` or
``dsic plot`` left there to ``earlier/<time>/``; ``--resume`` keeps the run's first command line."""

import json

import pytest

from dsic.engine.checkpoint import RUN_FILES
from dsic.engine.train import train

from .test_engine_train import cfg_for, factory

pytestmark = pytest.mark.usefixtures("one_thread")

# one example of every kind of file a run, `dsic eval` or `dsic plot` writes (RUN_FILES)
EARLIER = {"last.pth": "last.pth", "interrupted.pth": "interrupted.pth", "final.pth": "final.pth",
           "log.jsonl": "log.jsonl", "config.yaml": "config.yaml", "run_info.json": "run_info.json",
           "summary.md": "summary.md", "eval_epoch*.json": "eval_epoch3.json",
           "results_epoch*.json": "results_epoch3.json", "eval.json": "eval.json",
           "results_eval.json": "results_eval.json", "plots": "plots/ap.png",
           "tensorboard": "tensorboard/events.out.tfevents.1.host"}


def test_every_kind_of_run_file_has_an_example():
    assert sorted(EARLIER) == sorted(RUN_FILES)


@pytest.mark.parametrize("name", EARLIER.values())
def test_a_fresh_run_moves_each_kind_of_earlier_file_aside(tiny_synth, tmp_path, name, capsys):
    """One file an earlier run left (a log alone: a run killed before its first checkpoint; an
    eval.json of `dsic eval`; plots/ of `dsic plot`) is moved, never overwritten nor left beside
    the new model."""
    old = tmp_path / name
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_text("the earlier run's\n")
    keep = tmp_path / "notes.txt"  # not a run's output: stays
    keep.write_text("mine\n")
    train(cfg_for(tiny_synth, tmp_path, "train.max_iters=1"), factory())
    (moved,) = (tmp_path / "earlier").iterdir()
    assert f"moved them to {moved}" in capsys.readouterr().err
    assert (moved / name).read_text() == "the earlier run's\n"
    top = tmp_path / name
    assert not top.exists() or top.read_bytes() != b"the earlier run's\n"  # rewritten by the new run, or gone
    assert keep.read_text() == "mine\n"


def test_a_fresh_run_leaves_only_its_own_files(tiny_synth, tmp_path):
    train(cfg_for(tiny_synth, tmp_path, "train.max_iters=1"), factory())
    for name in ("eval.json", "results_eval.json", "plots/ap.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("of the first run\n")
    train(cfg_for(tiny_synth, tmp_path, "train.max_iters=1", "train.seed=1"), factory())
    (moved,) = (tmp_path / "earlier").iterdir()
    assert sorted(p.name for p in moved.iterdir()) == [
        "config.yaml", "eval.json", "final.pth", "last.pth", "log.jsonl", "plots", "results_eval.json",
        "run_info.json", "summary.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.yaml", "earlier", "final.pth", "last.pth", "log.jsonl", "run_info.json", "summary.md"]


def test_a_folder_of_other_files_is_not_moved(tiny_synth, tmp_path):
    (tmp_path / "my.yaml").write_text("{}\n")
    train(cfg_for(tiny_synth, tmp_path, "train.max_iters=1"), factory())
    assert not (tmp_path / "earlier").exists() and (tmp_path / "my.yaml").is_file()


def test_resume_appends_to_the_runs_history_of_command_lines(tiny_synth, tmp_path):
    train(cfg_for(tiny_synth, tmp_path, "train.max_iters=2"), factory())
    first = json.loads((tmp_path / "run_info.json").read_text())
    train(cfg_for(tiny_synth, tmp_path, "train.max_iters=3"), factory(), resume=True)
    train(cfg_for(tiny_synth, tmp_path, "train.max_iters=4"), factory(), resume=True)
    info = json.loads((tmp_path / "run_info.json").read_text())
    assert {k: v for k, v in info.items() if k != "resumes"} == first  # the start of the run is kept
    assert [r["resumed_from"] for r in info["resumes"]] == [f"{tmp_path / 'last.pth'} (iteration 2)",
                                                            f"{tmp_path / 'last.pth'} (iteration 3)"]
    assert all(r["command"] and r["started"] and "packages" in r for r in info["resumes"])


def test_resume_without_a_readable_run_record_starts_one(tiny_synth, tmp_path):
    train(cfg_for(tiny_synth, tmp_path, "train.max_iters=2"), factory())
    (tmp_path / "run_info.json").write_text("{torn")
    train(cfg_for(tiny_synth, tmp_path, "train.max_iters=3"), factory(), resume=True)
    info = json.loads((tmp_path / "run_info.json").read_text())
    assert info["resumed_from"] == f"{tmp_path / 'last.pth'} (iteration 2)" and "resumes" not in info
