"""The machine code runs on, as records name it: CPU model, core count, native bf16, torch's version.

Profile and precision records carry :func:`machine`; a benchmark run's record carries the same facts as
its ``host`` (:func:`dsic.results.host_fingerprint`), so tables can tell which numbers came from one machine.
"""

from __future__ import annotations

import os
import platform

import torch


def native_bf16_cpu() -> bool:
    """True when oneDNN has native bf16 kernels on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without mkldnn
        return False


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
        if name:
            return name
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What a timing or precision record depends on: CPU model, core count, whether bf16 is native
    (oneDNN's answer), the CPU capability torch dispatches to, and the torch version."""
    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "native_bf16_cpu": native_bf16_cpu(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__}
