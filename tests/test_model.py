"""Model, optimiser, loss, early-stopping and checkpoint building blocks (no training data)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch

from common.configio import ConfigError, from_mapping
from shards.schema import SAFE_MODEL_METADATA
from train.checkpoint import capture_rng, restore_rng
from train.config import TrainConfig, resolve_config
from train.early_stopping import EarlyStopping, EarlyStoppingConfig
from train.losses import LossConfig, build_loss
from train.model import ModelConfig, build_model, last_feature_map
from train.optim import OptimConfig, build_optimizer, build_scheduler

TINY = {"arch": "convnext_atto", "depths": [1, 1, 1, 1], "dims": [16, 32, 64, 128]}


def tiny_model(**kw: object) -> torch.nn.Module:
    return build_model(from_mapping(ModelConfig, {**TINY, **kw}, "model"))


def test_adapted_stem_gives_at_least_4x4_where_timm_default_gives_2x2() -> None:
    default = timm.create_model("convnext_atto", pretrained=False, num_classes=0)
    assert last_feature_map(default) == (2, 2)
    model = build_model(ModelConfig(arch="convnext_atto", stem_stride=2))
    assert last_feature_map(model.backbone) == (4, 4)
    conv = model.backbone.stem[0]
    assert conv.kernel_size == (2, 2) and conv.stride == (2, 2)
    assert last_feature_map(tiny_model(stem_stride=1).backbone) == (8, 8)


def test_stems_that_leave_a_2x2_map_are_refused() -> None:
    with pytest.raises(ConfigError, match="2x2 last-stage feature map") as err:
        build_model(ModelConfig(arch="convnext_atto", stem_stride=4))
    assert err.value.key == "model.arch"
    with pytest.raises(ConfigError, match="regnety_002.*2x2"):  # a family without a stem adapter
        build_model(ModelConfig(arch="regnety_002"))


def test_final_norm_is_kept_and_applied() -> None:
    model = tiny_model().eval()
    norm = model.backbone.head.norm
    assert isinstance(norm, timm.layers.LayerNorm2d)
    calls = []
    norm.register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        feats = model.features(x)
        logits = model(x)
    assert len(calls) == 2
    fmap = model.backbone.forward_features(x).detach()
    pooled = fmap.mean(dim=(2, 3))
    expected = torch.nn.functional.layer_norm(
        pooled, (pooled.shape[1],), norm.weight, norm.bias, norm.eps
    )
    torch.testing.assert_close(feats, expected)
    assert not torch.allclose(feats, pooled)  # the Gen-2 Identity head would have returned this
    assert logits.shape == (3,) and logits.dtype == torch.float32


@pytest.mark.parametrize(
    "field",
    ["arc_snr", "theta_e_arcsec", "magnification", "label", "role", "source_mag", "injection_seed"],
)
def test_label_leaking_metadata_is_refused_by_name(field: str) -> None:
    with pytest.raises(ConfigError, match=f"'{field}' leaks the label") as err:
        resolve_config(overrides={"model": {"meta_fields": ["psfsize_r", field]}})
    assert err.value.key == "model.meta_fields[1]"


def test_unknown_metadata_field_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown metadata field 'ebv'"):
        from_mapping(ModelConfig, {"meta_fields": ["ebv"]}, "model")


def test_metadata_fusion_changes_the_head_input_and_uses_meta() -> None:
    plain = tiny_model()
    assert plain.head.in_features == plain.num_features == 128
    fused = tiny_model(meta_fields=list(SAFE_MODEL_METADATA), meta_hidden=8).eval()
    assert fused.head.in_features == 128 + 8
    x = torch.randn(2, 3, 64, 64)
    meta = torch.tensor([[1.2, 1.3, 1.1, 400.0, 150.0, 60.0]] * 2)
    with torch.no_grad():
        a = fused(x, meta)
        b = fused(x, meta * 2)
    assert a.shape == (2,) and a.dtype == torch.float32
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="needs meta"):
        fused(x)


def test_metadata_standardisation_is_fixed_and_missing_values_are_neutral() -> None:
    enc = tiny_model(meta_fields=["psfsize_r", "psfdepth_r"]).meta
    meta = torch.zeros(3, 6)
    meta[:, 1] = torch.tensor([1.3, 1.9, math.nan])  # psfsize_r
    meta[:, 4] = torch.tensor([10**2.2, 10**3.2, 0.0])  # psfdepth_r; 0 is missing
    out = enc.standardise(meta)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0], [2.0, 2.0], [0.0, 0.0]]))


def test_head_runs_in_float32_outside_bf16_autocast() -> None:
    model = tiny_model(meta_fields=["psfsize_g"])
    model.amp_dtype = torch.bfloat16
    seen: dict[str, tuple[torch.dtype, ...]] = {}

    def record(name: str):
        def hook(module, inputs, output) -> None:
            seen[name] = (inputs[0].dtype, output.dtype)

        return hook

    model.backbone.stem[0].register_forward_hook(record("stage"))  # a conv
    model.head.register_forward_hook(record("head"))
    logits = model(torch.randn(2, 3, 64, 64), torch.ones(2, 6))
    assert seen["stage"][1] == torch.bfloat16
    assert seen["head"] == (torch.float32, torch.float32)
    assert logits.dtype == torch.float32


def test_no_weight_decay_on_norms_biases_and_1d_params() -> None:
    model = tiny_model()
    opt = build_optimizer(model, OptimConfig(weight_decay=0.05))
    wd_of = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert len(wd_of) == len(list(model.parameters()))
    for name, p in model.named_parameters():
        expected = 0.0 if p.ndim <= 1 else 0.05
        assert wd_of[id(p)] == expected, name
    assert wd_of[id(model.backbone.head.norm.weight)] == 0.0


def test_schedule_warms_up_then_follows_a_cosine_per_step() -> None:
    p = torch.nn.Parameter(torch.zeros(2, 2))
    opt = torch.optim.AdamW([p], lr=1.0)
    cfg = OptimConfig(lr=1.0, warmup_epochs=0.5, min_lr_ratio=0.1)
    sched = build_scheduler(opt, cfg, steps_per_epoch=10, epochs=3)  # 5 warmup of 30 steps
    lrs = []
    for _ in range(30):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(lrs[:5], [0.2, 0.4, 0.6, 0.8, 1.0])
    assert lrs[5] == 1.0  # the cosine starts at the peak
    assert all(a > b for a, b in zip(lrs[5:], lrs[6:], strict=False))
    assert lrs[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 24 / 25)))


@pytest.mark.parametrize("kind", ["bce", "focal"])
def test_padding_contributes_nothing_to_loss_or_gradient(kind: str) -> None:
    loss_fn = build_loss(LossConfig(kind=kind, label_smoothing=0.1))
    real = torch.tensor([2.0, -1.0, 0.5])
    labels = torch.tensor([1.0, 0.0, 0.0])
    logits = torch.cat([real, torch.tensor([1e4, -1e4])]).requires_grad_()
    weights = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0])
    loss = loss_fn(logits, torch.cat([labels, torch.tensor([0.0, 1.0])]), weights)
    loss.backward()
    assert loss.item() == pytest.approx(loss_fn(real, labels, torch.ones(3)).item(), rel=1e-6)
    assert torch.all(logits.grad[3:] == 0) and torch.all(logits.grad[:3] != 0)
    assert loss_fn(real, labels, torch.zeros(3)).item() == 0.0
    with pytest.raises(TypeError, match="float32"):
        loss_fn(real.bfloat16(), labels, torch.ones(3))


def test_early_stopping_counts_patience_and_round_trips() -> None:
    stopper = EarlyStopping(
        EarlyStoppingConfig(monitor="auc", mode="max", patience=2, min_delta=0.01)
    )
    assert stopper.update(0, {"auc": 0.80})
    assert not stopper.update(1, {"auc": 0.805})  # within min_delta
    clone = EarlyStopping(stopper.cfg)
    clone.load_state_dict(stopper.state_dict())
    for s in (stopper, clone):
        assert not s.update(2, {"auc": float("nan")})
        assert s.should_stop and s.best_epoch == 0 and s.best == 0.80
    with pytest.raises(ConfigError, match="set mode: min"):
        from_mapping(EarlyStoppingConfig, {"monitor": "fpr@tpr0.85"}, "early_stopping")


def test_rng_states_survive_a_weights_only_round_trip(tmp_path) -> None:
    import random

    state = capture_rng()
    torch.save(state, tmp_path / "rng.pt")
    first = (random.random(), np.random.rand(), torch.rand(1).item())  # noqa: NPY002
    restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first  # noqa: NPY002


def test_default_config_and_presets_validate() -> None:
    TrainConfig().validate()
    gpu = resolve_config(preset="gpu")
    assert (gpu.model.arch, gpu.data.batch_size, gpu.optim.lr) == ("convnext_tiny", 256, 3e-4)
    assert gpu.early_stopping.enabled and gpu.precision == "bf16"
    cpu = resolve_config(preset="cpu")
    assert cpu.device == "cpu" and cpu.model.stem_stride == 2
