"""Time per image and PSNR of every shipped model on a benchmark set, as a user sees them:
``Upscaler.upscale`` on each LR image (uint8-exact input, float output, every conversion and
the bicubic skip included), after one warm-up pass over the set, best of ``--repeats`` per
image. Each model's time is also given relative to EDSR-small's at the same scale, measured in
the same run (the yardstick of the fast-model targets).

    AMLS2_DATA=../shared/datasets python benchmarks/per_image.py --dataset Set5
    python benchmarks/per_image.py --dataset Set5 --weights-sets bicubic track2sim \\
        --figure demo/psnr_vs_time_x{scale}.png --markdown runs/per_image.md
    python benchmarks/per_image.py --dataset Set5 --scales 4 --weights-sets bicubic \\
        --record Selected_models/per_image_time.json

``--record`` writes the rows with the machine they were measured on as JSON: the time column of
the README's summary table (``amls2 ship --index-only``) is read from that file.

PSNR is the ``y`` protocol (BT.601 luma, ``scale`` border shave, [0, 255]) of
``amls2.evaluation.scoring``; the track of the data is the weight set's (``config.WEIGHT_SETS``), and the
fixed-operator weights (``track2sim``) are scored on the data they are for, the Track2sim valid
split (``shipping.DEFAULT_SHIP_SETS``), not on ``--dataset``.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import timing  # noqa: E402

YARDSTICK = "edsr"  # EDSR-small: the time every other model is compared with


def seconds_per_pair(upscaler, pairs, repeats: int) -> list[float]:
    """Best-of-``repeats`` seconds of ``upscaler.upscale`` on each pair, after one warm-up pass
    over all pairs (every image size traced and its memory grown before any timing)."""
    for pair in pairs:
        upscaler.upscale(pair.lr)
    return [timing.best_seconds(lambda p=p: upscaler.upscale(p.lr), repeats) for p in pairs]


def rows_for(weights_set: str, scale: int, names, args) -> list[dict]:
    from amls2 import config
    from amls2.data import pairing
    from amls2.evaluation import scoring
    from amls2.evaluation.shipping import DEFAULT_SHIP_SETS
    from amls2.inference.weights import BICUBIC, load_upscaler, shipped_models, shipped_weights_path

    track = config.WEIGHT_SETS[weights_set]
    dataset = DEFAULT_SHIP_SETS.get(weights_set, (args.dataset,))[0]
    pairs = pairing.load_pairs(dataset, scale=scale, track=track, limit=args.limit)
    available = [n for n in shipped_models(weights_set) if not names or n in names]
    upscalers = [load_upscaler(BICUBIC, scale=scale, track=track)]
    for name in available:
        if shipped_weights_path(name, scale=scale, weights_set=weights_set).is_file():
            upscalers.append(load_upscaler(f"{name}@{weights_set}", scale=scale, track=track))
    records = scoring.evaluate_pairs(
        upscalers, pairs, dataset=dataset, scale=scale, track=track, baseline=False
    )
    rows = []
    for upscaler, record in zip(upscalers, records, strict=True):
        times = seconds_per_pair(upscaler, pairs, args.repeats)
        rows.append(
            {
                "weights_set": weights_set,
                "dataset": dataset,
                "model": upscaler.name.split("@")[0],
                "scale": scale,
                "psnr": record["psnr"],
                "ms_per_image": 1e3 * sum(times) / len(times),
            }
        )
    yard = next((r for r in rows if r["model"] == YARDSTICK), None)
    for row in rows:
        row["edsr_time_ratio"] = yard["ms_per_image"] / row["ms_per_image"] if yard else None
    return rows


def markdown(rows: list[dict], header: str) -> str:
    lines = [
        f"{header}",
        "",
        "| weights | data | model | x | PSNR (dB) | ms per image | EDSR-small time / time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r['edsr_time_ratio']:.1f}x" if r["edsr_time_ratio"] else "-"
        lines.append(
            f"| {r['weights_set']} | {r['dataset']} | {r['model']} | {r['scale']} | "
            f"{r['psnr']:.2f} | {r['ms_per_image']:.1f} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="Set5")
    parser.add_argument("--scales", nargs="*", type=int, default=[2, 3, 4])
    parser.add_argument("--weights-sets", nargs="*", default=["bicubic"])
    parser.add_argument("--models", nargs="*", help="only these registry names (default: all)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--limit", type=int, help="only the first images of the set")
    parser.add_argument("--figure", help="PSNR-vs-time figure path; {scale} is replaced")
    parser.add_argument("--markdown", help="also write the table to this file (atomically)")
    parser.add_argument("--record", help="also write the rows and the machine as JSON (atomically)")
    args = parser.parse_args()

    from amls2 import fileio
    from amls2.reporting import figure_helpers, plots

    header = f"{timing.cpu_header()}; dense matmul {timing.matmul_gflops():.0f} GFLOP/s"
    rows = []
    for scale in args.scales:
        for weights_set in args.weights_sets:
            rows += rows_for(weights_set, scale, args.models, args)
        if args.figure:
            chosen = [r for r in rows if r["scale"] == scale]
            fig = plots.psnr_vs_time(chosen, dataset=args.dataset, scale=scale)
            figure_helpers.save_figure(fig, args.figure.format(scale=scale))
    text = markdown(rows, header)
    print(text, end="")
    if args.markdown:
        fileio.atomic_write_text(args.markdown, text)
    if args.record:
        # The 1-minute load average as the run ends: whether other jobs shared the CPU.
        load = (
            f"1-minute load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end"
        )
        measured = {"machine": f"{header}; {load}", "repeats": args.repeats, "rows": rows}
        fileio.atomic_write_json(args.record, measured)


if __name__ == "__main__":
    main()
