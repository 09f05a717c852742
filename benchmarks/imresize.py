"""Speed of the MATLAB-exact bicubic resize: NumPy ``imresize`` and (for scale only, not
MATLAB-exact) OpenCV's cubic resize.

Usage: python benchmarks/imresize.py [--size 1356x2040] [--repeats 3]
Prints a table of the median time per image (seconds) for downscale and upscale at x2, x3, x4.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np

from amls2.imaging.images import to_uint8
from amls2.imaging.resize import imresize


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1356x2040", help="HR height x width (DIV2K-like)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    height, width = (int(n) for n in args.size.split("x"))
    rng = np.random.default_rng(0)
    hr = to_uint8(cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 2))

    print(f"HR {height}x{width}x3 uint8, median of {args.repeats} runs (s)")
    print(f"{'operation':<14}{'numpy':>10}{'cv2 cubic':>12}")
    for scale in (2, 3, 4):
        lr = imresize(hr, 1 / scale)
        cases = {
            f"down x{scale}": (hr, 1 / scale),
            f"up x{scale}": (lr, scale),
        }
        for label, (img, factor) in cases.items():
            out_hw = (int(np.ceil(img.shape[1] * factor)), int(np.ceil(img.shape[0] * factor)))
            numpy_s = median_seconds(lambda img=img, f=factor: imresize(img, f), args.repeats)
            cv2_s = median_seconds(
                lambda img=img, hw=out_hw: cv2.resize(img, hw, interpolation=cv2.INTER_CUBIC),
                args.repeats,
            )
            print(f"{label:<14}{numpy_s:>10.3f}{cv2_s:>12.3f}")


if __name__ == "__main__":
    main()
