"""What TensorFlow's CPU convolutions do on this machine: whether they run through oneDNN at all
(TensorFlow's Linux builds turn it on by default only for CPUs with neural-network instructions;
elsewhere Eigen convolves), whether oneDNN runs AVX-512 code, and the largest convolution input
one model call should see below AVX-512 (where oneDNN books an im2col copy per thread and
silently falls back to a scalar convolution past 1 GiB). No TensorFlow at import."""

from __future__ import annotations

import os

from amls2.machine import cpu_flags

# ONEDNN_MAX_CPU_ISA values that cap oneDNN below AVX-512 (the variable emulates an AVX2 CPU).
_ISAS_BELOW_AVX512 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2"})
# AVX-512 as oneDNN's "avx512_core" needs it.
_AVX512_CORE_FLAGS = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq"})


# The CPU features for which TensorFlow's Linux x86 builds turn oneDNN on by default
# (DefaultOneDnnPolicy in tensorflow/core/util/util.cc), as /proc/cpuinfo spells them.
_ONEDNN_BY_DEFAULT_FLAGS = frozenset(
    {"avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"}
)

#: The three ways TensorFlow convolves on a CPU, as :func:`conv_path` names them.
CONV_PATHS: tuple[str, ...] = ("onednn-avx512", "onednn-below-avx512", "eigen")


def onednn_enabled(flags: frozenset[str] | None = None, env=os.environ) -> bool:
    """Whether TensorFlow runs its CPU convolutions through oneDNN: ``TF_ENABLE_ONEDNN_OPTS``
    (``1``/``true`` or ``0``/``false``) when set, else TensorFlow's default, on only for CPUs
    with AVX-512 VNNI or BF16, AVX-VNNI or AMX. An AMD EPYC with AVX2 alone runs Eigen."""
    value = env.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower()
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    flags = cpu_flags() if flags is None else flags
    return bool(_ONEDNN_BY_DEFAULT_FLAGS & flags)


def onednn_has_avx512(flags: frozenset[str] | None = None, env=os.environ) -> bool:
    """Whether oneDNN, where it runs, runs AVX-512 code here: the CPU has it and
    ``ONEDNN_MAX_CPU_ISA`` does not cap oneDNN below it."""
    flags = cpu_flags() if flags is None else flags
    capped = env.get("ONEDNN_MAX_CPU_ISA", "").strip().upper() in _ISAS_BELOW_AVX512
    return _AVX512_CORE_FLAGS.issubset(flags) and not capped


def conv_path(flags: frozenset[str] | None = None, env=os.environ) -> str:
    """How TensorFlow convolves on this CPU, one of :data:`CONV_PATHS`: oneDNN with AVX-512
    (direct kernels), oneDNN below it (forward convolutions as im2col + GEMM, transposed ones
    direct), or Eigen (oneDNN off: tiled contractions for both, and its transposed convolution
    books a column buffer of ``kernel taps x output maps`` values per input pixel)."""
    flags = cpu_flags() if flags is None else flags
    if not onednn_enabled(flags, env):
        return "eigen"
    return "onednn-avx512" if onednn_has_avx512(flags, env) else "onednn-below-avx512"


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
    without that copy, and Eigen (oneDNN off) has no such cliff.
    """
    if conv_path(flags, env) != "onednn-below-avx512":
        return None
    threads = compute_threads() if threads is None else threads
    return 3 * 2**28 // max(1, threads)
