"""The ``amls2`` command: thin subcommands that parse options, call the library and report.

Each subcommand lives in its own module exposing ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; ``COMMANDS`` lists them explicitly. Errors a user can cause (``Amls2Error``)
are printed as one line on stderr with exit code 2, without a traceback, and so are system
errors while writing (a full disk, a file-size limit). Ctrl-C exits 130 and SIGTERM 143, both
after the running write has removed its temporary file.

The entry points (this ``main`` and ``main.py``) keep TensorFlow's C++ start-up lines off a CPU
machine's stderr unless ``-v`` is given or the user set ``TF_CPP_MIN_LOG_LEVEL``
(:func:`quiet_tensorflow`); the library itself never touches the environment.

May import: every layer (the top of the stack; nothing imports it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator

from amls2.errors import Amls2Error

# Subcommand name -> module under amls2.cli. Imported lazily so `amls2 --help` stays fast.
COMMANDS: dict[str, str] = {
    "datasets": "amls2.cli.datasets_cmd",
    "download": "amls2.cli.download_cmd",
    "degrade": "amls2.cli.degrade_cmd",
    "estimate-operator": "amls2.cli.estimate_operator_cmd",
    "prepare": "amls2.cli.prepare_cmd",
    "models": "amls2.cli.models_cmd",
    "train": "amls2.cli.train_cmd",
    "evaluate": "amls2.cli.evaluate_cmd",
    "upscale": "amls2.cli.upscale_cmd",
    "ship": "amls2.cli.ship_cmd",
}


# TensorFlow's C++ start-up lines that TF_CPP_MIN_LOG_LEVEL does not silence: absl writes what is
# logged before its initialisation to stderr regardless (oneDNN and "no CUDA driver" notices), and
# the CUDA probe of a machine without a GPU logs an error ("failed call to cuInit") that reads like
# a failure of the command.
_TF_STARTUP_NOISE = re.compile(
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|[IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] "
    rb"|E\d{4} [\d:.]+ +\d+ cuda_\w+\.cc:\d+\] failed call to cuInit"
    rb"|To enable the following instructions: .* rebuild TensorFlow"
)
_TF_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _forward_stderr(read_fd: int, write_fd: int) -> None:
    """Copy the pipe to the real stderr, dropping TensorFlow's start-up lines (line by line; a
    progress bar's carriage returns count as line ends, so bars still update at once)."""
    with open(read_fd, "rb", buffering=0) as pipe:
        for chunk in iter(lambda: pipe.read(1 << 16), b""):
            kept = [ln for ln in chunk.splitlines(keepends=True) if not _TF_STARTUP_NOISE.match(ln)]
            with contextlib.suppress(OSError):  # a closed stderr: keep draining the pipe
                _write_all(write_fd, b"".join(kept))


@contextlib.contextmanager
def _filtered_stderr() -> Iterator[None]:
    """Route the process's stderr (fd 2: C and Python writers alike) through a filter thread for
    the duration of the block."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_fd, write_fd = os.pipe()
    except (AttributeError, OSError, ValueError):  # no usable stderr: nothing to filter
        yield
        return
    os.dup2(write_fd, 2)
    os.close(write_fd)
    thread = threading.Thread(
        target=_forward_stderr, args=(read_fd, saved), name="amls2-stderr", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe loses its last writer: the thread drains it and ends
        thread.join(timeout=5)
        if not thread.is_alive():
            os.close(saved)


def quiet_tensorflow(verbose: bool) -> contextlib.AbstractContextManager:
    """For the block, TensorFlow's C++ logs show errors only (level 2) and its start-up lines are
    filtered out of stderr; ``verbose`` shows everything (level 0), and a ``TF_CPP_MIN_LOG_LEVEL``
    the user set is left alone. Must run before TensorFlow is imported."""
    if _TF_LOG_LEVEL in os.environ:
        return contextlib.nullcontext()
    os.environ[_TF_LOG_LEVEL] = "0" if verbose else "2"
    return contextlib.nullcontext() if verbose else _filtered_stderr()


def add_max_pixels_argument(parser: argparse.ArgumentParser) -> None:
    """``--max-pixels N``: the pixel budget of every image read (see ``amls2.imaging.images``)."""
    from amls2.imaging.image_headers import DEFAULT_MAX_PIXELS

    parser.add_argument(
        "--max-pixels",
        type=int,
        metavar="N",
        help=f"refuse images of more than N pixels before decoding them (default "
        f"{DEFAULT_MAX_PIXELS}: 64 megapixels; 0: no limit)",
    )


def _pixel_budget(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    limit = getattr(args, "max_pixels", None)
    if limit is None:
        return contextlib.nullcontext()
    from amls2.imaging.image_headers import pixel_budget

    return pixel_budget(limit)


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
    """The ``amls2`` parser: the global options and one subparser per command."""
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


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every ``finally`` and atomic write cleans up."""


def _raise_terminated(signum, frame):
    raise _Terminated


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM unwinds the command as SIGINT does (temporary files removed,
    outputs left complete or absent) instead of ending the process on the spot."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _os_error_line(exc: OSError) -> str:
    """``<file>: <reason>`` of a system error no check foresaw (a full disk, a file-size limit)."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


def main(argv: list[str] | None = None) -> int:
    """Run ``amls2`` with ``argv`` (default: the command line); the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    with quiet_tensorflow(args.verbose):
        try:
            with _sigterm_as_interrupt(), _pixel_budget(args):
                return int(args._run(args) or 0)
        except Amls2Error as exc:
            print(f"amls2 {args.command}: error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"amls2 {args.command}: error: {_os_error_line(exc)}", file=sys.stderr)
            return 2
        except _Terminated:
            print(f"amls2 {args.command}: terminated", file=sys.stderr)
            return 143
        except KeyboardInterrupt:
            print(f"amls2 {args.command}: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
