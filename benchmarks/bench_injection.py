"""Benchmark of the arc injection against lenstronomy's ImageModel, on one core.

Times, per 3-band stamp (median of ``--repeats`` runs of ``--n`` stamps each):

* ``inject_arc``: the full fast path on a synthetic host (host shape, PSF kernels, all draws
  and redraws until acceptance, Poisson noise);
* ``render core (adaptive)`` / ``render core (full)``: ray tracing + unit-flux Sersic + binning
  (adaptive or everywhere-supersampled) + per-band scaling + per-band Moffat convolution, for
  pre-drawn parameters;
* ``lenstronomy x3 (+PSF)`` / ``lenstronomy x3 (no PSF)``: ``ImageModel.image`` called once per
  band (as a per-band pipeline must), SIE + SHEAR + SERSIC_ELLIPSE, same supersampling, with a
  PIXEL PSF kernel (our Moffat kernel) or without PSF.

Usage::

    python benchmarks/bench_injection.py --n 200 --repeats 5 [--json OUT]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core: set before numpy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
from lenstronomy.Data.pixel_grid import PixelGrid as LenstronomyPixelGrid  # noqa: E402
from lenstronomy.Data.psf import PSF  # noqa: E402
from lenstronomy.ImSim.image_model import ImageModel  # noqa: E402
from lenstronomy.LensModel.lens_model import LensModel  # noqa: E402
from lenstronomy.LightModel.light_model import LightModel  # noqa: E402
from lenstronomy.LightModel.Profiles.sersic import SersicElliptic  # noqa: E402

from builder.inject import InjectionConfig, inject_arc  # noqa: E402
from builder.inject.host_shape import HostShape  # noqa: E402
from builder.inject.psf import band_kernel_ffts, convolve, moffat_kernel, quantize_fwhm  # noqa: E402
from builder.inject.render import PixelGrid, render_lensed, render_lensed_adaptive  # noqa: E402
from builder.inject.sampler import Draw, draw_parameters  # noqa: E402
from builder.inject.source_light.sersic import sersic_b_n  # noqa: E402
from builder.photometry import band_fluxes_nmgy  # noqa: E402
from builder.psfmodel import DEFAULT_MOFFAT_BETA  # noqa: E402
from shards.schema import BANDS, PIXEL_SCALE_ARCSEC, STAMP_SHAPE, STAMP_SIZE_PIX  # noqa: E402

CATALOG = {
    "psfsize_g": 1.5,
    "psfsize_r": 1.35,
    "psfsize_z": 1.25,
    "psfdepth_g": 1500.0,
    "psfdepth_r": 600.0,
    "psfdepth_z": 150.0,
}


def synthetic_host(seed: int = 0) -> np.ndarray:
    """Elliptical exponential galaxy plus sky noise, (3, 64, 64) nmgy."""
    yy, xx = np.mgrid[:STAMP_SIZE_PIX, :STAMP_SIZE_PIX] - (STAMP_SIZE_PIX - 1) / 2.0
    light = np.exp(-np.hypot(xx, yy / 0.7) / 3.0)
    noise = np.random.default_rng(seed).normal(0.0, 0.006, STAMP_SHAPE)
    return (noise + light * np.array([0.3, 0.8, 1.5])[:, None, None]).astype(np.float32)


def median_per_item(run: Callable[[], None], n: int, repeats: int) -> float:
    """Median over ``repeats`` runs of the time per item (seconds); ``run`` does ``n`` items."""
    run()  # warm caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) / n)
    return float(np.median(times))


def lenstronomy_kwargs(draw: Draw, flux: float) -> tuple[list[dict], list[dict]]:
    """lenstronomy kwargs for a draw: same lens; same Sersic profile and total flux."""
    src = draw.source
    b_lens = SersicElliptic.b_n(src.n_sersic)
    r_sersic = src.re_arcsec * (b_lens / sersic_b_n(src.n_sersic)) ** src.n_sersic
    ell = (1.0 - src.q) / (1.0 + src.q)
    phi = np.radians(src.phi_deg)
    kw = {"R_sersic": r_sersic, "n_sersic": src.n_sersic}
    kw |= {"e1": ell * np.cos(2 * phi), "e2": ell * np.sin(2 * phi)}
    amp = flux / SersicElliptic().total_flux(amp=1.0, **kw)
    source = [{"amp": amp, **kw, "center_x": src.x_arcsec, "center_y": src.y_arcsec}]
    return draw.lens.lenstronomy_kwargs(), source


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="stamps per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median reported)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be >= 5")

    cfg = InjectionConfig()
    host = synthetic_host()
    fwhms = [CATALOG[f"psfsize_{b}"] for b in BANDS]
    rng = np.random.default_rng(0)
    shape = HostShape(q=0.7, phi_deg=0.0, measured=True)
    draws = [draw_parameters(rng, cfg, shape) for _ in range(args.n)]
    fluxes = [band_fluxes_nmgy(d.sed, d.redshift, d.mag_r) for d in draws]
    grid = PixelGrid(STAMP_SIZE_PIX, PIXEL_SCALE_ARCSEC, cfg.supersample)
    spectra = band_kernel_ffts(fwhms, DEFAULT_MOFFAT_BETA, cfg.psf_kernel_radius_fwhm)

    def run_inject() -> None:
        r = np.random.default_rng(1)
        for _ in range(args.n):
            inject_arc(host, CATALOG, r, cfg)

    def run_core(render: Callable) -> Callable[[], None]:
        def run() -> None:
            for d, f in zip(draws, fluxes, strict=True):
                unit = render(d.lens, d.source, grid)
                convolve(unit[None] * f.astype(np.float32)[:, None, None], spectra)

        return run

    n_pix = STAMP_SIZE_PIX
    c = (n_pix - 1) / 2.0
    lgrid = LenstronomyPixelGrid(
        nx=n_pix,
        ny=n_pix,
        transform_pix2angle=np.eye(2) * PIXEL_SCALE_ARCSEC,
        ra_at_xy_0=-c * PIXEL_SCALE_ARCSEC,
        dec_at_xy_0=-c * PIXEL_SCALE_ARCSEC,
    )

    def lenstronomy_models(with_psf: bool) -> list[ImageModel]:
        models = []
        for fwhm in fwhms:
            if with_psf:
                kernel = moffat_kernel(
                    quantize_fwhm(fwhm), DEFAULT_MOFFAT_BETA, cfg.psf_kernel_radius_fwhm
                )
                psf = PSF(psf_type="PIXEL", kernel_point_source=np.array(kernel))
            else:
                psf = PSF(psf_type="NONE")
            models.append(
                ImageModel(
                    lgrid,
                    psf,
                    lens_model_class=LensModel(["SIE", "SHEAR"]),
                    source_model_class=LightModel(["SERSIC_ELLIPSE"]),
                    kwargs_numerics={"supersampling_factor": cfg.supersample},
                )
            )
        return models

    def run_lenstronomy(with_psf: bool) -> Callable[[], None]:
        models = lenstronomy_models(with_psf)
        kwargs = [
            [lenstronomy_kwargs(d, float(f[b])) for b in range(len(BANDS))]
            for d, f in zip(draws, fluxes, strict=True)
        ]

        def run() -> None:
            for per_band in kwargs:
                for model, (kw_lens, kw_src) in zip(models, per_band, strict=True):
                    model.image(kw_lens, kw_src)

        return run

    n, rep = args.n, args.repeats
    timings = {
        "inject_arc": median_per_item(run_inject, n, rep),
        "render_core_adaptive": median_per_item(run_core(render_lensed_adaptive), n, rep),
        "render_core_full": median_per_item(run_core(render_lensed), n, rep),
        "lenstronomy_x3_psf": median_per_item(run_lenstronomy(True), n, rep),
        "lenstronomy_x3_nopsf": median_per_item(run_lenstronomy(False), n, rep),
    }
    ref = timings["lenstronomy_x3_psf"]
    result = {
        "n": n,
        "repeats": rep,
        "supersample": cfg.supersample,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "ms_per_stamp": {k: v * 1e3 for k, v in timings.items()},
        "stamps_per_s_per_core": {k: 1.0 / v for k, v in timings.items()},
        "speedup_vs_lenstronomy_x3_psf": {k: ref / v for k, v in timings.items()},
    }
    print(f"per 3-band stamp, one core, supersample {cfg.supersample}, median of {rep} x {n}:")
    for k, v in timings.items():
        print(
            f"  {k:24s} {v * 1e3:8.3f} ms  {1.0 / v:8.1f} stamps/s  x{ref / v:6.1f} vs lenstronomy+PSF"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()
