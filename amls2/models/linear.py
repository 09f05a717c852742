"""The ``linear`` model: every HR pixel a linear function of the k x k LR pixels around it.

One k x k filter per output phase (``scale**2`` filters), the same for every colour, then a pixel
shuffle. It has no nonlinearity, so its least-squares weights have a closed form: they are solved
from (LR, HR) pairs by ridge regression (:mod:`amls2.training.linear_fit`; ``amls2 train --model
linear`` solves instead of stepping). Untrained it is MATLAB's bicubic upscale (edges replicated
as imresize does). It is the honest baseline of both tracks: on pairs whose degradation is not
bicubic it learns the inverse of the degradation's blur and sampling grid, which bicubic cannot.
"""

from __future__ import annotations

import keras

from amls2.models.layers import LINEAR_KERNEL_SIZE
from amls2.models.phase_layers import LinearPhases, PixelShuffle


def build_linear(
    scale: int, channels: int = 3, *, kernel_size: int = LINEAR_KERNEL_SIZE
) -> keras.Model:
    """``LinearPhases(scale, kernel_size)`` then ``PixelShuffle(scale)``: an uncompiled, fully
    convolutional model from the LR image to the HR image (kernel_size odd, >= 5)."""
    inp = keras.Input(shape=(None, None, channels), name="lr")
    phases = LinearPhases(scale, kernel_size, closed_form=True, name="linear_phases")(inp)
    return keras.Model(inp, PixelShuffle(scale)(phases), name=f"linear_x{scale}")
