"""The edge-oriented convolution block (ECB; Zhang, Zeng and Zhang 2021, ECBSR): a 3x3
convolution trained as five parallel branches and run as the one 3x3 convolution they add up to.

The branches (``C_in`` to ``C_out`` maps):

* a 3x3 convolution;
* a 1x1 convolution to ``depth_multiplier * C_out`` maps, then a 3x3 convolution;
* three times a 1x1 convolution, then a fixed edge filter (Sobel x, Sobel y, Laplacian) per map
  with a learned scale per map.

Every branch is linear in the input, so their sum is a 3x3 convolution whose kernel is a
polynomial in the branch weights (ECBSR pads the 1x1 outputs with their bias, not zeros, so that
borders agree too). This layer computes that kernel first and then convolves once (online
re-parameterisation, as in OREPA, Hu et al. 2022): the output, and by the chain rule the
gradient of every branch weight, are those of the five branches run side by side, at the cost of
one convolution. What the branches buy is a different path through training, not a different
function: small SR networks reach higher PSNR with them (ECBSR: +0.1 to +0.3 dB).

Biases that only add to the output are one bias (the layer's own): separate ones would be the
same function with a larger step size. The 1x1 expansion's bias reaches the output through the
3x3 weights, so it is kept. Inference needs no conversion: it is a Conv2D, and its multiply-adds
are a plain 3x3 convolution's (``models.cost``).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf  # the package targets the TensorFlow backend (XLA below)
from keras import ops

# (rows, columns) of the fixed 3x3 filters; convolutions here are correlations, as in TF/PyTorch.
EDGE_FILTERS: dict[str, np.ndarray] = {
    "sobel_x": np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float32),
    "sobel_y": np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float32),
    "laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32),
}


_EDGE_STACK = np.stack(list(EDGE_FILTERS.values()))  # (3 filters, 3, 3)


@tf.function(jit_compile=True)
def _merge(k3, expand, expand_bias, squeeze, edge_1x1, edge_scale, bias):
    """The merged kernel and bias (:meth:`EdgeOrientedConv2D.merged_kernel_and_bias`) as one
    XLA launch: as about ten TensorFlow ops it added 50 us per layer to every call, a fifth of
    the fast model's time on a Set5 image; compiled, it costs about nothing."""
    kernel = k3 + tf.einsum("im,hwmo->hwio", expand, squeeze)
    scaled = edge_1x1 * edge_scale[:, None, :]  # (filters, C_in, C_out)
    kernel = kernel + tf.einsum("ehw,eio->hwio", tf.constant(_EDGE_STACK), scaled)
    return kernel, bias + tf.einsum("m,hwmo->o", expand_bias, squeeze)


@keras.saving.register_keras_serializable(package="amls2")
class EdgeOrientedConv2D(keras.layers.Conv2D):
    """A stride-1 "same" 3x3 ``Conv2D`` whose kernel is the sum of the ECB branches (module doc).

    ``kernel`` is computed from the branch weights in float32 on every call and cast to the
    compute dtype (the branch variables are never autocast, so bfloat16 training does not round
    the merge). The layer's ``bias`` is the summed bias of the branches plus the expansion bias
    carried through the 3x3 weights (:meth:`merged_kernel_and_bias`).
    """

    def __init__(self, filters: int, *, depth_multiplier: int = 2, **kwargs):
        kwargs.setdefault("padding", "same")
        super().__init__(filters, 3, **kwargs)
        if self.padding != "same" or tuple(self.strides) != (1, 1) or self.groups != 1:
            raise ValueError("EdgeOrientedConv2D is a stride-1, 'same', ungrouped 3x3 conv")
        if self.data_format != "channels_last" or tuple(self.dilation_rate) != (1, 1):
            raise ValueError("EdgeOrientedConv2D needs channels_last and no dilation")
        if depth_multiplier < 1:
            raise ValueError(f"depth_multiplier must be >= 1, got {depth_multiplier}")
        self.depth_multiplier = int(depth_multiplier)

    def _weight(self, name, shape, initializer):
        return self.add_weight(
            name=name, shape=shape, initializer=initializer, dtype=self.dtype, autocast=False
        )

    def build(self, input_shape):
        c_in, c_out = int(input_shape[-1]), self.filters
        mid = self.depth_multiplier * c_out
        self.input_spec = keras.layers.InputSpec(min_ndim=4, axes={-1: c_in})
        self.k3 = self._weight("k3", (3, 3, c_in, c_out), self.kernel_initializer)
        self.expand = self._weight("expand", (c_in, mid), "glorot_uniform")
        self.expand_bias = self._weight("expand_bias", (mid,), "zeros")
        self.squeeze = self._weight("squeeze", (3, 3, mid, c_out), self.kernel_initializer)
        self.edge_1x1 = {
            name: self._weight(f"{name}_1x1", (c_in, c_out), "glorot_uniform")
            for name in EDGE_FILTERS
        }
        scale_init = keras.initializers.RandomNormal(stddev=1e-3)  # ECBSR's initialisation
        self.edge_scale = {
            name: self._weight(f"{name}_scale", (c_out,), scale_init) for name in EDGE_FILTERS
        }
        self.bias = (
            self.add_weight(name="bias", shape=(c_out,), initializer=self.bias_initializer)
            if self.use_bias
            else None
        )
        self.built = True

    def merged_kernel_and_bias(self):
        """The (3, 3, C_in, C_out) kernel and (C_out,) bias of the equivalent convolution,
        float32. The expansion bias ``b`` enters as ``sum over taps and maps of b * squeeze``:
        ECBSR pads the expanded maps with ``b``, so this holds at the borders too."""

        def tensor(variable):  # the value, never autocast (the variables are not)
            return tf.convert_to_tensor(variable.value)

        edge_1x1 = tf.stack([tensor(self.edge_1x1[name]) for name in EDGE_FILTERS])
        edge_scale = tf.stack([tensor(self.edge_scale[name]) for name in EDGE_FILTERS])
        bias = ops.cast(self.bias, "float32") if self.use_bias else ops.zeros((self.filters,))
        return _merge(
            tensor(self.k3),
            tensor(self.expand),
            tensor(self.expand_bias),
            tensor(self.squeeze),
            edge_1x1,
            edge_scale,
            bias,
        )

    @property
    def kernel(self):
        """The merged 3x3 kernel of the five branches, in the compute dtype."""
        kernel, _ = self.merged_kernel_and_bias()
        return ops.cast(kernel, self.compute_dtype)

    def call(self, inputs):
        kernel, bias = self.merged_kernel_and_bias()
        outputs = self.convolution_op(inputs, ops.cast(kernel, self.compute_dtype))
        # The same ops as Conv2D (conv, add, activation), so TensorFlow still fuses a ReLU.
        outputs = ops.add(outputs, ops.reshape(ops.cast(bias, self.compute_dtype), (1, 1, 1, -1)))
        if self.activation is not None:
            return self.activation(outputs)
        return outputs

    # Conv2D saves [kernel, bias]; here the variables are the branches.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self):
        config = super().get_config()
        config.pop("kernel_size", None)
        config["depth_multiplier"] = self.depth_multiplier
        return config


def has_edge_blocks(model) -> bool:
    """Whether ``model`` has edge-oriented blocks to merge before shipping."""
    return any(isinstance(layer, EdgeOrientedConv2D) for layer in model.layers)


def merge_into_plain(model: keras.Model) -> keras.Model:
    """``model`` with every :class:`EdgeOrientedConv2D` replaced by the plain ``Conv2D`` it
    computes (same name and activation; the merged kernel and bias), as ECBSR deploys: the same
    function, without re-computing the merge on every call (about 5 % of the fast model's time
    per Set5 image even as one XLA launch per layer). Other layers are shared, not copied."""

    def clone(layer):
        if not isinstance(layer, EdgeOrientedConv2D):
            return layer
        return keras.layers.Conv2D(
            layer.filters, 3, padding="same", activation=layer.activation, name=layer.name
        )

    plain = keras.models.clone_model(model, clone_function=clone)
    for trained, deployed in zip(model.layers, plain.layers, strict=True):
        if isinstance(trained, EdgeOrientedConv2D):
            kernel, bias = trained.merged_kernel_and_bias()
            deployed.set_weights([np.asarray(kernel), np.asarray(bias)])
    plain.name = model.name
    return plain
