"""Inference re-parameterisation: the same function, computed with faster operations.

Measured on the SRCNN family (``benchmarks/layer_profile.py``; AMD EPYC, also with oneDNN held
to AVX2): the strided transposed convolutions run at 43-90% of dense-matmul speed, while the
element-wise layers at HR size are bound by memory bandwidth. One pass over a 512x512x64 float32
map costs about as much as the 5x5/4 transposed convolution that made it. So:

* **PReLU** (``relu(x) - alpha * relu(-x)`` in Keras: five passes) becomes
  ``x * where(x > 0, 1, alpha)``, bit-identical for every alpha, in one XLA loop (one read and
  one write of the map), which also adds the bias of a linear transposed convolution before it
  when the PReLU is its only consumer. On a 1024x1024x64 map: bias add and PReLU 45 ms as
  TensorFlow ops, 12 ms as one loop, no more than the bias add alone.
* **FD-SRCNN's up-projection merge** ``PReLU(Add([Conv2DTranspose(a),
  PointwiseConv2DTranspose(b)]))``: both convolutions without their biases, the pointwise one as
  a product at LR size, and the rest (biases, zero spreading, add, PReLU) in one XLA loop.
* **A convolution to the image** (at most 4 maps from 16 or more; oneDNN ran 64 -> 3 maps at 17%
  of matmul) becomes a matrix product to one map per (tap, output) pair and a shifted sum of the
  taps in one XLA loop, then its activation: 43 -> 29 ms on a 1024x1024x64 input with a 1x1
  convolution for the product, 32 against 46 ms for the product alone as a matmul.
* **Below AVX-512, a stride-1 convolution** (odd kernel, larger than 1x1) becomes the stride-1
  transposed convolution of its flipped kernel: oneDNN computes the forward one there as
  im2col + GEMM and the transposed one with direct kernels (2x faster for 16 maps, 1.4x for 64).
* **A strided transposed convolution** is a convolution at LR size to ``s*s`` times the
  filters followed by depth-to-space (the sub-pixel form of ESPCN): output pixel ``o = q*s + r``
  only receives taps ``k = r + P - d*s`` from input ``q + d``, where ``P = max(k - s, 0) // 2``
  is TensorFlow's "same" padding. That form wins where the transposed conv outputs the image
  (3 maps: FSRCNN's 9x9 deconvolution ran 2.4x faster), and loses where it outputs 64 feature
  maps (1.4x slower at 5x5/2, 2.5x at 5x5/4: the dense LR kernel holds zero taps, and
  depth-to-space is one more memory pass), so only the first kind is replaced by default.
Only element-wise work is compiled: whole models under XLA ran 1.5-2.8x slower on this CPU (its
convolutions are not oneDNN's). The layers are in :mod:`amls2.inference.fast.fused_layers`; this module
finds where they apply (in the model's own graph: a fused layer must be the only consumer of
what it absorbs).

:func:`fast_inference_model` rebuilds a functional model with these layers replaced; all other
layers are shared, and the new layers read the original ones' variables (no copies). Outputs
agree with the original to float round-off (tested within 1e-5). Training and saving keep the
original layers, and MAC counts (``models.cost``) stay those of the published architecture.
"""

from __future__ import annotations

import math

import keras

from amls2.inference.fast import onednn
from amls2.inference.fast.fused_layers import (
    BiaslessConv2DTranspose,
    FusedPReLU,
    FusedUpAddPReLU,
    PointwiseProduct,
    SubpixelTransposedConv,
    TapSplitConv2D,
    TransposedFormConv2D,
)
from amls2.models.cost import fixed_input_clone
from amls2.models.layers import (
    PointwiseConv2DTranspose,
)


def _replaceable(layer) -> bool:
    """A 2-D transposed conv with stride > 1, "same" padding, NHWC, no dilation or output
    padding: exactly the case the sub-pixel form reproduces."""
    return (
        isinstance(layer, keras.layers.Conv2DTranspose)
        and tuple(layer.strides) != (1, 1)
        and layer.strides[0] == layer.strides[1]
        and layer.padding == "same"
        and layer.output_padding is None
        and layer.data_format == "channels_last"
        and tuple(layer.dilation_rate) == (1, 1)
    )


def outputs_an_image(layer) -> bool:
    """A transposed conv whose output is the image itself (at most 4 maps): the case where the
    sub-pixel form measured faster (FSRCNN's 9x9 deconvolution: 2.4x)."""
    return _replaceable(layer) and layer.filters <= 4


def _plain_same_conv(layer) -> bool:
    """A Conv2D of this very class, stride 1, "same", undilated, ungrouped, NHWC, kernel > 1x1."""
    return (
        type(layer) is keras.layers.Conv2D
        and layer.padding == "same"
        and tuple(layer.strides) == (1, 1)
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.groups == 1
        and layer.data_format == "channels_last"
        and max(layer.kernel_size) > 1
    )


def _tap_splittable(layer) -> bool:
    """A plain stride-1 "same" Conv2D from at least 16 maps to the image (at most 4); its
    activation, if any, follows the tap sum (FD-SRCNN's sigmoid stage outputs)."""
    return _plain_same_conv(layer) and layer.filters <= 4 and int(layer.kernel.shape[2]) >= 16


def largest_convolved_input(
    model: keras.Model, *, probe: int = 48, conv_form: str = "auto"
) -> float:
    """Values in the largest input of a convolution that the inference model runs through
    oneDNN's im2col + GEMM path below AVX-512, per model-input pixel (64 for SRCNN's second
    layer in its direct form, 64 x 4 for 64 maps at twice the input size): what a whole-image
    call asks of that path's scratch (``onednn.conv_input_budget_bytes``).

    A 1x1 convolution counts half, and an image-output convolution, which this module runs as
    a matrix product to its taps, not at all: under ``ONEDNN_MAX_CPU_ISA=AVX2`` on 2 threads, a
    5x5 convolution of 64 maps left the GEMM path for oneDNN's reference one between 1300x1300
    and 1448x1448, a 1x1 one between 1448x1448 and 2048x2048. Convolutions in their transposed
    form (``conv_form``) do not count: oneDNN runs those with its direct kernels. ``probe``
    (px): a multiple of the model's stride."""
    fixed = fixed_input_clone(model, probe, probe)
    sizes = [
        math.prod(t.shape[1:]) * (0.5 if pointwise else 1.0)
        for layer in fixed.layers
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Conv2DTranspose)
        if not _tap_splittable(layer)  # a matrix product (TapSplitConv2D): no scratch
        for pointwise in [max(layer.kernel_size) == 1]
        if pointwise or not _as_transposed(layer, conv_form)
        for node in layer._inbound_nodes
        for t in node.input_tensors
    ]
    return max(sizes, default=int(model.inputs[0].shape[-1]) * probe**2) / probe**2


CONV_FORMS: tuple[str, ...] = ("auto", "direct", "transposed")


def _transposable(layer) -> bool:
    """A plain stride-1 "same" Conv2D with an odd kernel (its stride-1 transposed form is the
    same function)."""
    return _plain_same_conv(layer) and all(k % 2 == 1 for k in layer.kernel_size)


def _as_transposed(layer, conv_form: str) -> bool:
    """``conv_form="auto"``: only below AVX-512, where oneDNN's forward convolution is im2col +
    GEMM and the transposed one is direct (``TransposedFormConv2D``)."""
    if conv_form == "auto":
        conv_form = "direct" if onednn.onednn_has_avx512() else "transposed"
    return conv_form == "transposed" and _transposable(layer)


def _up_add_merges(model, consumers: dict[int, list]) -> dict[int, tuple]:
    """id(Add) -> (Conv2DTranspose, PointwiseConv2DTranspose, PReLU) for every ``PReLU(Add([
    Conv2DTranspose(a), PointwiseConv2DTranspose(b)]))`` (linear, with biases, the pointwise one
    on its 1x1 path) whose Add and both convolutions feed nothing else."""
    merges = {}
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            add = node.operation
            parents = [parent.operation for parent in node.parent_nodes]
            after = consumers.get(id(add), [])
            if not (type(add) is keras.layers.Add and len(parents) == 2 and len(after) == 1):
                continue
            transposed = [la for la in parents if type(la) is keras.layers.Conv2DTranspose]
            pointwise = [la for la in parents if type(la) is PointwiseConv2DTranspose]
            if (
                len(transposed) == 1
                and len(pointwise) == 1
                and _is_plain_prelu(after[0])
                and pointwise[0]._pointwise_path()
                and all(
                    _linear_with_bias(la) and len(consumers.get(id(la), [])) == 1 for la in parents
                )
            ):
                merges[id(add)] = (transposed[0], pointwise[0], after[0])
    return merges


def _is_plain_prelu(layer) -> bool:
    return type(layer) is keras.layers.PReLU


SUBPIXEL_CHOICES: tuple[str, ...] = ("auto", "all", "none")


def _as_subpixel(layer, subpixel: str) -> bool:
    if subpixel == "all":
        return _replaceable(layer)
    return subpixel == "auto" and outputs_an_image(layer)


def _is_functional(model) -> bool:
    return isinstance(model, keras.Model) and type(model).__name__ == "Functional"


def _consumers(model) -> dict[int, list]:
    """id(layer) -> the layers that take its output (None: a model output), in ``model``'s own
    graph (a layer's ``_outbound_nodes`` also lists calls from other models built on the same
    layers)."""
    consumers: dict[int, list] = {}
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            for parent in node.parent_nodes:
                consumers.setdefault(id(parent.operation), []).append(node.operation)
    for output in model.outputs:  # a model output is a consumer too (None)
        consumers.setdefault(id(output._keras_history.operation), []).append(None)
    return consumers


def _linear_with_bias(layer) -> bool:
    return layer.use_bias and layer.activation in (None, keras.activations.linear)


def _bias_foldable(layer, consumers: dict[int, list]) -> bool:
    """A plain linear transposed conv with a bias whose only consumer is a PReLU: the bias
    add moves into :class:`FusedPReLU`'s loop."""
    after = consumers.get(id(layer), [])
    return (
        type(layer) is keras.layers.Conv2DTranspose
        and _linear_with_bias(layer)
        and len(after) == 1
        and _is_plain_prelu(after[0])
    )


def count_replaceable(model, *, subpixel: str = "auto", conv_form: str = "auto") -> int:
    """How many layers :func:`fast_inference_model` would replace."""
    fused = 0
    if _is_functional(model):
        consumers = _consumers(model)
        fused = len(_up_add_merges(model, consumers))
    return fused + sum(
        _is_plain_prelu(layer)
        or _as_subpixel(layer, subpixel)
        or _tap_splittable(layer)
        or _as_transposed(layer, conv_form)
        for layer in model.layers
    )


def fast_inference_model(model, *, subpixel: str = "auto", conv_form: str = "auto"):
    """``model`` with every PReLU in its faster exact form (one XLA loop, which also adds the
    bias of a transposed convolution before it) and strided "same" Conv2DTranspose layers in
    the sub-pixel form: those that output the image (``subpixel="auto"``), every one
    (``"all"``, for measurements) or none. ``conv_form``: plain stride-1 convolutions in their
    transposed form (``"transposed"``), as they are (``"direct"``), or the first below AVX-512
    only (``"auto"``). See the module doc for why.

    Returns ``model`` itself when there is nothing to replace or it is not a functional model.
    The new model's layers read ``model``'s variables (no copies): for inference only.
    """
    if subpixel not in SUBPIXEL_CHOICES:
        raise ValueError(f"subpixel {subpixel!r}: valid: {list(SUBPIXEL_CHOICES)}")
    if conv_form not in CONV_FORMS:
        raise ValueError(f"conv_form {conv_form!r}: valid: {list(CONV_FORMS)}")
    replaceable = count_replaceable(model, subpixel=subpixel, conv_form=conv_form)
    if not _is_functional(model) or replaceable == 0:
        return model

    consumers = _consumers(model)
    unbiased: dict[int, keras.layers.Conv2DTranspose] = {}  # id(output) -> layer owing a bias

    merges = _up_add_merges(model, consumers)
    merge_parts = {id(la) for t, p, _ in merges.values() for la in (t, p)}
    merge_prelus = {id(prelu) for _, _, prelu in merges.values()}
    lr_products: set[int] = set()  # id() of PointwiseProduct outputs
    deferred_up: dict[int, tuple] = {}  # id(biasless HR output) -> (LR product, merge)

    def call(layer, *args, **kwargs):
        # The fused up-projection merge: the two convolutions run without their biases (the
        # pointwise one at LR size), the Add passes the HR output on, the PReLU does the rest.
        if id(layer) in merge_parts:
            if isinstance(layer, PointwiseConv2DTranspose):
                z = PointwiseProduct(layer)(args[0])
                lr_products.add(id(z))
                return z
            return BiaslessConv2DTranspose(layer)(args[0])
        if id(layer) in merges:
            (pair,) = args
            z = next(t for t in pair if id(t) in lr_products)
            y = next(t for t in pair if t is not z)
            deferred_up[id(y)] = (z, merges[id(layer)])
            return y
        if id(layer) in merge_prelus and id(args[0]) in deferred_up:
            z, (transposed, pointwise, prelu) = deferred_up[id(args[0])]
            return FusedUpAddPReLU(prelu, transposed, pointwise)(args[0], z)
        if len(args) == 1 and not kwargs:
            (x,) = args
            if _is_plain_prelu(layer):
                return FusedPReLU(layer, bias_of=unbiased.get(id(x)))(x)
            if _as_subpixel(layer, subpixel):
                return SubpixelTransposedConv(layer)(x)
            if _tap_splittable(layer):
                return TapSplitConv2D(layer)(x)
            if _as_transposed(layer, conv_form):
                return TransposedFormConv2D(layer)(x)
            if _bias_foldable(layer, consumers):
                y = BiaslessConv2DTranspose(layer)(x)
                unbiased[id(y)] = layer
                return y
        return layer(*args, **kwargs)

    fast = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)
    fast.name = model.name
    return fast
