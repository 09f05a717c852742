"""The one switch of the CPU speed machinery (amls2.inference.fast.switch): the fast form on CPU
only by default, the saved graph with a GPU visible (tested from a faked device list), the
``fast=`` argument over ``AMLS2_FAST_INFERENCE``, and probes on the saved graph."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from amls2 import machine
from amls2.errors import ConfigError
from amls2.inference import model_call, receptive_field, upscaler
from amls2.inference.fast import onednn, reparam, switch

GPU = ["/physical_device:GPU:0"]


@pytest.mark.parametrize(
    ("fast", "env", "expected"),
    [
        (None, {}, "auto"),
        (None, {switch.ENV: "1"}, "1"),
        (None, {switch.ENV: " AUTO "}, "auto"),
        (None, {switch.ENV: "0"}, "0"),
        (False, {switch.ENV: "1"}, "0"),  # the argument wins
        (True, {switch.ENV: "0"}, "1"),
        ("auto", {switch.ENV: "0"}, "auto"),
    ],
)
def test_the_argument_wins_over_the_variable(fast, env, expected):
    assert switch.setting(fast, env) == expected


@pytest.mark.parametrize(("fast", "env"), [(None, {switch.ENV: "yes"}), ("on", {})])
def test_a_bad_setting_names_the_variable_or_argument(fast, env):
    with pytest.raises(ConfigError, match=switch.ENV if fast is None else "fast="):
        switch.setting(fast, env)


@pytest.mark.parametrize(
    ("value", "gpus", "expected"),
    [("auto", [], True), ("auto", GPU, False), ("1", GPU, True), ("0", [], False)],
)
def test_auto_is_the_fast_form_on_cpu_only(value, gpus, expected):
    chosen, reason = switch.decide(value, gpus)
    assert chosen is expected and reason


def _prelu_model():
    inp = keras.Input((None, None, 3))
    return keras.Model(
        inp, keras.layers.PReLU(shared_axes=[1, 2])(keras.layers.Conv2D(3, 3, padding="same")(inp))
    )


@pytest.fixture
def rewrites(monkeypatch):
    """The models ``fast_inference_model`` is asked to rewrite, recorded."""
    asked: list = []
    real = reparam.fast_inference_model

    def recording(model, **kwargs):
        asked.append(model)
        return real(model, **kwargs)

    monkeypatch.setattr(reparam, "fast_inference_model", recording)
    monkeypatch.delenv(switch.ENV, raising=False)
    return asked


@pytest.mark.parametrize(
    ("gpus", "fast", "env", "rewritten"),
    [
        ([], None, None, True),
        (GPU, None, None, False),  # a GPU visible: the model runs as saved
        (GPU, True, None, True),
        ([], False, None, False),
        ([], None, "0", False),
        (GPU, None, "1", True),
    ],
)
def test_run_batch_follows_the_switch(rewrites, monkeypatch, gpus, fast, env, rewritten):
    monkeypatch.setattr(machine, "gpu_names", lambda: list(gpus))
    if env is not None:
        monkeypatch.setenv(switch.ENV, env)
    model = _prelu_model()
    x = np.random.default_rng(0).random((1, 9, 7, 3), dtype=np.float32)
    out = model_call.run_batch(model, x, fast=fast)
    np.testing.assert_allclose(out, np.asarray(model(x)), atol=1e-6)
    assert (rewrites == [model]) is rewritten


def test_with_a_gpu_whole_images_are_not_tiled_to_the_cpu_budget(monkeypatch):
    monkeypatch.setattr(machine, "gpu_names", lambda: GPU)
    monkeypatch.setattr(onednn, "conv_input_budget_bytes", lambda: 4 * 3 * 12**2)  # 12x12 px
    shapes = []
    real = upscaler.run_batch
    monkeypatch.setattr(
        upscaler, "run_batch", lambda m, b, **k: shapes.append(b.shape) or real(m, b, **k)
    )
    lr = np.random.default_rng(0).random((40, 30, 3), dtype=np.float32)
    upscaler.super_resolve(_prelu_model(), lr, scale=1, input_kind="bicubic")
    assert shapes == [(1, 40, 30, 3)]


def test_the_receptive_field_is_probed_on_the_saved_graph(rewrites, monkeypatch):
    monkeypatch.setattr(machine, "gpu_names", lambda: [])
    model = _prelu_model()
    assert receptive_field.receptive_field(model, scale=1, input_kind="bicubic") >= 1
    assert rewrites == []


@pytest.mark.parametrize("path", onednn.CONV_PATHS)
def test_the_choice_is_logged_with_the_convolution_path(monkeypatch, caplog, path):
    # `amls2 upscale -v` shows which library convolves: the fast form's choices depend on it.
    monkeypatch.setattr(machine, "gpu_names", lambda: [])
    monkeypatch.setattr(onednn, "conv_path", lambda: path)
    switch._report.cache_clear()
    with caplog.at_level("DEBUG", logger=switch.log.name):
        assert switch.use_fast_form(None) is True
    assert f"CPU convolutions: {path}" in caplog.text
