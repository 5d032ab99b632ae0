"""Numeric precision of a forward pass: ``fp32``, ``bf16`` or ``fp16`` autocast, per device.

One place decides which precision names are valid on which device and gives the autocast context
for them; training (``train.amp``), ``dsic eval``, ``dsic predict`` and ``dsic profile`` all go
through it.

* ``fp32``: no autocast.
* ``bf16``: ``torch.autocast(device, dtype=torch.bfloat16)``, on the CPU and on CUDA (if the GPU
  supports bf16). bf16 has fp32's exponent range, so training needs no GradScaler. On a CPU
  without native bf16 instructions (AVX512-BF16 / AMX; ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``
  False) oneDNN falls back to slow kernels: measured on a 2-core AVX2 EPYC, a 256->256 3x3 conv
  at 64x64 took 98 ms in fp32 and 23 s in bf16. :func:`check_precision` warns in that case.
* ``fp16``: ``torch.autocast("cuda", dtype=torch.float16)``, CUDA only (training adds a GradScaler:
  fp16's range needs loss scaling). Rejected on the CPU.

``train.amp`` keeps its historical values: ``false`` (fp32), ``true`` (fp16 on CUDA, fp32 on any
other device, as before), ``bf16`` and ``fp16`` (as named, checked for the device).
"""

from __future__ import annotations

import contextlib
import warnings

import torch

from .. import DsicWarning

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
AMP_VALUES = (False, True, "bf16", "fp16")  # accepted values of train.amp


class PrecisionError(ValueError):
    """A precision name that is unknown or not available on the device."""


class SlowPrecisionWarning(DsicWarning, RuntimeWarning):
    """bf16 on a CPU without native bf16 kernels: valid, but slow."""


def native_bf16_cpu() -> bool:
    """True when oneDNN has native bf16 kernels on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without mkldnn
        return False


def check_precision(precision: str, device: str | torch.device = "cpu", warn: bool = True) -> str:
    """``precision`` if it is valid on ``device``, else :class:`PrecisionError` (one line naming the
    problem). Warns when bf16 runs on a CPU without native bf16 kernels (valid, but slow)."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    dev = torch.device(device)
    if precision == "fp16" and dev.type != "cuda":
        raise PrecisionError(f"precision fp16 needs a CUDA device, got {dev.type}; use bf16 or fp32 on the CPU")
    if precision == "bf16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise PrecisionError(f"precision bf16 is not supported by {torch.cuda.get_device_name(dev)}; use fp16")
    if precision == "bf16" and dev.type == "cpu" and warn and not native_bf16_cpu():
        warnings.warn("bf16 on a CPU without native bf16 kernels (AVX512-BF16 / AMX): expect it to be "
                      "much slower than fp32", SlowPrecisionWarning, stacklevel=2)
    return precision


def autocast(device: str | torch.device, precision: str = "fp32", warn: bool = True):
    """The autocast context of ``precision`` on ``device`` (a null context for fp32)."""
    check_precision(precision, device, warn)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=DTYPES[precision])


def amp_precision(amp, device: str | torch.device) -> str:
    """The precision named by a ``train.amp`` value on ``device`` (see the module doc)."""
    if amp not in AMP_VALUES or (amp in (0, 1) and not isinstance(amp, bool)):
        raise PrecisionError(f"train.amp must be one of false, true, bf16, fp16, got {amp!r}")
    dev = torch.device(device)
    if amp is False:
        return "fp32"
    if amp is True:
        return "fp16" if dev.type == "cuda" else "fp32"
    try:
        return check_precision(amp, dev)
    except PrecisionError as err:
        raise PrecisionError(f"train.amp: {err}") from None


def needs_grad_scaler(precision: str, device: str | torch.device) -> bool:
    """fp16 on CUDA trains with loss scaling; bf16 and fp32 do not."""
    return precision == "fp16" and torch.device(device).type == "cuda"
