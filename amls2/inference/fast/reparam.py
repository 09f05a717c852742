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
* **Under oneDNN below AVX-512, a stride-1 convolution** (odd kernel, larger than 1x1) becomes
  the stride-1 transposed convolution of its flipped kernel: oneDNN computes the forward one
  there as im2col + GEMM and the transposed one with direct kernels (2x faster for 16 maps, 1.4x
  for 64). Not under Eigen (oneDNN off, TensorFlow's default on an AVX2-only CPU), whose
  transposed convolution books a ``taps x maps`` column buffer per pixel
  (``onednn.conv_path``).
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

:func:`plan` walks the model's graph once (as its public ``get_config()`` records it) into a list
of :class:`Step` (layer, action); :func:`fast_inference_model` then clones the model with those
steps applied. All other layers are shared, and the new layers read the original ones' variables
(no copies). Outputs
agree with the original to float round-off (tested within 1e-5). Training and saving keep the
original layers, and MAC counts (``models.cost``) stay those of the published architecture.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

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


CONV_FORMS: tuple[str, ...] = ("auto", "direct", "transposed")


def _transposable(layer) -> bool:
    """A plain stride-1 "same" Conv2D with an odd kernel (its stride-1 transposed form is the
    same function)."""
    return _plain_same_conv(layer) and all(k % 2 == 1 for k in layer.kernel_size)


def _as_transposed(layer, conv_form: str) -> bool:
    """``conv_form="auto"``: only where oneDNN runs below AVX-512: its forward convolution is
    im2col + GEMM there and the transposed one is direct (``TransposedFormConv2D``). Not under
    Eigen (oneDNN off), whose transposed convolution books a column buffer of ``taps x maps``
    values per pixel: SRCNN x3's 9x9 first layer in that form asked 49 GB for a 512 px image."""
    if conv_form == "auto":
        conv_form = "transposed" if onednn.conv_path() == "onednn-below-avx512" else "direct"
    return conv_form == "transposed" and _transposable(layer)


SUBPIXEL_CHOICES: tuple[str, ...] = ("auto", "all", "none")


def _as_subpixel(layer, subpixel: str) -> bool:
    """The transposed convolutions ``subpixel`` puts in the sub-pixel form."""
    if subpixel == "all":
        return _replaceable(layer)
    return subpixel == "auto" and outputs_an_image(layer)


def _is_plain_prelu(layer) -> bool:
    return type(layer) is keras.layers.PReLU


def _linear_with_bias(layer) -> bool:
    return layer.use_bias and layer.activation in (None, keras.activations.linear)


def _is_functional(model) -> bool:
    return isinstance(model, keras.Model) and type(model).__name__ == "Functional"


def largest_convolved_input(
    model: keras.Model, *, probe: int = 48, conv_form: str = "auto", fast: bool = True
) -> float:
    """Values in the largest input of a convolution that the inference model runs through
    oneDNN's im2col + GEMM path below AVX-512, per model-input pixel (64 for SRCNN's second
    layer in its direct form, 64 x 4 for 64 maps at twice the input size): what a whole-image
    call asks of that path's scratch (``onednn.conv_input_budget_bytes``).

    A 1x1 convolution counts half. With ``fast`` (the model's fast form), an image-output
    convolution, run as a matrix product to its taps, does not count, nor do convolutions in
    their transposed form (``conv_form``), which oneDNN runs with its direct kernels: under
    ``ONEDNN_MAX_CPU_ISA=AVX2`` on 2 threads, a 5x5 convolution of 64 maps left the GEMM path for
    oneDNN's reference one between 1300x1300 and 1448x1448, a 1x1 one between 1448x1448 and
    2048x2048. ``probe`` (px): a multiple of the model's stride."""
    fixed = fixed_input_clone(model, probe, probe)
    sizes = [
        math.prod(layer.input.shape[1:]) * (0.5 if pointwise else 1.0)
        for layer in fixed.layers
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Conv2DTranspose)
        if not (fast and _tap_splittable(layer))  # a matrix product (TapSplitConv2D): no scratch
        for pointwise in [max(layer.kernel_size) == 1]
        if pointwise or not (fast and _as_transposed(layer, conv_form))
    ]
    return max(sizes, default=int(model.inputs[0].shape[-1]) * probe**2) / probe**2


# ----------------------------------------------------------------------------- the graph


@dataclasses.dataclass(frozen=True)
class _Graph:
    """A functional model's layers by name, each one's inputs (layer names, in argument order),
    its consumers (None: a model output) and whether it is called once with one tensor."""

    layers: dict[str, Any]
    parents: dict[str, tuple[str, ...]]
    consumers: dict[str, tuple[str | None, ...]]
    single_input: frozenset[str]

    def only_consumer(self, layer) -> Any:
        """The one layer that takes ``layer``'s output, or None (several, or a model output)."""
        after = self.consumers.get(layer.name, ())
        return self.layers[after[0]] if len(after) == 1 and after[0] is not None else None


def _history_names(item) -> list[str]:
    """The producing layers of every tensor in a serialised call argument, in order."""
    if isinstance(item, dict):
        if item.get("class_name") == "__keras_tensor__":
            return [item["config"]["keras_history"][0]]
        return [name for value in item.values() for name in _history_names(value)]
    if isinstance(item, list | tuple):
        return [name for value in item for name in _history_names(value)]
    return []


def _graph(model) -> _Graph:
    """The graph of ``model`` as its public ``get_config()`` records it (the ``.keras`` format)."""
    config = model.get_config()
    parents, consumers, single = {}, {}, set()
    for entry in config["layers"]:
        nodes = entry.get("inbound_nodes", [])
        names = tuple(name for node in nodes for name in _history_names(node.get("args", [])))
        parents[entry["name"]] = names
        for parent in names:
            consumers.setdefault(parent, []).append(entry["name"])
        if len(nodes) == 1 and len(nodes[0].get("args", [])) == 1 and not nodes[0].get("kwargs"):
            single.add(entry["name"])
    outputs = config["output_layers"]
    for name, *_ in [outputs] if isinstance(outputs[0], str) else outputs:
        consumers.setdefault(name, []).append(None)
    return _Graph(
        layers={layer.name: layer for layer in model.layers},
        parents=parents,
        consumers={name: tuple(after) for name, after in consumers.items()},
        single_input=frozenset(single),
    )


# ----------------------------------------------------------------------------- plan, then apply


@dataclasses.dataclass(frozen=True)
class Step:
    """One layer of the fast form: ``layer`` computed as ``action``. ``partners``: the other
    layers whose variables the new layer reads (a folded bias; the parts of a merge), and for a
    merge, which of the Add's two inputs is the transposed convolution (``y_index``)."""

    layer: Any
    action: str
    partners: tuple = ()
    y_index: int = 0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"step action {self.action!r}: valid: {list(ACTIONS)}")


ACTIONS: tuple[str, ...] = (
    "prelu",  # FusedPReLU (with the bias of the biasless conv before it, if a partner)
    "subpixel",  # SubpixelTransposedConv
    "tap_split",  # TapSplitConv2D
    "transposed_form",  # TransposedFormConv2D
    "biasless",  # BiaslessConv2DTranspose: its bias moves into the next fused loop
    "lr_product",  # PointwiseProduct: the pointwise transposed conv as a product at LR size
    "up_add_prelu",  # FusedUpAddPReLU in place of the Add of a merge
    "pass",  # the merge's PReLU: already computed by the Add's step
)


def _up_add_merge(add, graph: _Graph) -> list[Step]:
    """The steps of ``PReLU(Add([Conv2DTranspose(a), PointwiseConv2DTranspose(b)]))`` at
    ``add`` (linear, with biases, the pointwise one on its 1x1 path; the Add and both
    convolutions feed nothing else), or [] where the pattern does not hold."""
    names = graph.parents.get(add.name, ())
    prelu = graph.only_consumer(add)
    if type(add) is not keras.layers.Add or len(names) != 2 or not _is_plain_prelu(prelu):
        return []
    parts = [graph.layers[name] for name in names]
    kinds = [type(layer) for layer in parts]
    if sorted(k.__name__ for k in kinds) != ["Conv2DTranspose", "PointwiseConv2DTranspose"]:
        return []
    y_index = kinds.index(keras.layers.Conv2DTranspose)
    transposed, pointwise = parts[y_index], parts[1 - y_index]
    if not (pointwise._pointwise_path() and all(
        _linear_with_bias(layer) and graph.only_consumer(layer) is add for layer in parts
    )):  # fmt: skip
        return []
    return [
        Step(transposed, "biasless"),
        Step(pointwise, "lr_product"),
        Step(add, "up_add_prelu", (prelu, transposed, pointwise), y_index),
        Step(prelu, "pass"),
    ]


def _single_step(layer, graph: _Graph, subpixel: str, conv_form: str) -> Step | None:
    """The step of a layer called once on one tensor, or None where it stays as it is."""
    if _is_plain_prelu(layer):
        return Step(layer, "prelu")
    if _as_subpixel(layer, subpixel):
        return Step(layer, "subpixel")
    if _tap_splittable(layer):
        return Step(layer, "tap_split")
    if _as_transposed(layer, conv_form):
        return Step(layer, "transposed_form")
    after = graph.only_consumer(layer)
    if type(layer) is keras.layers.Conv2DTranspose and _linear_with_bias(layer) and (
        _is_plain_prelu(after) and after.name in graph.single_input
    ):  # fmt: skip
        return Step(layer, "biasless")  # its bias is added in the PReLU's loop
    return None


def _check_choices(subpixel: str, conv_form: str) -> None:
    if subpixel not in SUBPIXEL_CHOICES:
        raise ValueError(f"subpixel {subpixel!r}: valid: {list(SUBPIXEL_CHOICES)}")
    if conv_form not in CONV_FORMS:
        raise ValueError(f"conv_form {conv_form!r}: valid: {list(CONV_FORMS)}")


def plan(model, *, subpixel: str = "auto", conv_form: str = "auto") -> list[Step]:
    """The steps of ``model``'s fast form, in one walk of its graph: merges first (they claim
    their layers), then every other layer called once on one tensor. [] for a model that is not
    functional. ``subpixel`` and ``conv_form``: see :func:`fast_inference_model`."""
    _check_choices(subpixel, conv_form)
    if not _is_functional(model):
        return []
    graph = _graph(model)
    steps = [step for layer in model.layers for step in _up_add_merge(layer, graph)]
    claimed = {id(step.layer) for step in steps}
    for layer in model.layers:
        if id(layer) not in claimed and layer.name in graph.single_input:
            step = _single_step(layer, graph, subpixel, conv_form)
            steps += [step] if step is not None else []
    biasless = {step.layer.name for step in steps if step.action == "biasless"}
    return [
        dataclasses.replace(step, partners=(graph.layers[graph.parents[step.layer.name][0]],))
        if step.action == "prelu" and graph.parents[step.layer.name][0] in biasless
        else step
        for step in steps
    ]


def _apply(step: Step, args: tuple):
    """The output of ``step``'s new layer on the cloned call's arguments ``args``."""
    layer, action = step.layer, step.action
    if action == "pass":
        return args[0]
    if action == "up_add_prelu":
        (pair,) = args
        y, z = pair[step.y_index], pair[1 - step.y_index]
        return FusedUpAddPReLU(*step.partners)(y, z)
    (x,) = args
    if action == "prelu":
        return FusedPReLU(layer, bias_of=step.partners[0] if step.partners else None)(x)
    new = {
        "subpixel": SubpixelTransposedConv,
        "tap_split": TapSplitConv2D,
        "transposed_form": TransposedFormConv2D,
        "biasless": BiaslessConv2DTranspose,
        "lr_product": PointwiseProduct,
    }[action]
    return new(layer)(x)


def count_replaceable(model, *, subpixel: str = "auto", conv_form: str = "auto") -> int:
    """How many layers :func:`fast_inference_model` would replace (the steps of its plan)."""
    return len(plan(model, subpixel=subpixel, conv_form=conv_form))


def fast_inference_model(model, *, subpixel: str = "auto", conv_form: str = "auto"):
    """``model`` with every PReLU in its faster exact form (one XLA loop, which also adds the
    bias of a transposed convolution before it) and strided "same" Conv2DTranspose layers in
    the sub-pixel form: those that output the image (``subpixel="auto"``), every one
    (``"all"``, for measurements) or none. ``conv_form``: plain stride-1 convolutions in their
    transposed form (``"transposed"``), as they are (``"direct"``), or the first under oneDNN below
    AVX-512 only (``"auto"``). See the module doc for why.

    Returns ``model`` itself when there is nothing to replace or it is not a functional model.
    The new model's layers read ``model``'s variables (no copies): for inference only.
    """
    steps = {id(step.layer): step for step in plan(model, subpixel=subpixel, conv_form=conv_form)}
    if not steps:
        return model

    def call(layer, *args, **kwargs):
        step = steps.get(id(layer))
        return layer(*args, **kwargs) if step is None else _apply(step, args)

    fast = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)
    fast.name = model.name
    return fast
