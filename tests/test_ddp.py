"""torchrun with 2 gloo processes on CPU: same evaluation as one process; training writes its checkpoint."""

import json
import os
import subprocess
import sys

import pytest
import torch

from dsic.config import load_config
from dsic.engine.builders import build_model
from dsic.engine.checkpoint import save_atomic

from .conftest import tiny_overrides


def torchrun(*args, nproc=2):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    env.pop("RANK", None), env.pop("WORLD_SIZE", None), env.pop("LOCAL_RANK", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone",
           "-m", "dsic.cli", *args]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture
def cfg_file(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("{}\n")
    return path


def test_two_process_eval_equals_one_process(tiny_synth, tmp_path, cfg_file):
    overrides = tiny_overrides(tiny_synth, tmp_path / "one", "model.neck=dsic", "eval.batch_size=1",
                               "model.detector_cfg={box_score_thresh: 0.0, rpn_post_nms_top_n_test: 50}")
    cfg = load_config(None, overrides)
    torch.manual_seed(0)
    ckpt = save_atomic({"model": build_model(cfg).state_dict()}, tmp_path / "model.pth")
    # the same launcher and thread count for both, so that only the process count differs
    torchrun("eval", str(cfg_file), str(ckpt), *overrides, nproc=1)
    one = json.loads((tmp_path / "one" / "eval.json").read_text())
    two_overrides = [o if not o.startswith("output_dir=") else f"output_dir={tmp_path / 'two'}" for o in overrides]
    proc = torchrun("eval", str(cfg_file), str(ckpt), *two_overrides)
    two = json.loads((tmp_path / "two" / "eval.json").read_text())
    assert two == one and set(one) == {"bbox"}
    assert json.loads(proc.stdout[proc.stdout.index("{"):]) == two  # printed once, by rank 0
    res_one = json.loads((tmp_path / "one" / "results_eval.json").read_text())
    res_two = json.loads((tmp_path / "two" / "results_eval.json").read_text())
    assert len(res_one) > 0 and {r["image_id"] for r in res_one} == set(range(1, 6))
    assert res_two == res_one  # 5 images on 2 ranks: every image once, same detections


def test_two_process_training_writes_one_checkpoint(tiny_synth, tmp_path, cfg_file):
    run = tmp_path / "run"
    torchrun("train", str(cfg_file), *tiny_overrides(tiny_synth, run, "model.neck=dsic", "train.epochs=2",
                                                     "train.max_iters=2", "train.batch_size=2", "train.eval_every=1",
                                                     "train.base_batch_size=8", "train.warmup_iters=0"))
    state = torch.load(run / "last.pth", weights_only=False)
    # 12 images / (2 processes x 2 images) = 3 iterations per epoch: max_iters stops inside epoch 1
    assert (state["iteration"], state["epoch"], state["epoch_iter"]) == (2, 0, 2)
    assert state["world_size"] == 2 and len(state["rng_per_rank"]) == 2
    assert not torch.equal(state["rng_per_rank"][0]["torch"], state["rng_per_rank"][1]["torch"])  # per-rank seeds
    assert not any(k.startswith("module.") for k in state["model"])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "loss" in r]
    assert [r["iter"] for r in steps] == [1, 2]  # rank 0 alone writes the log
    assert [r["lr"] for r in steps] == [0.01 * 2 * 2 / 8] * 2  # scaled by the world batch of 4
    assert [r["epoch"] for r in log if "eval" in r] == [1] and (run / "eval_epoch1.json").is_file()
    assert (run / "final.pth").is_file() and sorted(p.name for p in run.glob("*.pth")) == ["final.pth", "last.pth"]
