"""Stem adaptation for 64x64 stamps, one adapter per timm model family (a registry).

timm's ImageNet backbones downsample by 32, so a 64x64 stamp ends as a 2x2 last-stage map: too
coarse to tell an arc at 1-2" (4-8 pixels) from the lens light. ``model.stem_stride`` is the
stem's downsampling factor on the scale of ConvNeXt's patchify stem: 4 is timm's default (total
stride 32), 2 halves the total stride (16: a 4x4 last map), 1 halves it again (8). Each family
reaches that factor with its own layers:

=============  =================================================  =====================
family         what the adapter changes                           stem_stride
=============  =================================================  =====================
convnext       patchify conv -> ``Conv2d(k=s, stride=s)``         1, 2, 4
resnet         ``maxpool`` -> identity (2); also ``conv1`` s=1 (1)  1, 2, 4
efficientnet   ``conv_stem`` stride 2 -> 1 (2)                    2, 4
mobilenetv3    ``conv_stem`` stride 2 -> 1 (2)                    2, 4
=============  =================================================  =====================

The family is the timm module that defines the model (``timm.models.<family>``). Adding one is a
function ``adapter(backbone, stem_stride)`` decorated ``@register_stem("family", strides)``.
A model of any other family is refused unless it already gives a big enough map unadapted
(:func:`train.model.create_backbone` probes every model with a 64x64 input).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from timm.layers import trunc_normal_
from torch import nn

from common.configio import ConfigError, check

Adapter = Callable[[nn.Module, int], None]


@dataclass(frozen=True)
class StemAdapter:
    """One row of :data:`STEM_ADAPTERS`: how a family's stem reaches ``model.stem_stride``."""

    family: str
    strides: tuple[int, ...]
    adapt: Adapter


STEM_ADAPTERS: dict[str, StemAdapter] = {}
"""timm family (defining module's last name) -> adapter."""


def register_stem(family: str, strides: tuple[int, ...]) -> Callable[[Adapter], Adapter]:
    """Decorator registering ``adapter(backbone, stem_stride)`` for timm family ``family``."""

    def deco(fn: Adapter) -> Adapter:
        if family in STEM_ADAPTERS:
            raise ValueError(f"stem adapter {family!r} is already registered")
        STEM_ADAPTERS[family] = StemAdapter(family, tuple(strides), fn)
        return fn

    return deco


def model_family(backbone: nn.Module) -> str:
    """The timm family of a model: the last part of its class's module (``resnet``)."""
    return type(backbone).__module__.rsplit(".", 1)[-1]


def _rescale_feature_info(backbone: nn.Module, factor: float) -> None:
    for info in getattr(backbone, "feature_info", []):
        if isinstance(info, dict) and "reduction" in info:
            info["reduction"] = max(1, int(info["reduction"] * factor))


def adapt_stem(backbone: nn.Module, stem_stride: int) -> bool:
    """Adapt ``backbone`` in place; False when its family has no adapter.

    Raises
    ------
    ConfigError
        ``model.stem_stride`` is not one the family supports.
    """
    entry = STEM_ADAPTERS.get(model_family(backbone))
    if entry is None:
        return False
    check(
        stem_stride in entry.strides,
        "model.stem_stride",
        f"{entry.family} models support stem_stride {', '.join(map(str, entry.strides))} "
        f"(got {stem_stride})",
    )
    entry.adapt(backbone, stem_stride)
    return True


def supported_families() -> str:
    """Comma-separated registered families (for error messages)."""
    return ", ".join(sorted(STEM_ADAPTERS))


@register_stem("convnext", (1, 2, 4))
def adapt_convnext_stem(backbone: nn.Module, stride: int) -> None:
    """Replace a ConvNeXt patchify stem conv by ``Conv2d(k=stride, s=stride)`` in place.

    The new conv is initialised like timm initialises ConvNeXt convs (truncated normal, std
    0.02, zero bias) and ``feature_info`` reductions are updated.

    Raises
    ------
    ConfigError
        If the stem is not a patchify conv (e.g. the ``*_ols`` overlapping stems).
    """
    old = backbone.stem[0]
    patchify = (
        isinstance(old, nn.Conv2d) and old.kernel_size == old.stride and old.padding == (0, 0)
    )
    check(
        patchify,
        "model.arch",
        "stem adaptation needs a patchify stem (kernel == stride); "
        f"this model's first stem layer is {old}",
    )
    if old.stride == (stride, stride):
        return
    new = nn.Conv2d(
        old.in_channels,
        old.out_channels,
        kernel_size=stride,
        stride=stride,
        bias=old.bias is not None,
    )
    trunc_normal_(new.weight, std=0.02)
    if new.bias is not None:
        nn.init.zeros_(new.bias)
    backbone.stem[0] = new
    _rescale_feature_info(backbone, stride / old.stride[0])


def _first_conv(module: nn.Module) -> nn.Conv2d:
    if isinstance(module, nn.Conv2d):
        return module
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            return sub
    raise ConfigError("model.arch", f"no convolution found in the stem {module}")


@register_stem("resnet", (1, 2, 4))
def adapt_resnet_stem(backbone: nn.Module, stride: int) -> None:
    """ResNet: stem stride 4 = conv1 (stride 2) + max-pool (stride 2); drop the pool for 2,
    and make conv1 stride 1 as well for 1."""
    if stride == 4:
        return
    if not isinstance(backbone.maxpool, nn.Identity):
        backbone.maxpool = nn.Identity()
    if stride == 1:
        _first_conv(backbone.conv1).stride = (1, 1)
    _rescale_feature_info(backbone, stride / 4)


def _conv_stem_to_stride1(backbone: nn.Module, stride: int) -> None:
    """EfficientNet / MobileNetV3: the stride-2 ``conv_stem`` is the stem (factor 2 of the
    ConvNeXt-scale 4; the first stride-2 block makes up the rest); stride 1 there halves it."""
    if stride == 4:
        return
    backbone.conv_stem.stride = (1, 1)
    _rescale_feature_info(backbone, 0.5)


register_stem("efficientnet", (2, 4))(_conv_stem_to_stride1)
register_stem("mobilenetv3", (2, 4))(_conv_stem_to_stride1)
