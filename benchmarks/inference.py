"""Inference speed of every registered model: seconds, output MP/s, achieved GFLOP/s and that as
a fraction of the machine's dense matmul GFLOP/s (measured in the same run).

    python benchmarks/inference.py            # 512x512 LR input, x2/x3/x4, default hparams
    python benchmarks/inference.py --quick    # 128x128 LR input
    python benchmarks/inference.py --shipped  # the shipped weights' architectures (Selected_models)

Whole-image ``amls2.inference.upscaler.super_resolve`` (including the bicubic upscale of "bicubic"
models), best of ``--repeats`` after a warm-up call at the same size (the first call at a new
size also pays for TensorFlow's memory growth: one cold call measured EDSR-small x3 at 21 % of
matmul instead of 78 %); FLOPs are 2 x multiply-adds from amls2.models.cost.count_macs.
Per-image times on a benchmark set, as a user sees them: ``benchmarks/per_image.py``.
"""

from __future__ import annotations

import argparse
import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import timing  # noqa: E402

# Issue 15's bar: at most 1.2x EDSR-small's time per multiply-add. Each row's ratio comes from
# its model and EDSR-small timed in turns (timing.best_seconds_interleaved).
REFERENCE = "edsr"


def candidates(args):
    """(name, scale, model) to time: registry defaults, or the shipped models of a weight set."""
    from amls2 import models
    from amls2.inference.weights import shipped_weights_path
    from amls2.models.io import load_model

    names = args.models or models.model_names()
    # EDSR-small first: every later row's time per multiply-add is compared with its.
    names = sorted(names, key=lambda name: name != REFERENCE)
    for name in names:
        for scale in args.scales:
            if args.shipped:
                path = shipped_weights_path(name, scale=scale, weights_set=args.weights_set)
                if path.is_file():
                    yield name, scale, load_model(path)[0]
            elif scale in models.get_spec(name).scales:
                yield name, scale, models.build_model(name, scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="128x128 input instead of 512x512")
    parser.add_argument("--size", type=int, help="LR input size (overrides --quick)")
    parser.add_argument("--models", nargs="*", help="only these registry names")
    parser.add_argument("--scales", nargs="*", type=int, default=[2, 3, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights-set", default="bicubic", help="with --shipped: which set")
    parser.add_argument(
        "--shipped",
        action="store_true",
        help="benchmark the shipped models (their variants/hparams) instead of the defaults",
    )
    args = parser.parse_args()

    from amls2 import models
    from amls2.inference.upscaler import super_resolve
    from amls2.models.cost import count_macs

    size = args.size or (128 if args.quick else 512)
    peak = timing.matmul_gflops()
    print(f"{timing.cpu_header()}")
    n = timing.MATMUL_SIZE
    print(f"dense matmul ({n}^2 float32): {peak:.1f} GFLOP/s; LR input {size}x{size}")
    header = (
        f"{'model':<11} {'x':>2} {'seconds':>8} {'out MP/s':>9} {'GMACs':>8} {'GFLOP/s':>8} "
        f"{'of matmul':>9} {'s/MAC vs edsr':>13}"
    )
    print(header)
    print("-" * len(header))
    lr = np.random.default_rng(0).random((size, size, 3), dtype=np.float32)
    references: dict[int, tuple] = {}  # scale -> (timed call, multiply-adds) of EDSR-small
    for name, scale, model in candidates(args):
        kind = models.get_spec(name).input_kind
        run = functools.partial(super_resolve, model, lr, scale=scale, input_kind=kind)
        out_hw = (size * scale, size * scale)
        macs = count_macs(model, out_hw)
        reference = references.get(scale)
        if name == REFERENCE or reference is None:
            best = timing.best_seconds(run, args.repeats)
            versus = "1.00x" if name == REFERENCE else "-"
            if name == REFERENCE:
                references[scale] = (run, macs)
        else:
            # Timed in turns with EDSR-small: the ratio is measured side by side.
            best, ref_best = timing.best_seconds_interleaved([run, reference[0]], args.repeats)
            versus = f"{(best / macs) / (ref_best / reference[1]):.2f}x"
        gflops = 2 * macs / best / 1e9
        print(
            f"{name:<11} {scale:>2} {best:>8.3f} {out_hw[0] * out_hw[1] / 1e6 / best:>9.2f} "
            f"{macs / 1e9:>8.2f} {gflops:>8.1f} {gflops / peak:>9.1%} {versus:>13}",
            flush=True,
        )


if __name__ == "__main__":
    main()
