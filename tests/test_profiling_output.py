"""dsic profile prints its table and nothing else: the C++ profiler's log lines are dropped, and bf16
rows are skipped with one line on a CPU without native bf16."""

import os

import pytest
import torch

import dsic.profiling
from dsic.engine.precision import PrecisionError, SlowPrecisionWarning
from dsic.profiling import native_logs_dropped, peak_memory_mb


def test_peak_memory_leaves_no_profiler_log_on_stderr(capfd):
    def work():
        os.write(2, b"a line of our own\n")
        return torch.ones(1000) * 2

    assert peak_memory_mb(work, torch.device("cpu")) > 0
    err = capfd.readouterr().err
    assert "profiler_start" not in err and "USDT" not in err
    assert err == "a line of our own\n"


def test_native_log_lines_are_dropped_and_the_rest_kept(capfd):
    with native_logs_dropped():
        os.write(2, b"USDT:2026-12-07 13:08:11 8884:8884 SyncActivityProfilerHandler.cpp:39] profiler_start\n")
        os.write(2, b"ERROR:2026-12-07 13:08:19 8884:8884 DeviceProperties.cpp:56] gpuGetDeviceCount failed\n")
        os.write(2, b"[W1207 15:27:27.963245182 CPUAllocator.cpp:245] Memory block of unknown size was allocated "
                    b"before the profiling started, profiler results will not include the deallocation event\n")
        os.write(2, b"Traceback: kept\n")
    assert capfd.readouterr().err == "Traceback: kept\n"


def test_bf16_rows_are_skipped_without_native_bf16(monkeypatch):
    monkeypatch.setattr(dsic.profiling, "native_bf16_cpu", lambda: False)
    monkeypatch.setattr(dsic.profiling, "cpu_model", lambda: "AMD EPYC")
    with pytest.warns(SlowPrecisionWarning, match=r"^bf16 rows skipped: no native bf16 on this CPU \(AMD EPYC: no "
                      r"AVX512-BF16 / AMX\), its bf16 kernels are 10-200x slower than fp32$"):
        rows = dsic.profiling.profile("faster_rcnn", "resnet_tiny", ["fpn"], size=64, num_classes=3, warmup=0,
                                      repeats=1, precisions=["fp32", "bf16"])
    assert [r.precision for r in rows] == ["fp32"]
    with pytest.raises(PrecisionError, match=r"^bf16 not profiled: no native bf16 on this CPU \(AMD EPYC"):
        dsic.profiling.profile("faster_rcnn", "resnet_tiny", ["fpn"], size=64, precisions=["bf16"])
