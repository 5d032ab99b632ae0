"""Training one benchmark run in this process with an instrument on its model, shared by the analyses
that must watch or change a run while it trains (projects/routing/unit_dynamics.py, projects/routing/scale_oracle.py)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "projects" / "routing")]

from dsic.config import load_config
from dsic.demo import train_command
from dsic.engine.train import train
from dsic.protocol import Protocol
from dsic.results import git_commit
from routing.models import build_model


def train_instrumented(proto: Protocol, data: Path, overrides: list[str], run: Path, seed: int, quick: bool,
                       attach, extra: list[str] = ()) -> dict:
    """Train ``run`` as benchmarks/run.py would (the protocol's config, ``overrides``, seed, data order
    and lr schedule; ``extra`` overrides after them), with ``attach(model)`` called on the model
    before training. Returns ``{"result", "instrument", "cfg", "commit", "wall_s"}``: train's result,
    what ``attach`` returned, the config, the commit of the code that trained and the wall time."""
    config, *args = train_command(proto, data, overrides, run, seed, quick)
    cfg = load_config(config, args + list(extra))
    attached = {}

    def factory(cfg):
        model = build_model(cfg)
        attached["instrument"] = attach(model)
        return model

    commit = git_commit(ROOT)  # the code that trains, not the HEAD when it ends
    start = time.time()
    result = train(cfg, model_factory=factory)
    return {"result": result, "instrument": attached["instrument"], "cfg": cfg, "commit": commit,
            "wall_s": round(time.time() - start, 1)}


def trained_start(runs: Path, protocol: str, seed: int, row: str = "dsic_gatelr01") -> Path:
    """The final weights of ``row``'s finished run at ``seed`` in ``runs``, the network the analyses
    learned second start from; exits with the command that trains it when it is missing."""
    start_from = runs / f"{row}_seed{seed}" / "final.pth"
    if not start_from.is_file():
        raise SystemExit(f"{start_from}: no finished {row} run at seed {seed} (train it with "
                         f"benchmarks/run.py scenes --protocol {protocol} --variants {row} first)")
    return start_from
