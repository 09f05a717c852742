"""What the "linear" image skip costs: each model's shipped bicubic-track weights (bicubic skip)
against its shipped track2sim weights (9x9 linear skip, the same body) on the same LR images, timed
in turns (``Upscaler.upscale``, best of ``--repeats`` per image, summed over the set), with
EDSR-small's track2sim time as the yardstick. Prints a Markdown table.

    AMLS2_DATA=../shared/datasets python benchmarks/linear_skip.py --dataset Set5 --scales 2 3 4
"""

from __future__ import annotations

import argparse

from timing import best_seconds_interleaved, cpu_header

from amls2.data.datasets import load_pairs
from amls2.inference.weights import load_upscaler


def set_seconds(upscalers, pairs, repeats: int) -> list[float]:
    """Seconds per set of each upscaler: per image, best of ``repeats`` timed in turns."""
    totals = [0.0] * len(upscalers)
    for pair in pairs:
        calls = [lambda u=u, lr=pair.lr: u.upscale(lr) for u in upscalers]
        for i, seconds in enumerate(best_seconds_interleaved(calls, repeats)):
            totals[i] += seconds
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Set5")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--models", nargs="+", default=["espcn"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(cpu_header())
    print(f"{args.dataset}, LR images of the bicubic track; ms per image (mean over the set)\n")
    print(
        "| model | scale | bicubic skip (ms) | linear skip (ms) | linear / bicubic | EDSR-small (ms) |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for scale in args.scales:
        pairs = load_pairs(args.dataset, scale=scale, track="bicubic")
        yardstick = load_upscaler("edsr@track2sim", scale=scale, track="unknown")
        for name in args.models:
            ups = [
                load_upscaler(f"{name}@bicubic", scale=scale, track="bicubic"),
                load_upscaler(f"{name}@track2sim", scale=scale, track="unknown"),
                yardstick,
            ]
            ms = [1000 * s / len(pairs) for s in set_seconds(ups, pairs, args.repeats)]
            print(
                f"| {name} | x{scale} | {ms[0]:.2f} | {ms[1]:.2f} | {ms[1] / ms[0]:.2f} "
                f"| {ms[2]:.1f} |"
            )


if __name__ == "__main__":
    main()
