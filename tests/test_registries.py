"""Each kind of plug-in is one new definition plus one table entry, shown by toy ones defined here.

(The toy parent format is in ``tests/test_build.py``, the toy member in ``tests/test_shards.py``,
the toy metric in ``tests/test_metrics.py``.) Here: a source-light model (a circular Gaussian),
an executor (a thread pool) and a stem adapter, each registered by the test.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest

from builder.inject import InjectionConfig, inject_arc
from builder.inject.source_light import SOURCE_LIGHTS, SourceLight, register_source_light
from builder.inject.source_light.base import draw_photometry, uniform
from builder.parents.config import SynthConfig
from builder.parents.synthetic import make_parent
from common.configio import check_range, from_mapping


@dataclass(frozen=True)
class ToyGaussConfig:
    """``injection.source.toy_gauss``.

    Attributes
    ----------
    sigma_arcsec : tuple[float, float]
        Gaussian sigma, arcsec, uniform.
    """

    sigma_arcsec: tuple[float, float] = (0.15, 0.3)

    def validate(self, prefix: str = "injection.source.toy_gauss") -> None:
        check_range(self.sigma_arcsec, f"{prefix}.sigma_arcsec", lo=0.01, hi=2.0)


@dataclass(frozen=True)
class ToyGauss(SourceLight):
    """A circular Gaussian source of one colour."""

    x_arcsec: float
    y_arcsec: float
    sigma_arcsec: float
    flux_nmgy: tuple[float, ...]

    @classmethod
    def draw(cls, rng, cfg, x_arcsec, y_arcsec, redshift=None) -> ToyGauss:
        sigma = uniform(rng, cfg.section("toy_gauss").sigma_arcsec)
        phot = draw_photometry(rng, cfg, redshift)
        return cls(x_arcsec, y_arcsec, sigma, tuple(float(f) for f in phot.band_fluxes_nmgy()))

    def unit_surface_brightness(self, bx: np.ndarray, by: np.ndarray) -> np.ndarray:
        r2 = (bx - self.x_arcsec) ** 2 + (by - self.y_arcsec) ** 2
        s2 = self.sigma_arcsec**2
        return np.exp(-0.5 * r2 / s2) / (2.0 * math.pi * s2)

    def peak_unit_sb_arcsec2(self) -> float:
        return 1.0 / (2.0 * math.pi * self.sigma_arcsec**2)

    def core_radius_arcsec(self) -> float:
        return 3.0 * self.sigma_arcsec

    def half_light_radius_arcsec(self) -> float:
        return self.sigma_arcsec * math.sqrt(2.0 * math.log(2.0))

    def metadata(self) -> dict[str, Any]:
        return {"source_sigma_arcsec": self.sigma_arcsec}


@pytest.fixture
def toy_gauss():
    register_source_light("toy_gauss", ToyGaussConfig)(ToyGauss)
    yield "toy_gauss"
    SOURCE_LIGHTS.pop("toy_gauss")


def test_a_registered_source_light_model_is_configured_and_injected(toy_gauss) -> None:
    cfg = from_mapping(
        InjectionConfig,
        {
            "source": {
                "model": toy_gauss,
                "mag_r": [21.0, 21.5],
                "toy_gauss": {"sigma_arcsec": [0.2, 0.2]},
            }
        },
        "injection",
    )
    parent = make_parent(0, 3, SynthConfig())
    res = inject_arc(parent.stamp_nmgy, parent.catalog, np.random.default_rng(5), cfg)
    assert res.accepted, res.rejections
    assert res.params["source_sigma_arcsec"] == pytest.approx(0.2)
    # flux conservation through the renderer: arc flux = magnification x unlensed flux
    r = 1
    unlensed = 10 ** (-0.4 * (res.params["source_mag_r"] - 22.5))
    arc_flux = float(res.arc_nmgy[r].sum(dtype=np.float64))
    assert arc_flux == pytest.approx(res.params["magnification"] * unlensed, rel=0.05)
    with pytest.raises(Exception, match="injection.source.toy_gauss.sigma_arcsec"):
        from_mapping(
            InjectionConfig, {"source": {"toy_gauss": {"sigma_arcsec": [3.0, 4.0]}}}, "injection"
        )


def test_a_registered_executor_gives_the_same_bytes(tmp_path) -> None:
    from builder.build import BuildOptions, make_shards
    from builder.config import load_build_config
    from builder.executors import EXECUTORS, register_executor
    from tests.runs import dataset_digests

    register_executor("toy_threads")(lambda workers, scheduler=None: ThreadPoolExecutor(workers))
    try:
        cfg = load_build_config(
            None, {"input": {"synthetic": {"n_parents": 60, "row_group_size": 20}}, "seed": 3}
        )
        make_shards(cfg, tmp_path / "a", BuildOptions(progress=False, executor="serial"))
        make_shards(
            cfg, tmp_path / "b", BuildOptions(progress=False, executor="toy_threads", workers=2)
        )
    finally:
        EXECUTORS.pop("toy_threads")
    assert dataset_digests(tmp_path / "a") == dataset_digests(tmp_path / "b") != {}


def test_a_registered_stem_adapter_is_used() -> None:
    from torch import nn

    from train.model import ModelConfig, create_backbone, last_feature_map
    from train.stems import STEM_ADAPTERS, register_stem

    def regnet_stem(backbone: nn.Module, stride: int) -> None:  # conv stride 2 -> 1
        backbone.stem.conv.stride = (1, 1)

    register_stem("regnet", (2,))(regnet_stem)
    try:
        backbone = create_backbone(ModelConfig(arch="regnety_002", stem_stride=2))
        assert last_feature_map(backbone) == (4, 4)
    finally:
        STEM_ADAPTERS.pop("regnet")


def test_source_light_table_lists_the_built_in_models() -> None:
    assert {"sersic", "clumpy"} <= set(SOURCE_LIGHTS)
    assert replace(InjectionConfig()).source.model in SOURCE_LIGHTS
