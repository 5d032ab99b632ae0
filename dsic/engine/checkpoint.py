"""Atomic checkpoints, safe loading and RNG states, so that nothing trained is lost, resumes are
exact and no file a user passes can run code.

Every checkpoint or weights file is read by :func:`load_weights_file`: ``torch.load`` with
``weights_only=True`` (tensors, numbers, strings, containers; plus NumPy arrays, which RNG states of
older checkpoints hold). A pickle that needs anything else is refused with a
:class:`CheckpointError` that names the file and the object it wanted to build.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import torch


class CheckpointError(ValueError):
    """A checkpoint or weights file cannot be used: unreadable, not a plain weights file, of another
    run or non-finite. The message is one self-contained line naming the file."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, unwritable folder); the previous file is intact."""


def _numpy_globals() -> list:
    """What the NumPy RNG state of checkpoints written before plain RNG states needs (arrays of numbers)."""
    core = getattr(np, "_core", None) or np.core
    names = [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    return names


def load_weights_file(path: str | Path, what: str = "checkpoint"):
    """``torch.load(path)`` on the CPU, weights only: a file that would need to build any other object
    (a pickle that runs code, a pickled module) raises :class:`CheckpointError` and runs nothing.
    ``what`` names the file's role in the messages ("checkpoint", "detector weights", ...)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{path}: not a plain weights file: {_refusal(str(err))}; it was not loaded "
                              f"(dsic reads only tensors, numbers, strings and containers)") from None
    except Exception as err:  # a truncated or foreign file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"cannot read {what} {path}: {first}") from err


def _refusal(message: str) -> str:
    """What torch's weights-only unpickler refused, from its message."""
    found = re.search(r"GLOBAL ([\w.]+)", message)
    if found:
        return f"it wants to run or build {found.group(1)}, which could execute code"
    found = re.search(r"Unsupported operand (\w+)", message)
    if found:
        return f"it holds pickle data weights-only loading refuses (opcode {found.group(1)})"
    return "it holds objects other than tensors and plain data"


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


def save_atomic(obj, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace`` it over
    ``path``: a crash or an error while saving leaves the previous file intact and no partial file.
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
    """Delete the temporary files a killed :func:`save_atomic` left in ``folder`` (``.NAME.*.tmp``);
    returns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(".*.tmp") if p.is_file()]
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
