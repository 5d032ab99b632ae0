"""Faults and bad input end with one clear message, never run code and never lose or mix up a run."""

import os

import pytest
import torch

from dsic.cli import main
from dsic.engine.checkpoint import CheckpointError, load_weights_file, save_atomic
from dsic.engine.train import train

from .conftest import tiny_overrides


class RunsCode:
    """A pickle that runs a shell command when it is loaded (what a malicious checkpoint holds)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def evil(tmp_path):
    """A checkpoint-looking file whose 'model' runs ``touch marker`` when unpickled; returns (file, marker)."""
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    torch.save({"model": RunsCode(marker), "iteration": 3}, path)
    return path, marker


REFUSED = r"evil.pth: not a plain weights file: it wants to run or build \S*system, which could execute code"


def test_the_safe_loader_refuses_code_and_names_the_file(evil):
    path, marker = evil
    with pytest.raises(CheckpointError, match=REFUSED):
        load_weights_file(path)
    assert not marker.exists()


@pytest.mark.parametrize("command", ["eval", "predict", "visualize"])
def test_no_cli_entry_point_runs_code_from_a_checkpoint(evil, tiny_synth, tmp_path, command):
    path, marker = evil
    cfg = tmp_path / "c.yaml"
    cfg.write_text("{}\n")
    overrides = tiny_overrides(tiny_synth, tmp_path / "out")
    image = str(next((tiny_synth / "val").iterdir()))
    argv = {"eval": ["eval", str(cfg), str(path), *overrides],
            "predict": ["predict", str(cfg), str(path), image, "--out", str(tmp_path / "p"), "--set", *overrides],
            "visualize": ["visualize", str(cfg), str(path), image, "--out", str(tmp_path / "v"), "--set", *overrides]}
    with pytest.raises(CheckpointError, match=REFUSED):
        main(argv[command])
    assert not marker.exists()


@pytest.mark.parametrize("key", ["model.init_from", "model.pretrained_backbone"])
def test_weights_named_in_the_config_cannot_run_code(evil, tiny_synth, tmp_path, key):
    path, marker = evil
    cfg = tmp_path / "c.yaml"
    cfg.write_text("{}\n")
    with pytest.raises(CheckpointError, match=REFUSED):
        main(["train", str(cfg), *tiny_overrides(tiny_synth, tmp_path / "out", "train.max_iters=1"), f"{key}={path}"])
    assert not marker.exists()


@pytest.mark.parametrize("name", ["last.pth", "interrupted.pth", "given"])
def test_resume_cannot_run_code(evil, tiny_synth, tmp_path, name):
    path, marker = evil
    out = tmp_path / "run"
    out.mkdir()
    target = path if name == "given" else out / name
    if name != "given":
        target.write_bytes(path.read_bytes())
    cfg = load_tiny(tiny_synth, out, "train.max_iters=1")
    with pytest.raises(CheckpointError, match=REFUSED.replace("evil.pth", target.name)):
        train(cfg, resume=target if name == "given" else True)
    assert not marker.exists()
    assert not (out / "final.pth").exists()


def load_tiny(data, out, *extra):
    from dsic.config import load_config

    return load_config(None, tiny_overrides(data, out, *extra))


def test_own_checkpoints_load_weights_only(tmp_path):
    """last.pth holds RNG states: they are plain data now, and older ones with NumPy arrays still load."""
    import numpy as np

    from dsic.engine.checkpoint import rng_state

    state = rng_state()
    save_atomic({"rng": state}, tmp_path / "a.pth")
    assert load_weights_file(tmp_path / "a.pth")["rng"]["numpy"][1] == state["numpy"][1]
    save_atomic({"rng": {"numpy": np.random.get_state()}}, tmp_path / "old.pth")
    assert load_weights_file(tmp_path / "old.pth")["rng"]["numpy"][0] == "MT19937"
