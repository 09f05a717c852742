"""The model zoo: one explicit registry ``MODELS`` from a model name to its :class:`ModelSpec`.

Every builder is a pure function ``build(scale, channels=3, **hparams) -> keras.Model`` returning
an uncompiled, fully convolutional model (input shape ``(None, None, channels)``, float32 in
[0,1]) named ``f"{name}_x{scale}"``. ``input_kind`` says what the model eats:

* ``"lr"``: the LR image; the output is ``scale`` times larger.
* ``"bicubic"``: the LR image upscaled by MATLAB-style bicubic (float, no rounding); the output
  has the same size. The inference code does the upscaling.

Use :func:`build_model` (validates the name, scale, variant and hyperparameters and raises
:class:`~amls2.errors.ModelError` listing the valid ones). Importing this package registers the
custom layers, so ``.keras`` files load with ``safe_mode=True``.

May import: the top-level modules and ``amls2.imaging`` (never data, inference or training).
"""

from __future__ import annotations

import dataclasses
import inspect
import weakref
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from amls2.config import INPUT_KINDS, SCALES
from amls2.errors import ModelError
from amls2.models import layers  # noqa: F401  (registers the custom layers)
from amls2.models.edsr import build_edsr, build_resnet_sr
from amls2.models.fd_srcnn import build_fd_srcnn
from amls2.models.fsrcnn import build_espcn, build_fsrcnn
from amls2.models.linear import build_linear
from amls2.models.rfdn import build_rfdn
from amls2.models.srcnn import (
    build_dsrcnn,
    build_esrcnn,
    build_iud_srcnn,
    build_post_srcnn,
    build_pre_srcnn,
    build_srcnn,
)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about a model.

    ``default_hparams`` are the builder's keyword defaults (read-only); ``variants`` are named
    hyperparameter presets applied on top of them (read-only), e.g. srcnn "955", edsr "small".
    Every model has a "tiny" variant for smoke tests and demos on a CPU.
    """

    name: str
    build: Callable[..., Any]
    paper: str
    summary: str
    input_kind: str
    scales: tuple[int, ...]
    default_hparams: Mapping[str, Any]
    variants: Mapping[str, Mapping[str, Any]]

    @property
    def hparam_names(self) -> tuple[str, ...]:
        """The hyperparameters the builder takes."""
        return tuple(self.default_hparams)


def _keyword_defaults(build: Callable[..., Any]) -> dict[str, Any]:
    """The keyword-only parameters of a builder and their defaults: its hyperparameters."""
    return {
        p.name: p.default
        for p in inspect.signature(build).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _spec(
    name: str,
    build: Callable[..., Any],
    *,
    paper: str,
    summary: str,
    input_kind: str,
    variants: dict[str, dict[str, Any]],
    scales: tuple[int, ...] = SCALES,
) -> ModelSpec:
    defaults = _keyword_defaults(build)
    for variant, values in variants.items():
        unknown = sorted(set(values) - set(defaults))
        if unknown:  # a programming error in this file, caught at import
            raise AssertionError(f"{name} variant {variant!r}: unknown hparams {unknown}")
    return ModelSpec(
        name=name,
        build=build,
        paper=paper,
        summary=summary,
        input_kind=input_kind,
        scales=tuple(scales),
        default_hparams=MappingProxyType(defaults),
        variants=MappingProxyType({k: MappingProxyType(dict(v)) for k, v in variants.items()}),
    )


MODELS: dict[str, ModelSpec] = {
    "linear": _spec(
        "linear",
        build_linear,
        paper="closed-form least-squares upsampling filters (the linear baseline)",
        summary="one 9x9 filter per output phase, the same for every colour; solved, not trained",
        input_kind="lr",
        variants={"tiny": {"kernel_size": 5}},
    ),
    "srcnn": _spec(
        "srcnn",
        build_srcnn,
        paper="Dong et al. 2014 (SRCNN)",
        summary="3-layer CNN on the bicubic upscale; 9-1-5/9-5-5, deeper residual variants",
        input_kind="bicubic",
        variants={
            "915": {"kernels": (9, 1, 5)},
            "935": {"kernels": (9, 3, 5)},
            "955": {"kernels": (9, 5, 5)},
            "deep8": {"depth": 8, "filters": (64, 64), "kernels": (9, 3, 5), "residual": True},
            "deep16": {"depth": 16, "filters": (64, 64), "kernels": (9, 3, 5), "residual": True},
            "deep32": {"depth": 32, "filters": (64, 64), "kernels": (9, 3, 5), "residual": True},
            "tiny": {"filters": (8, 4)},
        },
    ),
    "pre_srcnn": _spec(
        "pre_srcnn",
        build_pre_srcnn,
        paper="Dong et al. 2014 + learned upsampling (seed)",
        summary="9x9 stride-s transposed conv, then SRCNN 9-1-5 at HR size",
        input_kind="lr",
        variants={"tiny": {"filters": (8, 4)}},
    ),
    "post_srcnn": _spec(
        "post_srcnn",
        build_post_srcnn,
        paper="SRCNN post-upsampling (seed)",
        summary="conv stack at LR size, 5x5 stride-s transposed conv, 3x3 sigmoid",
        input_kind="lr",
        variants={"tiny": {"filters": (4, 4, 8, 4), "up_filters": 4}},
    ),
    "iud_srcnn": _spec(
        "iud_srcnn",
        build_iud_srcnn,
        paper="Iterative up-and-down SRCNN (seed)",
        summary="post-SRCNN, reconstruct, max-pool down, post-SRCNN again",
        input_kind="lr",
        variants={"tiny": {"filters": (4, 4, 8, 4), "up_filters": 4}},
    ),
    "fd_srcnn": _spec(
        "fd_srcnn",
        build_fd_srcnn,
        paper="FD-SRCNN (seed): up-and-down block series",
        summary="3 up/down block series per module, global shortcut; x4 = two x2 modules",
        input_kind="lr",
        variants={
            "seed": {},
            "fast": {"width": 32, "mid_width": 64, "n_series": 1},
            "subpixel": {"upsampler": "subpixel"},
            "tiny": {"features": 4, "width": 4, "mid_width": 4, "n_series": 2},
        },
    ),
    "fsrcnn": _spec(
        "fsrcnn",
        build_fsrcnn,
        paper="Dong et al. 2016 (FSRCNN)",
        summary="d=56, s=12, m=4, PReLU, 9x9 stride-s deconvolution",
        input_kind="lr",
        variants={"fsrcnn_s": {"d": 32, "s": 5, "m": 1}, "tiny": {"d": 8, "s": 4, "m": 1}},
    ),
    "espcn": _spec(
        "espcn",
        build_espcn,
        paper="Shi et al. 2016 (ESPCN)",
        summary="5-3-3 convs (64/32), tanh, sub-pixel convolution",
        input_kind="lr",
        variants={
            "relu": {"activation": "relu"},
            "tiny": {"filters": (8, 4)},
            # The shipped fast model: in OpenCV FSRCNN's time class on a CPU (ReLUs fused into
            # their convolutions, the bicubic skip at LR size; benchmarks/per_image.py).
            "fast": {
                "filters": (16, 16),
                "kernels": (3, 3, 3),
                "mid_layers": 4,
                "activation": "relu",
                "image_skip": "bicubic",
            },
        },
    ),
    "edsr": _spec(
        "edsr",
        build_edsr,
        paper="Lim et al. 2017 (EDSR); Zhang et al. 2018 (RCAN attention)",
        summary="residual blocks without BN, mean shift, sub-pixel; attention=True: RCAN-style CA",
        input_kind="lr",
        variants={
            "baseline": {},
            "small": {"n_blocks": 8, "filters": 32},
            "rcan_small": {"n_blocks": 8, "filters": 32, "attention": True, "reduction": 8},
            "tiny": {"n_blocks": 1, "filters": 8, "attention": True, "reduction": 4},
        },
    ),
    "resnet_sr": _spec(
        "resnet_sr",
        build_resnet_sr,
        paper="Ledig et al. 2017 (SRResNet)",
        summary="BN residual blocks, PReLU, sub-pixel; 'distilled' = small student",
        input_kind="lr",
        variants={
            "distilled": {"n_blocks": 4, "filters": 32},
            "tiny": {"n_blocks": 1, "filters": 8},
        },
    ),
    "rfdn": _spec(
        "rfdn",
        build_rfdn,
        paper="Liu et al. 2020 (RFDN, AIM 2020 efficient SR)",
        summary="4 feature-distillation blocks of 48 channels with ESA; light, CPU-friendly",
        input_kind="lr",
        variants={"small": {"filters": 32, "n_blocks": 3}, "tiny": {"filters": 8, "n_blocks": 2}},
    ),
    "esrcnn": _spec(
        "esrcnn",
        build_esrcnn,
        paper="Expanded SRCNN (Keras seed)",
        summary="SRCNN with parallel 1x1/3x3/5x5 middle convs averaged",
        input_kind="bicubic",
        variants={"tiny": {"filters": (8, 4)}},
    ),
    "dsrcnn": _spec(
        "dsrcnn",
        build_dsrcnn,
        paper="Denoising auto-encoder SRCNN (Keras seed)",
        summary="conv encoder, transposed-conv decoder, averaged bridge connections",
        input_kind="bicubic",
        variants={"tiny": {"filters": 8}},
    ),
}

# Models built by build_model -> how they were built (for the weights sidecar). Weak, so models
# are not kept alive by the registry.
_BUILD_INFO: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_names() -> list[str]:
    """The registered model names, in registry order."""
    return list(MODELS)


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``, or ModelError listing the valid names."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ModelError(f"model {name!r}: unknown; valid: {model_names()}") from None


def resolve_hparams(name: str, variant: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Defaults, then the ``variant`` preset, then ``overrides``; ModelError on unknown keys."""
    spec = get_spec(name)
    hparams = dict(spec.default_hparams)
    if variant is not None:
        if variant not in spec.variants:
            raise ModelError(
                f"model {name!r}: unknown variant {variant!r}; valid: {sorted(spec.variants)}"
            )
        hparams.update(spec.variants[variant])
    unknown = sorted(set(overrides) - set(spec.default_hparams))
    if unknown:
        raise ModelError(
            f"model {name!r}: unknown hparam(s) {unknown}; valid: {list(spec.hparam_names)}"
        )
    hparams.update(overrides)
    return hparams


def check_model_scale(name: str, scale: int) -> int:
    """``scale`` as an int if ``name`` supports it, else ModelError listing the valid scales."""
    spec = get_spec(name)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in spec.scales:
        raise ModelError(f"model {name!r}: scale {scale!r} unsupported; valid: {list(spec.scales)}")
    return int(scale)


def build_model(
    name: str, scale: int, channels: int = 3, *, variant: str | None = None, **hparams: Any
):
    """Build registered model ``name`` for ``scale`` (uncompiled ``keras.Model``).

    ``variant`` picks a named preset (see ``get_spec(name).variants``); ``hparams`` override it.
    Raises ModelError for an unknown name, scale, variant or hparam, or an invalid hparam value.
    """
    spec = get_spec(name)
    scale = check_model_scale(name, scale)
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ModelError(f"model {name!r}: channels {channels!r} must be a positive integer")
    resolved = resolve_hparams(name, variant, **hparams)
    try:
        model = spec.build(scale, channels, **resolved)
    except (ValueError, TypeError) as exc:
        raise ModelError(f"model {name!r}: invalid hparams {hparams}: {exc}") from None
    _BUILD_INFO[model] = {
        "name": name,
        "scale": scale,
        "channels": channels,
        "variant": variant,
        "input_kind": spec.input_kind,
        "hparams": resolved,
    }
    return model


def build_info(model) -> dict[str, Any] | None:
    """How ``model`` was built by :func:`build_model` (name, scale, channels, variant,
    input_kind, hparams), or None for a model built otherwise or loaded from a file."""
    info = _BUILD_INFO.get(model)
    return None if info is None else dict(info)


__all__ = [
    "INPUT_KINDS",
    "MODELS",
    "ModelSpec",
    "build_info",
    "build_model",
    "check_model_scale",
    "get_spec",
    "model_names",
    "resolve_hparams",
]
