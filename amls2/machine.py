"""What machine a speed figure was measured on, and its dense-matmul speed (the yardstick the
inference benchmarks divide by). Used by the scripts under ``benchmarks/``."""

from __future__ import annotations

import os
import time

from amls2.training.precision import cpu_flags
from amls2.training.run_folder import cpu_model

# The flags that decide float32 and bfloat16 speed on x86.
SPEED_FLAGS: tuple[str, ...] = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_header() -> str:
    """``CPU: <model>, <n> cores; flags: avx2 yes, ...`` for a benchmark table's header."""
    flags = cpu_flags()
    shown = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in SPEED_FLAGS)
    return f"CPU: {cpu_model()}, {os.cpu_count()} cores; flags: {shown if flags else 'unknown'}"


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 GFLOP/s of one ``n x n`` TensorFlow matmul (after a warm-up)."""
    import tensorflow as tf  # deferred: the CLI imports amls2 without TensorFlow

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    tf.linalg.matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        tf.linalg.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9
