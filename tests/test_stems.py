"""Stem adaptation per timm family: every supported family reaches a 4x4 map on 64x64 stamps."""

from __future__ import annotations

import pytest
import torch

from common.configio import ConfigError
from train.model import ModelConfig, build_model, create_backbone, last_feature_map
from train.stems import STEM_ADAPTERS, model_family


@pytest.mark.parametrize(
    ("arch", "family"),
    [
        ("convnext_atto", "convnext"),
        ("resnet18", "resnet"),
        ("efficientnet_b0", "efficientnet"),
        ("mobilenetv3_small_100", "mobilenetv3"),
    ],
)
def test_each_family_gets_a_4x4_map_at_stem_stride_2(arch: str, family: str) -> None:
    backbone = create_backbone(ModelConfig(arch=arch, stem_stride=2))
    assert model_family(backbone) == family and family in STEM_ADAPTERS
    assert last_feature_map(backbone) == (4, 4)
    model = build_model(ModelConfig(arch=arch, stem_stride=2, drop_rate=0.0))
    logits = model(torch.zeros(2, 3, 64, 64))
    assert logits.shape == (2,) and logits.dtype == torch.float32


def test_resnet_stem_stride_1_gives_8x8_and_4_is_unchanged_and_refused() -> None:
    assert last_feature_map(create_backbone(ModelConfig(arch="resnet18", stem_stride=1))) == (8, 8)
    # stride 4 is timm's own stem: a 2x2 map, refused by the probe with a hint
    with pytest.raises(ConfigError, match="2x2 last-stage feature map.*smaller model.stem_stride"):
        create_backbone(ModelConfig(arch="resnet18", stem_stride=4))


def test_unsupported_stride_and_family_are_refused_with_the_supported_list() -> None:
    with pytest.raises(ConfigError, match="model.stem_stride.*efficientnet models support"):
        create_backbone(ModelConfig(arch="efficientnet_b0", stem_stride=1))
    with pytest.raises(ConfigError, match="stem adaptation exists for the timm families.*resnet"):
        create_backbone(ModelConfig(arch="regnety_002"))


def test_cli_arch_of_another_family_works_with_the_cpu_preset() -> None:
    from train.cli import build_parser, cli_overrides
    from train.config import resolve_config

    args = build_parser().parse_args(["run", "--shards", "d", "--out", "o", "--arch", "resnet18"])
    cfg = resolve_config(preset="cpu", overrides=cli_overrides(args))
    assert cfg.model.arch == "resnet18" and cfg.model.depths is None and cfg.model.dims is None
    model = build_model(cfg.model)
    assert last_feature_map(model.backbone) == (4, 4)
    # ConvNeXt keeps the preset's layout
    args = build_parser().parse_args(
        ["run", "--shards", "d", "--out", "o", "--arch", "convnext_atto"]
    )
    assert resolve_config(preset="cpu", overrides=cli_overrides(args)).model.depths == [1, 1, 2, 1]
