"""The machine a run or a speed figure is measured on: CPU model and feature flags (which also
decide ``--precision auto`` and the CPU inference path) and the facts a weights sidecar records.
No TensorFlow at import."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")
# The flags that decide float32 and bfloat16 speed on x86.
SPEED_FLAGS: tuple[str, ...] = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=8)
def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags (the first ``flags`` line of ``/proc/cpuinfo``); empty if unknown,
    e.g. on macOS or Windows, where ``auto`` precision then chooses float32, the safe choice.
    Read once per file: every model call asks (``conv_input_budget_bytes``), and reading took
    35 us, 3 % of the fast model's x4 time per Set5 image."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Where a run trained: platform, CPU model and count, Python (for the weights sidecar)."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def gpu_names() -> list[str]:
    """The GPUs TensorFlow can use (physical devices; does not initialise them)."""
    import tensorflow as tf  # deferred: this module needs no TensorFlow at import

    return [device.name for device in tf.config.list_physical_devices("GPU")]
