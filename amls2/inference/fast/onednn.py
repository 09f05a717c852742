"""What TensorFlow's oneDNN convolutions do on this CPU: whether they run AVX-512 code, and the
largest convolution input one model call should see below it (where oneDNN books an im2col copy
per thread and silently falls back to a scalar convolution past 1 GiB). No TensorFlow at import."""

from __future__ import annotations

import os

from amls2.machine import cpu_flags

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
