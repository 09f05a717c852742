"""Tests of amls2.inference.fast.onednn: which convolution path oneDNN takes here, and the budget that follows."""

from __future__ import annotations

import pytest

from amls2.inference.fast import onednn

AVX512 = frozenset({"avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq"})
AVX2 = frozenset({"avx2", "fma"})


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        (AVX512, {}, True),
        (AVX512, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, False),  # how the AVX2 CPU is emulated
        (AVX512, {"ONEDNN_MAX_CPU_ISA": "avx2_vnni"}, False),
        (AVX512, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, True),
        (AVX512, {"ONEDNN_MAX_CPU_ISA": "ALL"}, True),
        (AVX2, {}, False),
        (AVX512 - {"avx512bw"}, {}, False),  # AVX-512F alone is not oneDNN's avx512_core
        (frozenset(), {}, False),  # unknown CPU: assume the limited path
    ],
)
def test_onednn_has_avx512_reads_the_flags_and_the_isa_cap(flags, env, expected):
    assert onednn.onednn_has_avx512(flags, env) is expected


@pytest.mark.parametrize(("threads", "expected"), [(1, 3 * 2**28), (2, 3 * 2**27), (8, 3 * 2**25)])
def test_the_convolution_budget_below_avx512_is_shared_by_the_threads(threads, expected):
    assert onednn.conv_input_budget_bytes(AVX2, {}, threads) == expected
    assert onednn.conv_input_budget_bytes(AVX512, {}, threads) is None


def test_compute_threads_is_at_least_one():
    assert onednn.compute_threads() >= 1
