"""torchrun with 2 gloo processes on CPU: same evaluation as one process; training writes its checkpoint."""

import json
import os
import subprocess
import sys

import torch

from dsic.config import load_config
from dsic.engine.builders import build_model
from dsic.engine.checkpoint import save_atomic

from .conftest import tiny_overrides


def torchrun(*args, nproc=2):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone",
           "-m", "dsic.cli", *args]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_two_process_eval_equals_one_process(tiny_synth, tmp_path):
    overrides = tiny_overrides(tiny_synth, tmp_path / "one", "model.neck=dsic", "eval.batch_size=1",
                               "model.detector_cfg={box_score_thresh: 0.0, rpn_post_nms_top_n_test: 50}")
    cfg = load_config(None, overrides)
    torch.manual_seed(0)
    ckpt = save_atomic({"model": build_model(cfg).state_dict()}, tmp_path / "model.pth")
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text("{}\n")
    # the same launcher and thread count for both, so that only the process count differs
    torchrun("eval", str(cfg_file), str(ckpt), *overrides, nproc=1)
    one = json.loads((tmp_path / "one" / "eval.json").read_text())
    two_overrides = [o if not o.startswith("output_dir=") else f"output_dir={tmp_path / 'two'}" for o in overrides]
    torchrun("eval", str(cfg_file), str(ckpt), *two_overrides)
    two = json.loads((tmp_path / "two" / "eval.json").read_text())
    assert two == one and set(one) == {"bbox"}
    res_one = json.loads((tmp_path / "one" / "results_eval.json").read_text())
    res_two = json.loads((tmp_path / "two" / "results_eval.json").read_text())
    assert len(res_one) > 0 and {r["image_id"] for r in res_one} == set(range(1, 6))
    assert res_two == res_one  # every image once (the padded duplicate dropped), same detections


def test_two_process_training_writes_a_checkpoint(tiny_synth, tmp_path):
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text("{}\n")
    torchrun("train", str(cfg_file), *tiny_overrides(tiny_synth, tmp_path / "run", "model.neck=dsic",
                                                     "train.epochs=1", "train.max_iters=2", "train.batch_size=2"))
    state = torch.load(tmp_path / "run" / "last.pth", weights_only=False)
    assert state["iteration"] == 2 and state["epoch"] == 1
    assert not any(k.startswith("module.") for k in state["model"])
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in log if "loss" in r] == [1, 2]
