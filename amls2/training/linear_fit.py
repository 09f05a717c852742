"""Closed-form least squares for linear upsampling filters (the ``linear`` model, linear skips).

A filter bank of ``factor**2`` k x k filters maps the window of input pixels around input pixel
``q`` to output pixel ``q * factor + (rh, rw)`` (phase ``rh * factor + rw``); the input is the LR
image (factor = scale) or, for models that eat it, its bicubic upscale (factor = 1). Every phase
sees the same windows, so one Gram matrix ``A^T A`` (k^2 x k^2) serves all phases; only the right
sides ``A^T y`` differ. Both are summed image by image (:class:`NormalEquations`), so the fit
streams over any number of images in constant memory and is the same whichever way the images are
batched. The ridge solution is ``(A^T A + lambda I)^-1 A^T y`` with lambda = ``ridge`` x the mean
diagonal of ``A^T A``.

Colour rule: the filters are fitted on luma without its offset, ``(65.481 R + 128.553 G +
24.966 B) / 255`` in [0, 1] (BT.601, the ``y`` protocol's Y minus 16/255), and applied to each
of R, G and B. Luma is a linear mix of the colours, so the luma of the filtered RGB image is
exactly the filtered luma: the fit minimises the error the ``y`` protocol measures. The chroma
gets the same filter, which is right for a degradation that blurs and samples every colour
alike (bicubic, and the fixed Track 2 operators).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

# BT.601 luma weights of ``images.rgb_to_y`` for RGB in [0, 1], without the 16/255 offset.
LUMA_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
DEFAULT_RIDGE = 1e-5
_ROWS_PER_CHUNK = 64  # input rows per product: bounds memory on DIV2K-sized images


def offset_free_luma(img: np.ndarray) -> np.ndarray:
    """(H, W) float64 luma of an RGB (or one-channel) image; uint8 is read as value / 255."""
    x = np.asarray(img, dtype=np.float64)
    if np.asarray(img).dtype == np.uint8:
        x = x / 255.0
    if x.ndim == 2:
        return x * LUMA_WEIGHTS.sum()
    if x.shape[-1] == 1:
        return x[..., 0] * LUMA_WEIGHTS.sum()
    return x[..., :3] @ LUMA_WEIGHTS


def space_to_depth(luma: np.ndarray, split: int) -> np.ndarray:
    """(H, W) -> (H/s, W/s, s*s): pixel ``(i*s + rh, j*s + rw)`` to phase ``rh*s + rw`` of
    position ``(i, j)`` (the order of ``models.layers.space_to_depth``)."""
    h, w = luma.shape[0] // split, luma.shape[1] // split
    x = luma[: h * split, : w * split].reshape(h, split, w, split)
    return x.transpose(0, 2, 1, 3).reshape(h, w, split * split)


@dataclasses.dataclass
class NormalEquations:
    """``A^T A``, ``A^T y`` (one column per output phase) and the number of rows summed.

    ``inputs``: planes per source position (1 for an image; ``s*s`` for the phases of an
    HR-size image split to LR size); a row holds the k x k window of every plane."""

    factor: int
    kernel_size: int
    gram: np.ndarray
    rhs: np.ndarray
    rows: int = 0
    inputs: int = 1

    @classmethod
    def empty(cls, factor: int, kernel_size: int, inputs: int = 1) -> NormalEquations:
        """No rows yet: zero sums for ``factor**2`` output phases of a ``kernel_size`` window
        over ``inputs`` planes."""
        taps = inputs * kernel_size * kernel_size
        return cls(
            factor,
            kernel_size,
            np.zeros((taps, taps)),
            np.zeros((taps, factor**2)),
            inputs=inputs,
        )

    def add(self, source: np.ndarray, target: np.ndarray) -> NormalEquations:
        """Add one image: ``source`` (h, w[, inputs]) and ``target`` (h * factor, w * factor)."""
        f, k = self.factor, self.kernel_size
        planes = source.reshape(source.shape[0], source.shape[1], -1)
        h, w, d = planes.shape
        if d != self.inputs or target.shape != (h * f, w * f):
            raise ValueError(f"target {target.shape} is not {f} x source {source.shape}")
        half = k // 2
        padded = np.pad(planes, ((half, half), (half, half), (0, 0)), mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(0, 1))
        phases = target.reshape(h, f, w, f).transpose(0, 2, 1, 3).reshape(h, w, f * f)
        for top in range(0, h, _ROWS_PER_CHUNK):
            a = windows[top : top + _ROWS_PER_CHUNK].reshape(-1, d * k * k)  # (rows, d, k, k)
            y = phases[top : top + _ROWS_PER_CHUNK].reshape(-1, f * f)
            self.gram += a.T @ a
            self.rhs += a.T @ y
            self.rows += a.shape[0]
        return self

    def merged(self, other: NormalEquations) -> NormalEquations:
        """The equations of both image sets (summing is all streaming needs)."""
        shape = (other.factor, other.kernel_size, other.inputs)
        if shape != (self.factor, self.kernel_size, self.inputs):
            raise ValueError("cannot merge normal equations of different filter banks")
        return NormalEquations(
            self.factor,
            self.kernel_size,
            self.gram + other.gram,
            self.rhs + other.rhs,
            self.rows + other.rows,
            self.inputs,
        )

    def solve(self, ridge: float = DEFAULT_RIDGE) -> np.ndarray:
        """The ridge least-squares filters, float32: ``(factor**2, k, k)`` for one input plane,
        ``(factor**2, inputs, k, k)`` for several."""
        if self.rows == 0:
            raise ValueError("no image was added: nothing to fit")
        taps = self.gram.shape[0]
        damping = ridge * np.trace(self.gram) / taps
        weights = np.linalg.solve(self.gram + damping * np.eye(taps), self.rhs)  # (taps, f^2)
        k = self.kernel_size
        shape = (self.factor**2, k, k) if self.inputs == 1 else (self.factor**2, self.inputs, k, k)
        return weights.T.reshape(shape).astype(np.float32)


def accumulate(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    factor: int,
    kernel_size: int,
    split: int = 1,
) -> NormalEquations:
    """Normal equations of (source, target) image pairs (RGB or grey, uint8 or float [0, 1];
    the target ``factor`` times the source's size after the source is split into its
    ``split * split`` phases at 1/``split`` of its size)."""
    equations = NormalEquations.empty(factor, kernel_size, inputs=split * split)
    for source, target in pairs:
        luma = offset_free_luma(source)
        equations.add(space_to_depth(luma, split) if split > 1 else luma, offset_free_luma(target))
    return equations


def apply_filters(source: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """The filter bank applied to each colour of ``source`` (H, W, C) float: (H*f, W*f, C), in
    NumPy (a reference for the Keras layers; no clipping)."""
    phases, k, _ = filters.shape
    f = int(round(phases**0.5))
    h, w, c = source.shape
    padded = np.pad(np.asarray(source, np.float64), ((k // 2,) * 2, (k // 2,) * 2, (0, 0)), "edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(0, 1))
    out = np.einsum("hwcij,pij->hwpc", windows, filters.astype(np.float64))  # (h, w, f*f, c)
    return out.reshape(h, w, f, f, c).transpose(0, 2, 1, 3, 4).reshape(h * f, w * f, c)
