"""Peak resident memory of ``amls2 upscale`` on a large photo (tiled inference keeps it bounded).

    python benchmarks/upscale_memory.py                 # 3000x3000 -> 6000x6000 with rfdn x2
    python benchmarks/upscale_memory.py --size 1000 --model fsrcnn

The model is built untrained with the registry's default hparams and saved to a temporary
``.keras`` file (weights do not change memory or speed); the upscale runs in a subprocess and its
peak RSS is read with ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``. Target: < 3 GiB.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_photo(path: Path, size: int) -> None:
    import numpy as np

    from amls2.imaging import images

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = 0.5 + 0.3 * np.sin(40 * xx + 25 * yy)[..., None] * np.array([1.0, 0.7, 0.4], np.float32)
    noise = rng.normal(0, 0.03, (size, size, 3)).astype(np.float32)
    images.write_image(path, np.clip(base + noise, 0, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=3000, help="input side in pixels")
    parser.add_argument(
        "--model", default="rfdn", help="registry name (default rfdn, the light one)"
    )
    parser.add_argument(
        "--variant", default=None, help="registry variant (default: default hparams)"
    )
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--tile", type=int, default=None, help="--tile for amls2 upscale")
    args = parser.parse_args()

    from amls2 import models
    from amls2.models.io import save_model

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photo = tmp / "photo.png"
        make_photo(photo, args.size)
        weights = save_model(
            models.build_model(args.model, args.scale, variant=args.variant),
            tmp / f"{args.model}_x{args.scale}.keras",
            {"track": "bicubic"},
        )
        command = [
            sys.executable, "-m", "amls2", "upscale", str(photo), "--model", str(weights),
            "--scale", str(args.scale), "--out", str(tmp / "out"),
        ]  # fmt: skip
        if args.tile is not None:
            command += ["--tile", str(args.tile)]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        out = tmp / "out" / f"photo_x{args.scale}_{weights.stem}.png"
        print(f"{'model':<8} {'input':>11} {'output':>11} {'seconds':>8} {'peak RSS (GiB)':>15}")
        print(
            f"{args.model:<8} {f'{args.size}x{args.size}':>11} "
            f"{f'{args.size * args.scale}x{args.size * args.scale}':>11} {seconds:>8.1f} "
            f"{peak_kib / 2**20:>15.2f}"
        )
        print(f"output written: {out.is_file()}; target peak < 3 GiB: {peak_kib / 2**20 < 3}")


if __name__ == "__main__":
    main()
