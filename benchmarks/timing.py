"""The yardsticks of the benchmark scripts: the machine header of a table, best-of-N seconds
(also interleaved, so that a shared machine's slow spells reach every compared function) and
dense-matmul GFLOP/s."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from amls2.machine import SPEED_FLAGS, cpu_flags, cpu_model


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
