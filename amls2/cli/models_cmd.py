"""``amls2 models``: list the model zoo with parameters and multiply-adds per 1280x720 output."""

from __future__ import annotations

import argparse

from amls2.config import SCALES

NAME = "models"
HELP = "list the registered models with their parameters and multiply-adds"

# MACs are reported for one 1280x720 (width x height) OUTPUT image.
OUTPUT_HW: tuple[int, int] = (720, 1280)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scale", type=int, choices=SCALES, help="only this scale (default: all of x2, x3, x4)"
    )
    parser.add_argument(
        "--variant",
        default=None,
        help="report this named variant for the models that have it (default: the defaults)",
    )


def _g(macs: int) -> str:
    return f"{macs / 1e9:.2f}G"


def _format_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from amls2.models import MODELS, build_model
    from amls2.models.cost import count_macs, count_params, input_hw_for_output

    scales = [args.scale] if args.scale else list(SCALES)
    header = ["model", "paper", "input", "params"] + [f"MACs x{s}" for s in scales]
    rows = []
    input_sizes: dict[int, set[str]] = {s: set() for s in scales}
    for name, spec in MODELS.items():
        variant = args.variant if args.variant in spec.variants else None
        params, macs = [], []
        for scale in scales:
            model = build_model(name, scale, variant=variant)
            params.append(count_params(model))
            macs.append(_g(count_macs(model, OUTPUT_HW)))
            in_h, in_w = input_hw_for_output(model, OUTPUT_HW)
            input_sizes[scale].add(f"{in_w}x{in_h} ({spec.input_kind})")
        label = name if variant is None else f"{name}[{variant}]"
        # Parameters can depend on the scale (sub-pixel tails, fd_srcnn's two x4 modules).
        shown = (
            f"{min(params):,}" if min(params) == max(params) else f"{min(params):,}-{max(params):,}"
        )
        rows.append([label, spec.paper, spec.input_kind, shown, *macs])
    print(_format_table(rows, header))
    print()
    print("params: a range when the count differs between the listed scales.")
    print("MACs = multiply-accumulates for one 1280x720 (WxH) output image; input sizes used")
    print("(rounded to the nearest pixel: at x3 the 'lr' models output 1281x720):")
    for scale in scales:
        print(f"  x{scale}: " + ", ".join(sorted(input_sizes[scale])))
    print(
        "Conv2DTranspose is counted at its input resolution, in_h*in_w*k*k*cin*cout (each input\n"
        "pixel scatters one kernel; multiplications by inserted zeros are not counted), i.e. as\n"
        "the equivalent sub-pixel convolution. Biases, activations, batch norm, pooling and\n"
        "element-wise ops are not counted; 'bicubic' models also need the bicubic upscale."
    )
    return 0
