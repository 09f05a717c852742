"""The one switch of the CPU speed machinery: whether a model call runs the model's fast form
(:func:`amls2.inference.fast.reparam.fast_inference_model`) or the graph as saved.

``AMLS2_FAST_INFERENCE`` sets it for a process, the ``fast=`` argument of a call
(``run_batch``, ``super_resolve``, ``Upscaler``) for that call:

* ``auto`` (the default; ``fast=None``): the fast form on CPU only; with a GPU visible the model
  runs as saved (the fast forms were chosen by oneDNN's CPU kernels and can be slower elsewhere);
* ``1`` (``fast=True``): the fast form everywhere, e.g. to measure it on a GPU machine;
* ``0`` (``fast=False``): the saved graph everywhere.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Mapping

from amls2 import machine
from amls2.errors import ConfigError
from amls2.inference.fast import onednn

log = logging.getLogger(__name__)

ENV = "AMLS2_FAST_INFERENCE"
SETTINGS: tuple[str, ...] = ("auto", "1", "0")
_FROM_ARGUMENT = {None: "auto", True: "1", False: "0"}


def setting(fast: bool | str | None = None, env: Mapping[str, str] = os.environ) -> str:
    """``"auto"``, ``"1"`` or ``"0"``: the ``fast`` argument when given, else ``AMLS2_FAST_INFERENCE``
    (default ``auto``). ConfigError naming the variable for any other value."""
    if fast is not None:
        value, source = (_FROM_ARGUMENT.get(fast, str(fast)), f"fast={fast!r}")
    else:
        value, source = env.get(ENV, "auto").strip().lower() or "auto", ENV
    if value not in SETTINGS:
        raise ConfigError(f"{source}: {value!r} is not a fast-inference setting; valid: {SETTINGS}")
    return value


def decide(value: str, gpus: Iterable[str]) -> tuple[bool, str]:
    """(run the fast form?, why) for the setting ``value`` on a machine with these ``gpus``."""
    gpus = list(gpus)
    if value == "0":
        return False, "fast inference off: the model runs as saved"
    if value == "1":
        return True, "fast inference on (forced): the CPU-tuned form"
    if gpus:
        return False, f"fast inference auto: {len(gpus)} GPU(s) visible, the model runs as saved"
    return True, "fast inference auto: CPU only, the CPU-tuned form"


def use_fast_form(fast: bool | str | None = None) -> bool:
    """Whether a model call runs the fast form here, for the argument ``fast`` (see the module
    doc); the choice and its reason are logged (``amls2 upscale -v`` shows them)."""
    value = setting(fast)
    chosen, reason = decide(value, machine.gpu_names() if value == "auto" else ())
    _report(f"{reason}; CPU convolutions: {onednn.conv_path()}" if chosen else reason)
    return chosen


@functools.lru_cache(maxsize=8)
def _report(reason: str) -> None:
    """Log each choice once per process (every model call asks)."""
    log.debug("%s (%s=0/1/auto, or fast= on the call)", reason, ENV)


def on_cpu_only() -> bool:
    """No GPU visible: where CPU-only limits (oneDNN's convolution budget) apply."""
    return not machine.gpu_names()
