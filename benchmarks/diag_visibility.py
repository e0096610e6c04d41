"""Diagnostics of the default positives (issue 10): visibility, theta_E, arc colours, sky noise.

Injects arcs with the default :class:`~builder.inject.InjectionConfig` into synthetic parents
(the default synthetic sky) and reports

* the fraction of hosts given a positive, and of positives that are LensPop-visible;
* the theta_E distribution of the positives and of the prior (the host-tied population before
  any cut);
* the arc g-r 5-95% span (lensed arc fluxes, before noise);
* the image counts;
* the lag-1 autocorrelation of the synthetic sky noise, measured on source-free stamps, against
  its expectation.

Usage::

    python benchmarks/diag_visibility.py --n 300 --json out.json --png theta_e.png
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from builder.inject import InjectionConfig, inject_arc  # noqa: E402
from builder.inject.population import draw_lens  # noqa: E402
from builder.inject.skynoise import measured_lag1_autocorrelation  # noqa: E402
from builder.parents.config import SynthConfig  # noqa: E402
from builder.parents.synthetic import draw_params, iter_synthetic_parents, render_stamp  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="synthetic parents")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--png", default=None, help="theta_E histogram figure")
    parser.add_argument(
        "--moffat-beta-range",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="input.synthetic.moffat_beta_range (default: the config's; 3.5 3.5 = no wings spread)",
    )
    args = parser.parse_args(argv)

    cfg = InjectionConfig()
    synth = SynthConfig()
    if args.moffat_beta_range is not None:
        synth = dataclasses.replace(synth, moffat_beta_range=tuple(args.moffat_beta_range))
    params, rejections, failed = [], collections.Counter(), 0
    for i, rec in enumerate(iter_synthetic_parents(args.n, args.seed, synth)):
        # the arc gets its host's PSF, as in a build (builder/tasks.py)
        res = inject_arc(
            rec.stamp_nmgy, rec.catalog, np.random.default_rng(i), cfg, moffat_beta=rec.psf_beta
        )
        rejections.update(res.rejections)
        if res.accepted:
            params.append(res.params)
        else:
            failed += 1
    theta = np.array([p["theta_e_arcsec"] for p in params])
    arc_gr = np.array(
        [-2.5 * np.log10(p["arc_flux_nmgy_g"] / p["arc_flux_nmgy_r"]) for p in params]
    )
    src_gr = np.array([p["source_mag_g"] - p["source_mag_r"] for p in params])
    rng = np.random.default_rng(0)
    prior = np.array(
        [
            draw_lens(p["host_mag_r"], rng, cfg.population).theta_e_arcsec
            for p in params
            for _ in range(5)
        ]
    )
    lag1 = [
        measured_lag1_autocorrelation(
            render_stamp(
                draw_params(args.seed, i, synth),
                synth,
                noise_rng=np.random.default_rng(i),
                kinds=(),
            )[b]
        )
        for i in range(50)
        for b in range(3)
    ]
    out = {
        "n_parents": args.n,
        "n_positives": len(params),
        "hosts_failed": failed,
        "rejected_draws": dict(rejections),
        "visible_fraction": float(np.mean([p["visible"] for p in params])),
        "hard_fraction": float(np.mean([p["hard_positive"] for p in params])),
        "theta_e_median_arcsec": float(np.median(theta)),
        "theta_e_5_50_95_arcsec": np.percentile(theta, [5, 50, 95]).round(3).tolist(),
        "theta_e_ge_2_fraction": float(np.mean(theta >= 2.0)),
        "prior_theta_e_5_50_95_arcsec": np.percentile(prior, [5, 50, 95]).round(3).tolist(),
        "arc_g_minus_r_span_5_95_mag": float(np.subtract(*np.percentile(arc_gr, [95, 5]))),
        "source_g_minus_r_span_5_95_mag": float(np.subtract(*np.percentile(src_gr, [95, 5]))),
        "n_images": dict(sorted(collections.Counter(p["n_images"] for p in params).items())),
        "vis_snr_5_50_95": np.percentile([p["vis_snr"] for p in params], [5, 50, 95])
        .round(1)
        .tolist(),
        "psf_beta_r_5_50_95": np.percentile([p["psf_beta_r"] for p in params], [5, 50, 95])
        .round(2)
        .tolist(),
        "sky_noise_lag1_autocorr_mean": float(np.mean(lag1)),
        "sky_noise_lag1_autocorr_5_95": np.percentile(lag1, [5, 95]).round(3).tolist(),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        bins = np.arange(0.0, 3.01, 0.1)
        ax.hist(prior, bins=bins, density=True, histtype="step", label="population prior")
        ax.hist(theta, bins=bins, density=True, alpha=0.6, label="accepted (visible) positives")
        ax.set_xlabel(r"$\theta_E$ [arcsec]")
        ax.set_ylabel("density")
        ax.legend(frameon=False)
        fig.tight_layout()
        fig.savefig(args.png, dpi=120)
    return out


if __name__ == "__main__":
    main()
