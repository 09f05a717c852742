"""The machine a run or a speed figure is measured on: CPU model and feature flags (which also
decide ``--precision auto``), the facts a weights sidecar records, and the timing yardsticks of
the scripts under ``benchmarks/`` (dense-matmul GFLOP/s, best-of-N seconds). No TensorFlow at
import."""

from __future__ import annotations

import functools
import os
import platform
import time
from collections.abc import Callable
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


def cpu_header() -> str:
    """``CPU: <model>, <n> cores; flags: avx2 yes, ...`` for a benchmark table's header."""
    flags = cpu_flags()
    shown = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in SPEED_FLAGS)
    return f"CPU: {cpu_model()}, {os.cpu_count()} cores; flags: {shown if flags else 'unknown'}"


def best_seconds_interleaved(fns: list[Callable[[], Any]], repeats: int) -> list[float]:
    """``best_seconds`` of each of ``fns``, timed in turns (one call of each per round), so that
    a slower or faster spell of a shared machine reaches all of them: their ratios are then
    measured side by side, not minutes apart."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def best_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """The shortest of ``repeats`` timed calls of ``fn``, after one untimed call (tracing, and
    TensorFlow's memory growth at a new size, would otherwise be timed)."""
    return best_seconds_interleaved([fn], repeats)[0]


# ONEDNN_MAX_CPU_ISA values that cap oneDNN below AVX-512 (the variable emulates an AVX2 CPU).
_ISAS_BELOW_AVX512 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2"})
# AVX-512 as oneDNN's "avx512_core" needs it.
_AVX512_CORE_FLAGS = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq"})


def onednn_has_avx512(flags: frozenset[str] | None = None, env=os.environ) -> bool:
    """Whether TensorFlow's oneDNN convolutions run AVX-512 code here: the CPU has it and
    ``ONEDNN_MAX_CPU_ISA`` does not cap oneDNN below it."""
    flags = cpu_flags() if flags is None else flags
    capped = env.get("ONEDNN_MAX_CPU_ISA", "").strip().upper() in _ISAS_BELOW_AVX512
    return _AVX512_CORE_FLAGS.issubset(flags) and not capped


def compute_threads() -> int:
    """Threads TensorFlow computes with by default: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def conv_input_budget_bytes(
    flags: frozenset[str] | None = None, env=os.environ, threads: int | None = None
) -> int | None:
    """The largest layer input one model call should see here, in bytes; None: no limit.

    Below AVX-512, oneDNN computes a convolution as im2col + GEMM and books, per thread, a copy
    of the layer's whole input. When its scratch would pass 1 GiB it falls back, silently, to its
    scalar reference convolution. Under ``ONEDNN_MAX_CPU_ISA=AVX2`` with 2 threads, a 5x5
    convolution of 64 maps ran as ``gemm:jit`` at 1300x1300 and as the reference one at
    1448x1448, and SRCNN x3 on a 512x512 image (1536x1536 input) did not finish in 5 minutes.
    The budget is 3/4 of 1 GiB, shared by the threads. With AVX-512, oneDNN convolves directly,
    without that copy.
    """
    if onednn_has_avx512(flags, env):
        return None
    threads = compute_threads() if threads is None else threads
    return 3 * 2**28 // max(1, threads)


# The matmul size of the "fraction of matmul" yardstick. At 2048 TensorFlow's matmul is not yet
# at its steady speed on a 2-core EPYC (375 GFLOP/s against 486 at 3072 and 495 at 4096, one
# run), and convolutions then reached "115 % of matmul".
MATMUL_SIZE = 4096


def matmul_gflops(n: int = MATMUL_SIZE, repeats: int = 5) -> float:
    """Float32 GFLOP/s of one ``n x n`` TensorFlow matmul (best of ``repeats``)."""
    import tensorflow as tf  # deferred: the CLI imports amls2 without TensorFlow

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    return 2 * n**3 / best_seconds(lambda: tf.linalg.matmul(a, b).numpy(), repeats) / 1e9
