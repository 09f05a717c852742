"""The training defaults of every registered model: what ``amls2 train --model NAME`` uses when no
recipe is given. One place, next to the registry; options and ``--hparams`` override them.

Measured by ``python benchmarks/defaults.py`` (600 steps at x2 on T91, Set5 PSNR against
bicubic; the table is in the README). Why these values:

* Every model learns the residual over bicubic interpolation, with a last layer that starts at
  zero (``image_skip="bicubic"`` for LR-input models, ``residual=True`` for models that eat the
  bicubic upscale): the untrained model is exactly bicubic, so training can only start there.
  Without it, FSRCNN ended 600 steps at 27.3 dB on Set5, 6.3 dB below bicubic.
* PReLU for the SRCNN family: with ReLU and residual training at this learning rate, every
  feature of FD-SRCNN died within 500 steps (the README's model notes).
* Adam at 5e-4 with a cosine decay to 1e-5 and the L1 loss: what every shipped recipe uses.
  The old default (a constant 1e-4) was too slow for a short run.
* Checkpoints are chosen on the last 10 training images, held out of training, never on a
  reported test set (Set5, Set14).
"""

from __future__ import annotations

import copy
from typing import Any

from amls2.errors import ModelError

COMMON: dict[str, Any] = {
    "data": {
        "train_sets": ["T91"],
        "val_sets": [],
        "holdout": 10,
        # 72 px divides by 2, 3 and 4: one default for every scale.
        "patch_size": 72,
        "batch_size": 16,
    },
    "optim": {
        "learning_rate": 5e-4,
        "schedule": "cosine",
        "min_learning_rate": 1e-5,
        "loss": "l1",
    },
    "precision": "auto",
}

_SKIP = {"image_skip": "bicubic"}
_SKIP_PRELU = {"image_skip": "bicubic", "activation": "prelu"}

# Per model: the hyperparameters it trains with by default (the builder's defaults otherwise).
HPARAMS: dict[str, dict[str, Any]] = {
    # Solved in closed form from the training pairs (no steps): amls2.training.closed_form.
    "linear": {},
    "srcnn": {"residual": True, "activation": "prelu"},
    "pre_srcnn": dict(_SKIP),
    "post_srcnn": dict(_SKIP_PRELU),
    "iud_srcnn": dict(_SKIP_PRELU),
    "fd_srcnn": dict(_SKIP_PRELU),
    "fsrcnn": dict(_SKIP),
    "espcn": dict(_SKIP),
    "edsr": dict(_SKIP),
    # No batch norm, as in EDSR (BN's moving statistics lag the weights in a short run).
    "resnet_sr": {"image_skip": "bicubic", "batch_norm": False},
    "rfdn": dict(_SKIP),
    "esrcnn": {"residual": True},
    "dsrcnn": {"residual": True},
}


# Per model: optimiser settings that differ from COMMON's.
OPTIM: dict[str, dict[str, Any]] = {
    # 16 blocks of 64 channels with no residual scaling: at 5e-4 the first steps overshot (loss
    # 0.033, above bicubic's) and every feature died; the tail stayed at zero, so the model sat
    # at the bicubic PSNR (-0.02 dB on Set5 after 600 steps, with or without batch norm).
    # SRResNet's paper trains at 1e-4.
    "resnet_sr": {"learning_rate": 1e-4},
}


def training_defaults(model: str) -> dict[str, Any]:
    """The ``TrainConfig`` dict (partial) that model ``model`` trains with by default."""
    if model not in HPARAMS:
        raise ModelError(f"--model {model!r}: unknown; valid: {list(HPARAMS)}")
    defaults = copy.deepcopy(COMMON)
    defaults["model"] = model
    defaults["hparams"] = dict(HPARAMS[model])
    defaults["optim"].update(OPTIM.get(model, {}))
    return defaults
