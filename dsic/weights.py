"""Reading a weights file safely: ``torch.load`` with ``weights_only=True`` (tensors, numbers,
strings, containers; plus NumPy arrays, which RNG states of older checkpoints hold). A pickle that
needs anything else is refused with a :class:`CheckpointError` that names the file and the object
it wanted to build. Backbones, detectors and the engine's checkpoints all read files through
:func:`load_weights_file`.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import torch


class CheckpointError(ValueError):
    """A checkpoint or weights file cannot be used: unreadable, not a plain weights file, of another
    run or non-finite. The message is one self-contained line naming the file."""


class UnsafeFileError(CheckpointError):
    """The file is not a plain weights file: loading it would build arbitrary objects (run code)."""


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
    with path.open("rb") as f:
        head = f.read(2)
    if head[:2] != b"PK" and head[:1] != b"\x80":  # torch.save writes a zip archive (older: a pickle)
        raise CheckpointError(f"cannot read {what} {path}: not a PyTorch file (torch.save writes a zip archive, "
                              "older versions a pickle; this file starts like neither)")
    if head == b"PK" and not zipfile.is_zipfile(path):  # torch reports this as miniz errors or EINVAL
        raise CheckpointError(f"cannot read {what} {path}: truncated or damaged ({path.stat().st_size} bytes; the "
                              "zip archive torch.save writes has no intact end), e.g. an interrupted copy")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeFileError(f"{path}: not a plain weights file: {_refusal(str(err))}; it was not loaded "
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
