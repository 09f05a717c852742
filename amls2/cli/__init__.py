"""The ``amls2`` command: thin subcommands that parse options, call the library and report.

Each subcommand lives in its own module exposing ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; ``COMMANDS`` lists them explicitly. Errors a user can cause (``Amls2Error``)
are printed as one line on stderr with exit code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from amls2.errors import Amls2Error

# Subcommand name -> module under amls2.cli. Imported lazily so `amls2 --help` stays fast.
COMMANDS: dict[str, str] = {
    "datasets": "amls2.cli.datasets_cmd",
    "download": "amls2.cli.download_cmd",
    "degrade": "amls2.cli.degrade_cmd",
    "prepare": "amls2.cli.prepare_cmd",
    "models": "amls2.cli.models_cmd",
    "train": "amls2.cli.train_cmd",
    "evaluate": "amls2.cli.evaluate_cmd",
    "upscale": "amls2.cli.upscale_cmd",
    "ship": "amls2.cli.ship_cmd",
}


def _available_commands() -> dict[str, object]:
    modules = {}
    for name, module_name in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amls2",
        description="Single-image super-resolution: data, models, training, evaluation, upscaling.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _available_commands().items():
        sub_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args._run(args) or 0)
    except Amls2Error as exc:
        print(f"amls2 {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"amls2 {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
