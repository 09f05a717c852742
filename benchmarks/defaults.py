"""Do the training defaults work? Train every registered model with nothing but
``amls2 train --model NAME --steps 600`` (x2, bicubic track, T91; the model's defaults from
``amls2/models/training_defaults.py``), then score it on Set5 against bicubic interpolation.

    AMLS2_DATA=../shared/datasets python benchmarks/defaults.py [--models srcnn edsr] [--steps 600]
        [--out runs/defaults] [--json defaults.json]

Prints one table: model, Set5 PSNR (``y`` protocol, whole images), gain over bicubic, training
wall time, the precision ``auto`` chose, and the CPU with its flags. Each training is a separate
``amls2 train`` process (exactly what a user types); a finished run folder is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from timing import cpu_header  # noqa: E402


def train(name: str, steps: int, out_dir: Path) -> float:
    """Run ``amls2 train --model NAME --steps STEPS`` (resumes or reuses a finished run)."""
    command = [sys.executable, "-m", "amls2", "train", "--model", name, "--steps", str(steps)]
    command += ["--out-dir", str(out_dir), "--no-progress"]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def score(model_path: Path) -> dict:
    """Set5 x2 (bicubic track) PSNR of the model and of bicubic interpolation."""
    from amls2.evaluation.scoring import EvalConfig, evaluate

    (record,) = evaluate(
        EvalConfig(models=(str(model_path),), datasets=("Set5",), scales=(2,), tracks=("bicubic",))
    )
    return record


def main() -> None:
    from amls2.models import model_names

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", default=model_names())
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", type=Path, default=Path("runs/defaults"))
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()

    rows = []
    for name in args.models:
        out_dir = args.out / name
        seconds = train(name, args.steps, out_dir)
        model_path = next(out_dir.glob("*.keras"))
        sidecar = json.loads(model_path.with_suffix(".json").read_text())
        record = score(model_path)
        rows.append(
            {
                "model": name,
                "psnr": record["psnr"],
                "bicubic_psnr": record["bicubic_psnr"],
                "gain": record["psnr"] - record["bicubic_psnr"],
                "train_wall_s": sidecar.get("wall_time_s", seconds),
                "precision": sidecar.get("precision"),
                "hparams": sidecar.get("hparams"),
            }
        )
        print(f"{name}: {rows[-1]['psnr']:.2f} dB ({rows[-1]['gain']:+.2f})", flush=True)

    print(f"\n{args.steps} steps, x2, T91, `amls2 train --model NAME --steps {args.steps}`")
    print(f"{cpu_header()}\n")
    print("| model | Set5 PSNR | gain over bicubic | training wall time | precision |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['model']} | {row['psnr']:.2f} dB | {row['gain']:+.2f} dB "
            f"| {row['train_wall_s']:.0f} s | {row['precision']} |"
        )
    below = [row["model"] for row in rows if row["gain"] <= 0]
    print(f"\nbelow bicubic: {', '.join(below) or 'none'}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
