"""Model cost on this machine: parameters, multiply-adds and measured CPU time per image.

    python benchmarks/model_cost.py --scale 4 --output 256 256 --repeats 3 [--models edsr rfdn]

MACs are counted analytically (amls2.models.cost) for the given output size; the time is the
median wall time of ``model.predict_on_batch`` on one random image after one warm-up call, so
that MACs/s compares how well each architecture uses a CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=4, choices=(2, 3, 4))
    parser.add_argument("--output", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=None, help="default: every model")
    parser.add_argument("--variant", default=None, help="use this variant where it exists")
    args = parser.parse_args()

    import numpy as np

    from amls2.models import MODELS, build_model
    from amls2.models.cost import count_macs, count_params, input_hw_for_output

    names = args.models or list(MODELS)
    out_hw = tuple(args.output)
    print(f"x{args.scale}, output {out_hw[1]}x{out_hw[0]} (WxH), median of {args.repeats} runs")
    print(f"{'model':<22}{'params':>12}{'GMACs':>10}{'ms':>10}{'GMAC/s':>10}")
    for name in names:
        spec = MODELS[name]
        variant = args.variant if args.variant in spec.variants else None
        model = build_model(name, args.scale, variant=variant)
        in_h, in_w = input_hw_for_output(model, out_hw)
        x = np.random.default_rng(0).random((1, in_h, in_w, 3), dtype=np.float32)
        model.predict_on_batch(x)  # warm-up: graph tracing and allocation
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            model.predict_on_batch(x)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        macs = count_macs(model, out_hw)
        label = name if variant is None else f"{name}[{variant}]"
        print(
            f"{label:<22}{count_params(model):>12,}{macs / 1e9:>10.2f}"
            f"{seconds * 1e3:>10.1f}{macs / 1e9 / seconds:>10.1f}"
        )


if __name__ == "__main__":
    main()
