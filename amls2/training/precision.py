"""Which compute precision a training run uses: ``--precision auto`` resolved for this machine.

Measured on this project's 2-core CPUs (``benchmarks/train_throughput.py``): bfloat16 compute is
about 2x faster than float32 where the CPU has native bfloat16 instructions (AVX512_BF16 or AMX),
but emulated, and up to 11x slower, where it has only AVX2. A GPU gets float16 with loss
scaling, the fast path of tensor cores. The rule lives here, in one place, and is tested from
faked CPU flags and a faked GPU list.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from amls2.machine import cpu_flags, gpu_names

log = logging.getLogger(__name__)

AUTO = "auto"
PRECISIONS: tuple[str, ...] = (AUTO, "float32", "mixed_bfloat16", "mixed_float16")
# /proc/cpuinfo flags that mean bfloat16 matmuls and convolutions run natively (oneDNN uses them).
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def auto_precision(flags: Iterable[str], gpus: Iterable[str]) -> tuple[str, str]:
    """(precision, reason) for a machine with these CPU ``flags`` and ``gpus``."""
    gpus = list(gpus)
    if gpus:
        return "mixed_float16", f"{len(gpus)} GPU(s): float16 compute with loss scaling"
    native = sorted(NATIVE_BF16_FLAGS.intersection(flags))
    if native:
        return "mixed_bfloat16", f"CPU computes bfloat16 natively ({', '.join(native)})"
    return "float32", "CPU has no native bfloat16 (no avx512_bf16/amx_bf16): emulated, slower"


def resolve_precision(requested: str) -> str:
    """``requested`` itself, or for ``auto`` the precision that is fastest here (logged)."""
    if requested != AUTO:
        return requested
    precision, reason = auto_precision(cpu_flags(), gpu_names())
    log.info("--precision auto: %s (%s)", precision, reason)
    return precision
