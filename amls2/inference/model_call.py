"""Calling a Keras model on NumPy images: the one place inference runs the network.

``run_batch`` runs ``model(x, training=False)`` as a tf.function with one
``[None, None, None, C]`` signature per model and form (cached, dropped with the model), so every
batch and tile size reuses one trace. ``fast`` chooses the form: the model's CPU-tuned fast form or
the graph as saved (``amls2.inference.fast.switch``: ``AMLS2_FAST_INFERENCE``, on CPU only by
default). TensorFlow is imported on the first call, not with this module.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable

import numpy as np

from amls2.inference.fast import switch

# Per-model cache, dropped with the model.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _OneTracePerModel(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning. Every model gets its own
    tf.function here, traced once, on purpose; TensorFlow counts the traces of all of them as
    retracing of one function and warns after five models (notebooks evaluate more)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


_RETRACING_FILTER = _OneTracePerModel()


def model_channels(model) -> int:
    """Number of input channels the model expects (last axis of its input shape)."""
    shape = model.inputs[0].shape if getattr(model, "inputs", None) else model.input_shape
    channels = shape[-1]
    return int(channels) if channels is not None else 3


def output_channels(model) -> int | None:
    """Number of output channels of the model (None when its output shape does not say)."""
    shape = model.outputs[0].shape if getattr(model, "outputs", None) else None
    return int(shape[-1]) if shape is not None and shape[-1] is not None else None


def _compiled_call(model, fast: bool | str | None) -> Callable:
    """``model(x, training=False)`` as a tf.function with a [None, None, None, C] signature, in
    the form the switch chooses for ``fast``: ``fast.reparam.fast_inference_model`` (the same
    function, faster layers) or the model as saved.

    One signature for every batch and tile size means one trace per model instead of one per
    shape (``model.predict`` would also rebuild its data pipeline for every tile). The concrete
    function is kept and called directly: that skips the per-call signature matching of a
    ``tf.function`` (about 0.09 ms; 8 % of the fast model's x4 time on a Set5 image).
    """
    setting = switch.setting(fast)
    forms = _COMPILED.setdefault(model, {})
    fn = forms.get(setting)
    if fn is None:
        fn = forms[setting] = _compile(model, switch.use_fast_form(setting))
    return fn


def _compile(model, fast_form: bool) -> Callable:
    """The concrete function of ``model`` (its fast form if ``fast_form``) on float32 NHWC."""
    import tensorflow as tf

    from amls2.inference.fast.reparam import fast_inference_model  # imports Keras: deferred too

    tf.get_logger().addFilter(_RETRACING_FILTER)  # a set: adding it again is a no-op
    channels = model_channels(model)
    run = fast_inference_model(model) if fast_form else model  # same outputs, fewer passes

    @tf.function(
        input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32)],
        reduce_retracing=True,
    )
    def call(x):
        return run(x, training=False)

    return call.get_concrete_function()


def run_batch(model, batch: np.ndarray, *, fast: bool | str | None = None) -> np.ndarray:
    """Run the compiled model on a float32 NHWC batch; the output as a READ-ONLY float32 array
    (a view of TensorFlow's buffer: no copy, which is 3 % of a small model's time per image).
    ``fast``: the model's fast form (True), as saved (False), or as ``AMLS2_FAST_INFERENCE``
    says (None: by default the fast form on CPU only)."""
    import tensorflow as tf

    out = _compiled_call(model, fast)(tf.constant(batch, dtype=tf.float32))
    return np.asarray(out, dtype=np.float32)
