"""``amls2 train``: train a model from a recipe, a JSON config and/or command-line options.

Precedence: the model's training defaults (when neither ``--recipe`` nor ``--config`` is given;
``amls2.models.training_defaults``) < ``--recipe`` < ``--config FILE.json`` < explicit options.
Running the same command again resumes from the run folder's last checkpoint. A model with
nothing to train (``--model linear``) is solved in closed form from the training pairs instead
(``amls2.training.closed_form``); a linear image skip (``image_skip="linear"``) is solved the same
way before the first step.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from typing import Any

from amls2.cli import add_max_pixels_argument
from amls2.config import SCALES, TRACKS
from amls2.errors import ConfigError
from amls2.training import train
from amls2.training.cluster import cluster_tf_config
from amls2.training.config import (
    LOSSES,
    PRECISIONS,
    SCHEDULES,
    TrainConfig,
    config_from_dict,
    default_config_dict,
    load_recipe_dict,
    merge_dicts,
    recipe_names,
)

NAME = "train"
HELP = "train a super-resolution model (resumes an interrupted run with the same options)"

log = logging.getLogger(__name__)

# option dest -> (section, key) in the TrainConfig dict; section None = top level.
_OPTION_KEYS: dict[str, tuple[str | None, str]] = {
    "model": (None, "model"),
    "variant": (None, "variant"),
    "scale": (None, "scale"),
    "track": (None, "track"),
    "epochs": (None, "epochs"),
    "steps_per_epoch": (None, "steps_per_epoch"),
    "steps": (None, "steps"),
    "seed": (None, "seed"),
    "out_dir": (None, "out_dir"),
    "init_from": (None, "init_from"),
    "early_stopping": (None, "early_stopping_patience"),
    "steps_per_execution": (None, "steps_per_execution"),
    "checkpoint_every": (None, "checkpoint_every"),
    "jit": (None, "jit_compile"),
    "deterministic": (None, "deterministic"),
    "precision": (None, "precision"),
    "train_set": ("data", "train_sets"),
    "val_set": ("data", "val_sets"),
    "data_dir": ("data", "data_dir"),
    "train_split": ("data", "train_split"),
    "val_split": ("data", "val_split"),
    "patch_size": ("data", "patch_size"),
    "batch_size": ("data", "batch_size"),
    "variants": ("data", "variants"),
    "train_limit": ("data", "train_limit"),
    "val_limit": ("data", "val_limit"),
    "holdout": ("data", "holdout"),
    "lr": ("optim", "learning_rate"),
    "schedule": ("optim", "schedule"),
    "decay_epochs": ("optim", "decay_epochs"),
    "loss": ("optim", "loss"),
    "vgg_weights": ("optim", "vgg_weights"),
    "perceptual_weight": ("optim", "perceptual_weight"),
}


def _sets(text: str) -> list[str]:
    """``T91+BSD200`` -> ["T91", "BSD200"]; an empty string -> [] (no validation)."""
    return [part for part in text.split("+") if part]


def _hparams(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not a JSON object ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("not a JSON object")
    return value


# Options left out stay absent (argparse.SUPPRESS), so recipes and configs are not overridden.
S = argparse.SUPPRESS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``amls2 train``, in groups: job, several machines, data, optimisation,
    speed and reproducibility."""
    _add_job_arguments(parser)
    _add_cluster_arguments(parser)
    _add_data_arguments(parser)
    _add_optimisation_arguments(parser)


def _add_job_arguments(parser: argparse.ArgumentParser) -> None:
    job = parser.add_argument_group("job")
    job.add_argument("--recipe", help=f"a shipped recipe: {', '.join(recipe_names())}")
    job.add_argument("--config", help="a JSON config file (as written to <out-dir>/config.json)")
    job.add_argument("--model", default=S, help="model name (amls2 models)")
    job.add_argument("--variant", default=S, help="model variant preset (e.g. tiny, small)")
    job.add_argument("--hparams", type=_hparams, default=S, help="JSON, e.g. '{\"filters\": 32}'")
    job.add_argument("--track", choices=TRACKS, default=S)
    job.add_argument("--scale", type=int, choices=SCALES, default=S)
    job.add_argument("--out-dir", default=S, help="run folder (default runs/<model>_x<s>_<track>)")
    job.add_argument("--init-from", default=S, help="a .keras model to copy matching layers from")
    job.add_argument("--teacher", default=S, help="distil from this saved .keras teacher")
    job.add_argument("--distill-alpha", type=float, default=S, help="teacher weight in the target")
    job.add_argument("--seed", type=int, default=S)
    job.add_argument("--force", action="store_true", help="start over in an existing run folder")
    job.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_max_pixels_argument(job)


def _add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    cluster = parser.add_argument_group(
        "several machines",
        "run the same command on every machine, only --task-index differs; worker 0 writes the "
        "outputs (the --out-dir must be on a shared file system). Or set TF_CONFIG instead.",
    )
    cluster.add_argument(
        "--cluster", metavar="HOST:PORT,HOST:PORT", help="every worker's address, in order"
    )
    cluster.add_argument(
        "--task-index", type=int, metavar="I", help="this machine's position in --cluster (0..)"
    )


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--train-set", type=_sets, default=S, help="e.g. T91+BSD200 or a folder")
    data.add_argument(
        "--val-set", type=_sets, default=S, help="chooses the checkpoint: never a reported set"
    )
    data.add_argument("--data-dir", default=S, help="datasets root (default $AMLS2_DATA)")
    data.add_argument("--train-split", default=S)
    data.add_argument("--val-split", default=S)
    data.add_argument("--patch-size", type=int, default=S, help="HR patch side in pixels")
    data.add_argument("--batch-size", type=int, default=S, help="GLOBAL batch (all replicas)")
    data.add_argument("--variants", type=int, default=S, help="LR versions per image (unknown)")
    data.add_argument("--train-limit", type=int, default=S, help="images per training set")
    data.add_argument("--val-limit", type=int, default=S, help="images per validation set")
    data.add_argument(
        "--holdout",
        type=int,
        default=S,
        help="validate on the last N images of the last training set, held out of training",
    )


def _add_optimisation_arguments(parser: argparse.ArgumentParser) -> None:
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, default=S)
    optim.add_argument("--steps-per-epoch", type=int, default=S)
    optim.add_argument("--steps", type=int, default=S, help="total steps (overrides --epochs)")
    optim.add_argument("--lr", type=float, default=S, help="learning rate (not scaled by replicas)")
    optim.add_argument("--schedule", choices=SCHEDULES, default=S)
    optim.add_argument("--decay-epochs", type=int, default=S, help="step schedule period")
    optim.add_argument("--loss", choices=LOSSES, default=S)
    optim.add_argument("--vgg-weights", default=S, help="VGG19 notop .h5 for --loss perceptual")
    optim.add_argument("--perceptual-weight", type=float, default=S)
    optim.add_argument("--early-stopping", type=int, default=S, help="patience in epochs")

    speed = parser.add_argument_group("speed and reproducibility")
    speed.add_argument("--steps-per-execution", type=int, default=S)
    speed.add_argument("--checkpoint-every", type=int, default=S, help="steps between checkpoints")
    speed.add_argument("--jit", action=argparse.BooleanOptionalAction, default=S, help="XLA")
    speed.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=S,
        help="seeded, deterministic ops (process-wide)",
    )
    speed.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=S,
        help="auto (default): mixed_bfloat16 on a CPU with native bfloat16 (AVX512_BF16/AMX), "
        "mixed_float16 on a GPU, else float32; weights and saved models stay float32",
    )


def config_dict_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig dict for ``args``: the model's defaults, or the recipe, then the --config
    file, then explicit options."""
    data: dict[str, Any] = {}
    if not args.recipe and not args.config:
        data = default_config_dict(getattr(args, "model", TrainConfig.model))
    if args.recipe:
        data = load_recipe_dict(args.recipe)
    if args.config:
        if not str(args.config).endswith(".json"):
            raise ConfigError(f"--config {args.config}: expected a .json file")
        data = merge_dicts(data, load_recipe_dict(args.config))
    overrides: dict[str, Any] = {}
    for dest, (section, key) in _OPTION_KEYS.items():
        if hasattr(args, dest):
            target = overrides.setdefault(section, {}) if section else overrides
            target[key] = getattr(args, dest)
    if hasattr(args, "hparams"):
        # Key by key over the defaults' or recipe's: --hparams '{"n_blocks": 8}' keeps the skip.
        overrides["hparams"] = {**data.get("hparams", {}), **args.hparams}
    if hasattr(args, "teacher") or hasattr(args, "distill_alpha"):
        distill = dict(data.get("distill") or {})
        if hasattr(args, "teacher"):
            distill["teacher"] = args.teacher
        if hasattr(args, "distill_alpha"):
            distill["alpha"] = args.distill_alpha
        if "teacher" not in distill:
            raise ConfigError("--distill-alpha: needs --teacher")
        overrides["distill"] = distill
    return merge_dicts(data, overrides)


def run(args: argparse.Namespace) -> int:
    # Before any TensorFlow work: MultiWorkerMirroredStrategy reads TF_CONFIG when it is made.
    tf_config = cluster_tf_config(
        getattr(args, "cluster", None),
        getattr(args, "task_index", None),
        os.environ.get("TF_CONFIG"),
    )
    if tf_config is not None:
        os.environ["TF_CONFIG"] = tf_config
        log.info("--cluster: TF_CONFIG=%s (worker 0 writes the outputs)", tf_config)

    config = config_from_dict(config_dict_from_args(args))
    result = train(config, force=args.force, progress=not args.no_progress)
    psnr = "n/a" if result.best_psnr is None else f"{result.best_psnr:.3f} dB"
    if result.closed_form:
        print(
            f"{config.run_name}: solved in closed form in {result.wall_time_s:.1f} s, val PSNR "
            f"(y) {psnr}; model: {result.model_path}; run folder: {result.out_dir}"
        )
        return 0
    print(
        f"{config.run_name}: {result.steps} steps, {result.epochs_run} epochs"
        f"{' (stopped early)' if result.stopped_early else ''}, best val PSNR (y) {psnr} "
        f"at epoch {result.best_epoch}; model: {result.model_path}; run folder: {result.out_dir}"
    )
    return 0
