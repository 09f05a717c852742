"""Per-example training losses on float32 [0,1] RGB batches (NHWC).

Each loss returns one value per example (shape [N]) so that the engine can average over the
GLOBAL batch across replicas (``tf.nn.compute_average_loss``). This module imports TensorFlow
and Keras; the engine imports it when a run starts, so that ``import amls2.training`` stays light.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import keras
import tensorflow as tf

from amls2.errors import ConfigError

log = logging.getLogger(__name__)

# The VGG19 layer of the perceptual loss ("VGG54" of Ledig et al. 2017, SRGAN).
PERCEPTUAL_LAYER = "block5_conv4"


def l1_loss(target, pred):
    """Per-example mean absolute error over H, W and C."""
    return tf.reduce_mean(tf.abs(target - pred), axis=[1, 2, 3])


def l2_loss(target, pred):
    """Per-example mean squared error over H, W and C."""
    return tf.reduce_mean(tf.square(target - pred), axis=[1, 2, 3])


# BT.601 luma of the ``y`` evaluation protocol (images.rgb_to_y without the offset), RGB in [0, 1].
LUMA_WEIGHTS = (65.481 / 255, 128.553 / 255, 24.966 / 255)
# What the luma loss keeps of the RGB L2: chroma errors still cost, at about half the RGB L2's
# relative weight, so a colour-blind output is never the optimum.
LUMA_LOSS_RGB_WEIGHT = 0.1


def l2_luma_loss(target, pred):
    """MSE of the BT.601 luma (the ``y`` protocol's channel) + ``LUMA_LOSS_RGB_WEIGHT`` x RGB MSE.

    The benchmarks score luma only, and FSRCNN-class models published there are luma-only
    networks; an RGB network this small spends capacity on chroma the score does not see."""
    diff = target - pred
    luma = tf.tensordot(diff, tf.constant(LUMA_WEIGHTS, diff.dtype), axes=[[3], [0]])
    rgb = tf.reduce_mean(tf.square(diff), axis=[1, 2, 3])
    return tf.reduce_mean(tf.square(luma), axis=[1, 2]) + LUMA_LOSS_RGB_WEIGHT * rgb


def charbonnier_loss(target, pred, epsilon: float = 1e-3):
    """sqrt((target - pred)^2 + epsilon^2), a differentiable L1 (LapSRN)."""
    return tf.reduce_mean(tf.sqrt(tf.square(target - pred) + epsilon**2), axis=[1, 2, 3])


def build_vgg_features(weights_path: str):
    """A frozen VGG19 feature extractor up to ``PERCEPTUAL_LAYER`` with weights from a file.

    The weights must be the ImageNet "notop" file; nothing is downloaded. ConfigError naming
    ``--vgg-weights`` if the file is missing or does not fit.
    """
    with warnings.catch_warnings():
        # Keras warns once per layer a wrong file cannot fill before it raises: the first such
        # warning is the error, so a user sees one line, and no layer keeps random weights.
        warnings.filterwarnings("error", message=".*freshly-initialized", category=UserWarning)
        try:
            vgg = keras.applications.VGG19(
                include_top=False, weights=str(weights_path), input_shape=(None, None, 3)
            )
        except UserWarning:
            raise ConfigError(
                f"--vgg-weights {weights_path}: not the VGG19 notop weights "
                "(a VGG19 layer has no weights in the file)"
            ) from None
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"--vgg-weights {weights_path}: cannot load VGG19 weights ({exc})"
            ) from None
    features = keras.Model(vgg.input, vgg.get_layer(PERCEPTUAL_LAYER).output, name="vgg_features")
    features.trainable = False
    return features


def make_loss(
    name: str,
    *,
    charbonnier_epsilon: float = 1e-3,
    vgg_weights: str | None = None,
    perceptual_weight: float = 0.01,
) -> Callable:
    """``loss(target, pred) -> [N]`` for a loss name of ``OptimConfig.loss``."""
    if name == "l1":
        return l1_loss
    if name == "l2":
        return l2_loss
    if name == "l2_luma":
        return l2_luma_loss
    if name == "charbonnier":
        return lambda t, p: charbonnier_loss(t, p, charbonnier_epsilon)
    if name == "perceptual":
        if not vgg_weights:
            raise ConfigError("--vgg-weights: the perceptual loss needs a VGG19 weights file")
        features = build_vgg_features(vgg_weights)

        def vgg_input(img):
            # VGG19 expects caffe-style BGR 0..255 minus the ImageNet mean.
            return keras.applications.vgg19.preprocess_input(img * 255.0)

        def perceptual(t, p):
            diff = features(vgg_input(t), training=False) - features(vgg_input(p), training=False)
            return l1_loss(t, p) + perceptual_weight * tf.reduce_mean(
                tf.square(diff), axis=[1, 2, 3]
            )

        return perceptual
    raise ConfigError(f"--loss {name!r}: unknown")
