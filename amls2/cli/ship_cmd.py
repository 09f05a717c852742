"""``amls2 ship RUN_DIR... [--recipe NAME]``: copy finished runs into Selected_models/."""

from __future__ import annotations

import argparse
from pathlib import Path

from amls2.errors import ConfigError

NAME = "ship"
HELP = "copy finished training runs into Selected_models/ with evaluated sidecars and the index"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs", nargs="*", type=Path, metavar="RUN_DIR", help="training run folders"
    )
    parser.add_argument(
        "--recipe", action="append", help="the recipe of each run, in order (for `reproduce`)"
    )
    parser.add_argument("--weights-dir", type=Path, help="default: the repo's Selected_models")
    parser.add_argument(
        "--weights-set",
        help="bicubic, unknown (blind) or track2sim (fixed operator); default: the run's track",
    )
    parser.add_argument(
        "--dataset", nargs="+", help="test sets (default Set5 Set14; Track2sim for track2sim)"
    )
    parser.add_argument("--data-dir", type=Path, help="data root (default $AMLS2_DATA)")
    parser.add_argument("--force", action="store_true", help="replace already shipped models")
    parser.add_argument(
        "--index-only",
        action="store_true",
        help="only regenerate Selected_models/README.md and the README's summary table (and "
        "add missing sidecar targets)",
    )
    parser.add_argument(
        "--readme",
        type=Path,
        help="the README whose summary table to regenerate (default: the repo's README.md when "
        "--weights-dir is not given; none otherwise)",
    )


def run(args: argparse.Namespace) -> int:
    from amls2.evaluation.shipped_index import write_index, write_readme_summary
    from amls2.evaluation.shipping import refresh_sidecars

    readme = _summary_readme(args)  # checked before anything is written
    if args.index_only:
        for side in refresh_sidecars(args.weights_dir):
            print(f"added targets to {side}")
        print(f"wrote {write_index(args.weights_dir)}")
    else:
        _ship_runs(args)
    if readme is not None:
        print(f"wrote the summary table of {write_readme_summary(readme, args.weights_dir)}")
    return 0


def _summary_readme(args: argparse.Namespace) -> Path | None:
    """The README whose summary table the command regenerates (None: none), after checking
    that it exists and holds the table's markers."""
    from amls2.config import PROJECT_ROOT
    from amls2.evaluation.shipped_index import replace_generated_block

    readme = args.readme
    if readme is None and args.weights_dir is None:
        readme = PROJECT_ROOT / "README.md"
    if readme is None:
        return None
    if not readme.is_file():
        raise ConfigError(f"--readme {readme}: no such file")
    replace_generated_block(readme.read_text(encoding="utf-8"), "", source=f"--readme {readme}")
    return readme


def _ship_runs(args: argparse.Namespace) -> None:
    from amls2.evaluation.shipping import ship_run

    if not args.runs:
        raise ConfigError("RUN_DIR: give at least one training run folder (or --index-only)")
    recipes = args.recipe or []
    if recipes and len(recipes) != len(args.runs):
        raise ConfigError(f"--recipe: {len(recipes)} given for {len(args.runs)} run folder(s)")
    for i, run_dir in enumerate(args.runs):
        target = ship_run(
            run_dir,
            recipe=recipes[i] if recipes else None,
            weights_dir=args.weights_dir,
            datasets=tuple(args.dataset) if args.dataset else None,
            data_dir=args.data_dir,
            force=args.force,
            weights_set=args.weights_set,
        )
        print(f"shipped {run_dir} -> {target} (+ .json sidecar, history)")
