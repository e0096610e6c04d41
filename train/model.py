"""The lens classifier: a timm backbone with a 64x64-adapted stem, its final norm, and a logit head.

Three Gen-2 defects are made impossible here:

* **Stem.** timm's ConvNeXt patchify stem (4x4 conv, stride 4) followed by three stride-2 stages
  leaves a 2x2 map in the last stage for a 64x64 stamp. Note that timm's own ``patch_size=2``
  does *not* help: timm then adds a stride-2 downsample to stage 0 and the total stride stays 32.
  :func:`train.stems.adapt_convnext_stem` replaces the patchify conv by one with ``kernel = stride =
  stem_stride`` (default 2, giving a 4x4 last-stage map); ResNet, EfficientNet and MobileNetV3
  have adapters of their own (:mod:`train.stems`, one registry entry per family). Every model is
  then probed with a 64x64 input and refused (:class:`~common.configio.ConfigError`) if its last
  feature map is smaller than ``min_feature_map``; a family without an adapter is accepted only if
  it already passes the probe.
* **Final norm.** The backbone is created with ``num_classes=0``, which keeps timm's
  ``NormMlpClassifierHead`` (global pool -> LayerNorm) and only drops its ``fc``; pooled features
  come from ``forward_head(..., pre_logits=True)``, so the final norm is always applied.
* **Metadata.** Only the observing conditions in :data:`shards.schema.SAFE_MODEL_METADATA` can be
  fused, they are standardised with fixed documented constants (:data:`META_STANDARDISATION`),
  and any field that would leak the label is refused by name (:func:`check_meta_fields`).

The backbone may run under bfloat16 autocast; the metadata MLP and the head always run in float32
outside autocast, so the logits are float32 (see :meth:`LensClassifier.forward`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import timm
import torch
from torch import nn

from common.configio import ConfigError, check
from shards.schema import SAFE_MODEL_METADATA, STAMP_SHAPE, is_label_leaking
from train.stems import adapt_stem, model_family, supported_families

log = logging.getLogger(__name__)

#: Fixed standardisation ``(transform, centre, scale)`` per metadata field: the value fed to the
#: MLP is ``(transform(x) - centre) / scale``. PSF sizes are FWHM in arcsec (DR10 typical 1.0-2.0,
#: median ~1.3). PSF depths are inverse variances in 1/nanomaggy^2 and enter as log10: a 5-sigma
#: point-source depth of 24.0 / 23.5 / 23.0 mag (typical g / r / z) is log10 depth ~2.6 / 2.2 /
#: 1.8. A missing or non-physical value (NaN, inf, depth <= 0) becomes 0 after standardisation,
#: i.e. the typical value; it never becomes a raw 0.
META_STANDARDISATION: dict[str, tuple[str, float, float]] = {
    "psfsize_g": ("identity", 1.3, 0.3),
    "psfsize_r": ("identity", 1.3, 0.3),
    "psfsize_z": ("identity", 1.3, 0.3),
    "psfdepth_g": ("log10", 2.2, 0.5),
    "psfdepth_r": ("log10", 2.2, 0.5),
    "psfdepth_z": ("log10", 2.2, 0.5),
}
assert set(META_STANDARDISATION) == set(SAFE_MODEL_METADATA)

_CONVNEXT_MODULES = ("convnext",)


def is_convnext(arch: str) -> bool:
    """Whether timm model ``arch`` (with or without a pretrained tag) is a ConvNeXt (v1 or v2)."""
    return arch.split(".")[0] in timm.list_models(module=_CONVNEXT_MODULES)


def check_meta_fields(fields: Sequence[str], key: str = "model.meta_fields") -> None:
    """Refuse metadata fields that leak the label or that the loader does not provide.

    Parameters
    ----------
    fields : sequence of str
        Requested metadata inputs.
    key : str
        Dotted config key used in error messages.

    Raises
    ------
    ConfigError
        Naming the first offending field: a label-leaking field (injection parameters, arc S/N,
        magnification, role, label, ... see :func:`shards.schema.is_label_leaking`), a field that
        is not one of :data:`shards.schema.SAFE_MODEL_METADATA`, or a duplicate.
    """
    allowed = ", ".join(SAFE_MODEL_METADATA)
    for i, name in enumerate(fields):
        where = f"{key}[{i}]"
        check(
            not is_label_leaking(name),
            where,
            f"metadata field '{name}' leaks the label (it describes the injection or the class) "
            f"and can never be a model input; allowed: {allowed}",
        )
        check(
            name in SAFE_MODEL_METADATA,
            where,
            f"unknown metadata field '{name}'; allowed (observing conditions only): {allowed}",
        )
    dupes = sorted({f for f in fields if list(fields).count(f) > 1})
    check(not dupes, key, f"duplicate metadata field(s): {', '.join(dupes)}")


@dataclass
class ModelConfig:
    """Backbone and head.

    Attributes
    ----------
    arch : str
        timm model name (``pretrained=False`` always; nothing is downloaded).
    stem_stride : int
        Downsampling of the stem on the scale of ConvNeXt's patchify stem (1, 2 or 4; timm's
        default is 4, which gives a 2x2 last-stage map on 64x64 stamps; 2 gives 4x4). Adapted per
        timm family by :mod:`train.stems`.
    min_feature_map : int
        Smallest accepted side of the last-stage feature map for a 64x64 input.
    depths, dims : list of int, optional
        ConvNeXt only: per-stage block counts / widths overriding the named variant (for tiny
        test models).
    drop_rate : float
        Dropout before the head.
    drop_path_rate : float
        Stochastic depth in the backbone.
    meta_fields : list of str
        Metadata fused into the head (subset of :data:`shards.schema.SAFE_MODEL_METADATA`);
        empty for image-only.
    meta_hidden : int
        Width of the metadata MLP.
    """

    arch: str = "convnext_tiny"
    stem_stride: int = 2
    min_feature_map: int = 4
    depths: list[int] | None = None
    dims: list[int] | None = None
    drop_rate: float = 0.1
    drop_path_rate: float = 0.0
    meta_fields: list[str] = field(default_factory=list)
    meta_hidden: int = 32

    def validate(self, prefix: str = "model") -> None:
        """Check values; raise :class:`ConfigError` naming the key."""
        p = f"{prefix}." if prefix else ""
        check(timm.is_model(self.arch), f"{p}arch", f"unknown timm model '{self.arch}'")
        check(self.stem_stride in (1, 2, 4), f"{p}stem_stride", "must be 1, 2 or 4")
        check(self.min_feature_map >= 1, f"{p}min_feature_map", "must be >= 1")
        for name in ("depths", "dims"):
            value = getattr(self, name)
            if value is None:
                continue
            check(is_convnext(self.arch), f"{p}{name}", "only supported for ConvNeXt models")
            check(
                len(value) == 4 and all(v >= 1 for v in value),
                f"{p}{name}",
                f"expected 4 positive integers, got {value}",
            )
        check(0.0 <= self.drop_rate < 1.0, f"{p}drop_rate", "must be in [0, 1)")
        check(0.0 <= self.drop_path_rate < 1.0, f"{p}drop_path_rate", "must be in [0, 1)")
        check(self.meta_hidden >= 1, f"{p}meta_hidden", "must be >= 1")
        check_meta_fields(self.meta_fields, f"{p}meta_fields")


def last_feature_map(backbone: nn.Module, shape: Sequence[int] = STAMP_SHAPE) -> tuple[int, int]:
    """Spatial size of ``backbone.forward_features`` for one input of ``shape`` (C, H, W)."""
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            out = backbone.forward_features(torch.zeros(1, *shape))
    finally:
        backbone.train(was_training)
    return int(out.shape[-2]), int(out.shape[-1])


def create_backbone(cfg: ModelConfig) -> nn.Module:
    """timm backbone without classifier but with its final norm, stem adapted to 64x64 stamps.

    Raises
    ------
    ConfigError
        If the last-stage map for a 64x64 stamp is smaller than ``cfg.min_feature_map``.
    """
    kwargs: dict = {"drop_path_rate": cfg.drop_path_rate}
    if cfg.depths is not None:
        kwargs["depths"] = tuple(cfg.depths)
    if cfg.dims is not None:
        kwargs["dims"] = tuple(cfg.dims)
    try:
        backbone = timm.create_model(
            cfg.arch, pretrained=False, in_chans=STAMP_SHAPE[0], num_classes=0, **kwargs
        )
    except TypeError as exc:
        raise ConfigError("model.arch", f"cannot create '{cfg.arch}': {exc}") from None
    adapted = adapt_stem(backbone, cfg.stem_stride)
    if not adapted:
        log.warning(
            "%s (timm family %s) has no stem adapter: its stem is left as timm built it "
            "(model.stem_stride ignored; adapters: %s)",
            cfg.arch,
            model_family(backbone),
            supported_families(),
        )
    h, w = last_feature_map(backbone)
    check(
        min(h, w) >= cfg.min_feature_map,
        "model.arch",
        f"'{cfg.arch}' gives a {h}x{w} last-stage feature map for a 64x64 stamp, below "
        f"model.min_feature_map={cfg.min_feature_map}; "
        + (
            "use a smaller model.stem_stride"
            if adapted
            else f"stem adaptation exists for the timm families {supported_families()}: pick one"
        ),
    )
    return backbone


class MetadataEncoder(nn.Module):
    """Standardise selected observing-condition columns and embed them with a small MLP.

    Parameters
    ----------
    fields : sequence of str
        Fields to use, a subset of :data:`shards.schema.SAFE_MODEL_METADATA` (the column order of
        ``batch["meta"]``).
    hidden : int
        Output width.
    """

    def __init__(self, fields: Sequence[str], hidden: int):
        super().__init__()
        check_meta_fields(fields)
        self.fields = tuple(fields)
        params = [META_STANDARDISATION[f] for f in self.fields]
        self.register_buffer(
            "columns",
            torch.tensor([SAFE_MODEL_METADATA.index(f) for f in self.fields]),
            persistent=False,
        )
        self.register_buffer(
            "log10_mask", torch.tensor([t == "log10" for t, _, _ in params]), persistent=False
        )
        self.register_buffer(
            "centre", torch.tensor([c for _, c, _ in params], dtype=torch.float32), persistent=False
        )
        self.register_buffer(
            "scale", torch.tensor([s for _, _, s in params], dtype=torch.float32), persistent=False
        )
        self.mlp = nn.Sequential(
            nn.Linear(len(self.fields), hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU()
        )
        self.out_features = hidden

    def standardise(self, meta: torch.Tensor) -> torch.Tensor:
        """Raw ``(B, 6)`` metadata -> standardised ``(B, len(fields))`` float32, missing -> 0."""
        x = meta.float().index_select(1, self.columns)
        positive = torch.where(x > 0, x, torch.full_like(x, math.nan))
        x = torch.where(self.log10_mask, torch.log10(positive), x)
        x = (x - self.centre) / self.scale
        return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)

    def forward(self, meta: torch.Tensor) -> torch.Tensor:
        """Embed raw metadata ``(B, 6)`` -> ``(B, hidden)``."""
        return self.mlp(self.standardise(meta))


class LensClassifier(nn.Module):
    """Backbone -> pooled, normalised features (+ metadata embedding) -> one float32 logit.

    Parameters
    ----------
    cfg : ModelConfig
        Model configuration.

    Attributes
    ----------
    amp_dtype : torch.dtype or None
        When set (``torch.bfloat16`` on CUDA), the backbone runs under autocast in this dtype; the
        metadata MLP and the head never do.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.backbone = create_backbone(cfg)
        self.meta = MetadataEncoder(cfg.meta_fields, cfg.meta_hidden) if cfg.meta_fields else None
        # the pooled width (timm models with a head conv, e.g. MobileNetV3, widen after pooling)
        self.num_features = int(
            getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        )
        in_features = self.num_features + (self.meta.out_features if self.meta else 0)
        self.dropout = nn.Dropout(cfg.drop_rate)
        self.head = nn.Linear(in_features, 1)
        self.amp_dtype: torch.dtype | None = None
        self.channels_last = False

    def place(
        self, device: torch.device, precision: str = "fp32", channels_last: bool = False
    ) -> LensClassifier:
        """Move to ``device`` and choose the execution mode; returns ``self``.

        bfloat16 autocast (``precision="bf16"``) and the channels-last memory format are used on
        CUDA only; on CPU the model always runs float32, contiguous.
        """
        cuda = device.type == "cuda"
        self.to(device)
        self.channels_last = channels_last and cuda
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        self.amp_dtype = torch.bfloat16 if precision == "bf16" and cuda else None
        return self

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features after the final norm, float32 ``(B, num_features)``."""
        dtype = self.amp_dtype or torch.float32
        with torch.autocast(image.device.type, dtype=dtype, enabled=self.amp_dtype is not None):
            fmap = self.backbone.forward_features(image)
            pooled = self.backbone.forward_head(fmap, pre_logits=True)
        return pooled.float()

    def forward(self, image: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        """Logits, float32 ``(B,)``.

        Parameters
        ----------
        image : Tensor
            ``(B, 3, 64, 64)`` normalised stamps.
        meta : Tensor, optional
            ``(B, 6)`` raw metadata in :data:`shards.schema.SAFE_MODEL_METADATA` order; required
            when the model fuses metadata, ignored otherwise.
        """
        feats = self.features(image)
        with torch.autocast(image.device.type, enabled=False):
            if self.meta is not None:
                if meta is None:
                    raise ValueError("this model fuses metadata: forward() needs meta")
                feats = torch.cat([feats, self.meta(meta.to(feats.device))], dim=1)
            return self.head(self.dropout(feats)).squeeze(1)


def build_model(cfg: ModelConfig) -> LensClassifier:
    """Build the classifier described by ``cfg`` (validated again here, at the edge)."""
    cfg.validate("model")
    return LensClassifier(cfg)
