"""Atomic checkpoints, safe loading and RNG states, so that nothing trained is lost, resumes are
exact and no file a user passes can run code.

Every checkpoint or weights file is read by :func:`dsic.weights.load_weights_file` (weights only:
a pickle that would build anything else is refused with a :class:`CheckpointError`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..weights import CheckpointError, UnsafeFileError, load_weights_file


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, unwritable folder); the previous file is intact."""


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform / file system allows it
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _os_error_in(err: BaseException) -> OSError | None:
    """The OSError behind ``err`` (torch.save wraps a failed write in a RuntimeError)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError):
            return err
        if "No space left on device" in str(err):
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        err = err.__cause__ or err.__context__
    return None


def _file_mode(path: Path) -> int:
    """The permissions ``open(path, "wb")`` would leave: the existing file's, else 0666 less the umask."""
    with contextlib.suppress(OSError):
        return path.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def save_atomic(obj, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace`` it over
    ``path``: a crash or an error while saving leaves the previous file intact and no partial file.
    The file gets the permissions a plain ``torch.save`` would give it (umask, or the old file's).
    A failed write (full disk, unwritable folder) raises :class:`CheckpointWriteError` naming the path."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(tmp_name)
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), _file_mode(path))  # mkstemp's 0600 would hide the file from others
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        cause = _os_error_in(err) if isinstance(err, Exception) else None
        if cause is not None:
            reason = os.strerror(cause.errno) if cause.errno else str(cause)
            kept = "the previous file is intact" if path.is_file() else "nothing was written"
            raise CheckpointWriteError(cause.errno, f"cannot write {path}: {reason} ({kept})") from err
        raise
    _fsync_dir(path.parent)
    return path


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files a killed :func:`save_atomic` (``.NAME.*.tmp``), log rewrite
    (``log.jsonl.tmp``) or run record update (``run_info.json.tmp``) left in ``folder``; returns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for pattern in (".*.tmp", "*.jsonl.tmp", "run_info.json.tmp") for p in folder.glob(pattern) if p.is_file()]
    for p in stale:
        with contextlib.suppress(OSError):
            p.unlink()
    return stale


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint (or weights file) on the CPU with :func:`load_weights_file`."""
    return load_weights_file(path, "checkpoint")


def model_state(state: dict) -> dict:
    """The model weights of a training checkpoint, a ``final.pth`` or a bare state dict, with the
    ``module.`` prefix of DDP-wrapped models removed."""
    weights = state.get("model", state) if isinstance(state, dict) else state
    if not isinstance(weights, dict):
        raise TypeError("the checkpoint holds no model state dict")
    if weights and all(k.startswith("module.") for k in weights):
        weights = {k[len("module."):]: v for k, v in weights.items()}
    return weights


def rng_state() -> dict:
    """Python, NumPy, torch CPU and (when present) CUDA generator states of this process."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = (name, keys.tolist(), int(pos), int(has_gauss), float(gauss))  # plain data: loads weights-only
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:  # a different machine: keep what the seed gave
            torch.cuda.set_rng_state(cuda[0])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --- which run a checkpoint belongs to ------------------------------------------------------------

RUN_SECTIONS = ("model", "data.train", "data.train_scales", "data.hflip_prob", "data.with_masks", "train.seed")
"""The config keys that define a run (what is trained, on what data, in which order); a checkpoint
resumes only under a config that agrees on all of them. Others (lr, schedule, epochs, batch size,
intervals) may change on resume: the run follows the current config."""


def run_identity(cfg: dict) -> dict:
    """The :data:`RUN_SECTIONS` of ``cfg`` as ``{dotted key: value}`` (mappings flattened)."""
    out: dict = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict) and value:
            for k in sorted(value):
                walk(f"{prefix}.{k}", value[k])
        else:
            out[prefix] = value

    for dotted in RUN_SECTIONS:
        node = cfg
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        walk(dotted, node)
    return out


def run_fingerprint(cfg: dict) -> str:
    """16 hex digits identifying the run ``cfg`` defines (:func:`run_identity`)."""
    text = json.dumps(run_identity(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_differences(saved_cfg: dict | None, cfg: dict) -> list[str]:
    """``["train.seed: 0 in the checkpoint, 1 now", ...]`` for the run-defining keys that differ."""
    if not isinstance(saved_cfg, dict):
        return ["config: the checkpoint records none"]
    old, new = run_identity(saved_cfg), run_identity(cfg)
    return [f"{k}: {old.get(k)!r} in the checkpoint, {new.get(k)!r} now"
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def non_finite_names(named_tensors) -> list[str]:
    """Names of the floating-point tensors among ``(name, tensor)`` pairs that hold a NaN or an inf.
    Fast path: the largest absolute value of all of them (fused per device and dtype, one sync; a
    max cannot overflow), finite for a healthy state; the names are looked for only otherwise."""
    named = [(n, t) for n, t in named_tensors if torch.is_tensor(t) and t.is_floating_point()]
    if not named:
        return []
    with torch.no_grad():
        largest = torch.nn.utils.get_total_norm([t.detach() for _, t in named], norm_type=float("inf"))
    if math.isfinite(float(largest)):
        return []
    flags = torch.stack([torch.isfinite(t).all() for _, t in named])
    if bool(flags.all()):
        return []
    return [n for (n, _), ok in zip(named, flags.tolist()) if not ok]


# --- choosing what to resume from ---------------------------------------------------------------

RESUMABLE = ("last.pth", "interrupted.pth")
RUN_FILES = ("last.pth", "interrupted.pth", "final.pth", "log.jsonl", "config.yaml", "run_info.json", "summary.md",
             "eval_epoch*.json", "results_epoch*.json", "eval.json", "results_eval.json", "plots", "tensorboard")
"""What a run leaves in its output folder: training's files, ``dsic eval``'s ``eval.json`` /
``results_eval.json`` and ``dsic plot``'s ``plots/`` (globs; folders included)."""

def check_resume_state(path: Path, cfg: dict) -> dict:
    """The checkpoint at ``path`` if it belongs to ``cfg``'s run and its weights are finite."""
    state = load_checkpoint(path)
    if not isinstance(state, dict) or "model" not in state or "iteration" not in state:
        raise CheckpointError(f"{path}: not a training checkpoint (no model / iteration); resume needs "
                              f"last.pth or interrupted.pth")
    diffs = run_differences(state.get("config"), cfg)
    if diffs:
        raise CheckpointError(f"{path} belongs to another run ({'; '.join(diffs)}): resume with that run's "
                              f"config, or train in another output_dir")
    bad = non_finite_names(model_state(state).items())
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} weight tensor(s) hold NaN or inf ({', '.join(bad[:3])}); "
                              f"it cannot be resumed")
    return state


def select_resume_state(out: str | Path, cfg: dict, note=print) -> tuple[Path, dict] | None:
    """The checkpoint to resume ``cfg``'s run from in ``out``: of ``last.pth`` / ``interrupted.pth``,
    the most advanced (iteration, then modification time) that is readable, of this run and finite.
    An unreadable or non-finite file is passed over with a ``note``; a file that is not a plain
    weights file (:class:`UnsafeFileError`), or no usable file at all, raises :class:`CheckpointError`. None: nothing to resume."""
    out = Path(out)
    usable, refused = [], []
    for path in (out / name for name in RESUMABLE):
        if not path.is_file():
            continue
        try:
            usable.append((path, check_resume_state(path, cfg)))
        except UnsafeFileError:
            raise
        except CheckpointError as err:
            refused.append(err)
    if not usable:
        if refused:
            raise CheckpointError("; ".join(str(e) for e in refused))
        return None
    path, state = max(usable, key=lambda u: (int(u[1]["iteration"]), u[0].stat().st_mtime_ns))
    for err in refused:
        note(f"passing over a checkpoint: {err}; resuming from {path} instead")
    return path, state


def move_earlier_run(out: str | Path) -> Path | None:
    """A fresh run in a folder that holds any of :data:`RUN_FILES` (another run's, this one's not
    resumed, or a log of a run killed before its first checkpoint): move them all into
    ``out/earlier/<time>/`` so that what stands in ``out`` describes one run and nothing is lost.
    Returns the new folder, or None when there was nothing to move."""
    out = Path(out)
    found = [p for pattern in RUN_FILES for p in sorted(out.glob(pattern))] if out.is_dir() else []
    if not found:
        return None
    dest = out / "earlier" / time.strftime("%Y%m%d-%H%M%S")
    while dest.exists():
        dest = dest.with_name(dest.name + "+")
    dest.mkdir(parents=True)
    for path in found:
        os.replace(path, dest / path.name)
    return dest
