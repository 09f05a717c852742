"""Tests of amls2.inference.fast.onednn: which convolution path oneDNN takes here, and the budget that follows."""

from __future__ import annotations

import pytest

from amls2.inference.fast import onednn

AVX512 = frozenset({"avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq"})
AVX2 = frozenset({"avx2", "fma"})
SAPPHIRE_RAPIDS = AVX512 | {"avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}
ALDER_LAKE = AVX2 | {"avx_vnni"}  # AVX-VNNI without AVX-512: oneDNN on, below AVX-512
ONEDNN_ON = {"TF_ENABLE_ONEDNN_OPTS": "1"}


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


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        (SAPPHIRE_RAPIDS, {}, True),
        (AVX512 | {"avx512_vnni"}, {}, True),
        (ALDER_LAKE, {}, True),
        (AVX2, {}, False),  # an AMD EPYC with AVX2 alone: TensorFlow convolves with Eigen
        (AVX512, {}, False),  # AVX-512 without VNNI or BF16 (Skylake-SP)
        (AVX2, {"TF_ENABLE_ONEDNN_OPTS": "1"}, True),
        (AVX2, {"TF_ENABLE_ONEDNN_OPTS": "true"}, True),
        (SAPPHIRE_RAPIDS, {"TF_ENABLE_ONEDNN_OPTS": "0"}, False),
        (SAPPHIRE_RAPIDS, {"TF_ENABLE_ONEDNN_OPTS": "False"}, False),
        (AVX2, {"TF_ENABLE_ONEDNN_OPTS": "maybe"}, False),  # TensorFlow keeps its default too
    ],
)
def test_onednn_enabled_follows_tensorflows_default_and_its_variable(flags, env, expected):
    assert onednn.onednn_enabled(flags, env) is expected


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        (SAPPHIRE_RAPIDS, {}, "onednn-avx512"),
        (SAPPHIRE_RAPIDS, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, "onednn-below-avx512"),
        (ALDER_LAKE, {}, "onednn-below-avx512"),
        (AVX2, ONEDNN_ON, "onednn-below-avx512"),
        (AVX2, {}, "eigen"),
        (SAPPHIRE_RAPIDS, {"TF_ENABLE_ONEDNN_OPTS": "0"}, "eigen"),
    ],
)
def test_conv_path_names_the_convolution_library_and_its_isa(flags, env, expected):
    assert onednn.conv_path(flags, env) == expected


def test_onednn_enabled_agrees_with_tensorflow_here():
    port = pytest.importorskip("tensorflow.python.util._pywrap_util_port")
    import os

    assert onednn.onednn_enabled(env=os.environ) is bool(port.IsMklEnabled())


@pytest.mark.parametrize(("threads", "expected"), [(1, 3 * 2**28), (2, 3 * 2**27), (8, 3 * 2**25)])
def test_the_convolution_budget_below_avx512_is_shared_by_the_threads(threads, expected):
    assert onednn.conv_input_budget_bytes(AVX2, ONEDNN_ON, threads) == expected
    assert onednn.conv_input_budget_bytes(ALDER_LAKE, {}, threads) == expected
    assert onednn.conv_input_budget_bytes(SAPPHIRE_RAPIDS, {}, threads) is None


@pytest.mark.parametrize("flags", [AVX2, SAPPHIRE_RAPIDS - {"avx512f"}])
def test_eigen_convolutions_have_no_budget(flags):
    # oneDNN off: Eigen's convolutions have no im2col scratch cliff to tile around.
    assert onednn.conv_input_budget_bytes(flags, {"TF_ENABLE_ONEDNN_OPTS": "0"}, 2) is None


def test_compute_threads_is_at_least_one():
    assert onednn.compute_threads() >= 1
