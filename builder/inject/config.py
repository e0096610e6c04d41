"""Configuration of the arc injection: parameter distributions, rendering and acceptance cuts.

Every field has a documented default; :meth:`InjectionConfig.validate` raises
:class:`~common.configio.ConfigError` naming the dotted key of the first bad value. See
``docs/injection.md`` for the physics behind each default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from builder.inject.noise import DEFAULT_GAIN_E_PER_NMGY
from builder.inject.population import PopulationConfig
from builder.inject.source_light import SOURCE_LIGHTS
from builder.inject.visibility import VisibilityConfig
from common.configio import check, check_between, check_range
from shards.schema import BANDS

#: SED templates understood by :func:`builder.photometry.band_fluxes_nmgy`.
KNOWN_SEDS: tuple[str, ...] = ("E", "Im", "Scd")
#: Ways to estimate the per-pixel background noise used by the S/N cut.
NOISE_SIGMA_METHODS: tuple[str, ...] = ("psfdepth", "annulus_mad")
#: Einstein-radius priors: tied to the host (:mod:`builder.inject.population`) or uniform.
LENS_PRIORS: tuple[str, ...] = ("population", "uniform")


def _default_source_sections() -> dict[str, Any]:
    return {name: entry.config_cls() for name, entry in SOURCE_LIGHTS.items()}


@dataclass(frozen=True)
class SourceConfig:
    """The lensed background galaxy (``injection.source``): light model, colours, placement.

    Besides the fields below it has one section per registered source-light model
    (:data:`builder.inject.source_light.SOURCE_LIGHTS`), written ``injection.source.<name>``
    (``injection.source.sersic``, ``injection.source.clumpy``, ...); only the section(s) the
    chosen model reads are used.

    Attributes
    ----------
    model : str
        Registered source-light model. Default ``"clumpy"`` (Sersic body + bluer GalSim knots,
        dust and IGM); ``"sersic"`` is the smooth one-colour model.
    mag_r : tuple[float, float]
        Unlensed r-band AB magnitude range of the whole source. Never tied to the host.
        Default ``(22.0, 25.5)`` (the visibility cut keeps the brighter part).
    seds : tuple[str, ...]
        SED templates (GalSim CWW) drawn with equal probability; they set the g-r and r-z colours
        at the drawn redshift. Default ``("Im", "Scd")``.
    z : tuple[float, float]
        Source redshift range. Default ``(1.0, 3.0)``.
    offset_max_theta_e : float
        Placement rule: the source centre is uniform in area within a disk of radius
        ``offset_max_theta_e * theta_e`` around the lens centre. Default 0.5.
    sections : dict
        Model name -> config of that model.
    """

    model: str = "clumpy"
    mag_r: tuple[float, float] = (22.0, 25.5)
    seds: tuple[str, ...] = ("Im", "Scd")
    z: tuple[float, float] = (1.0, 3.0)
    offset_max_theta_e: float = 0.5
    sections: dict[str, Any] = field(default_factory=_default_source_sections)

    @classmethod
    def config_sections(cls) -> dict[str, type]:
        """Registered source-light models -> their config classes (see ``from_mapping``)."""
        return {name: entry.config_cls for name, entry in SOURCE_LIGHTS.items()}

    def section(self, name: str) -> Any:
        """The config section of model ``name`` (its defaults if it was registered later)."""
        if name not in self.sections:
            return SOURCE_LIGHTS[name].config_cls()
        return self.sections[name]

    def validate(self, prefix: str = "injection.source") -> None:
        """Raise :class:`~common.configio.ConfigError` naming the first invalid key.

        The model sections are validated where they are built (``from_mapping``); the selected
        model's section may add ``validate_selected(prefix)`` for what it needs only when used
        (e.g. the stamps model's ``dir``).
        """
        models = sorted(SOURCE_LIGHTS)
        check(
            self.model in SOURCE_LIGHTS,
            f"{prefix}.model",
            f"unknown source-light model {self.model!r} (registered: {', '.join(models)})",
        )
        selected = getattr(self.section(self.model), "validate_selected", None)
        if selected is not None:  # what a model needs only when it is the one used
            selected(f"{prefix}.{self.model}")
        check_range(self.mag_r, f"{prefix}.mag_r", lo=10.0, hi=35.0)
        check_seds(self.seds, f"{prefix}.seds")
        check_range(self.z, f"{prefix}.z", lo=0.01, hi=6.0)
        check(
            0.0 < self.offset_max_theta_e <= 2.0,
            f"{prefix}.offset_max_theta_e",
            f"must be in (0, 2] (got {self.offset_max_theta_e})",
        )


def check_seds(seds: Any, key: str) -> None:
    """Validate a non-empty list of :data:`KNOWN_SEDS` names (errors name ``key[i]``)."""
    check(
        isinstance(seds, list | tuple) and len(seds) > 0,
        key,
        f"expected a non-empty list of SED names, got {seds!r}",
    )
    for i, sed in enumerate(seds):
        check(
            sed in KNOWN_SEDS,
            f"{key}[{i}]",
            f"unknown SED {sed!r} (known: {', '.join(KNOWN_SEDS)})",
        )


@dataclass(frozen=True)
class InjectionConfig:
    """Distributions and cuts of the lensed-arc injection.

    Ranges are ``(low, high)`` pairs drawn uniformly unless stated otherwise. The source never
    depends on the host; the lens mass shape follows the host light, and with the default
    ``lens_prior: population`` the Einstein radius follows the host's magnitude (and catalogue
    redshift / velocity dispersion when present).

    Attributes
    ----------
    lens_prior : str
        ``"population"`` (default): theta_E from the host-tied lens population
        (:mod:`builder.inject.population`, section ``population``), the source redshift from
        its ``n(z)`` behind the lens; ``"uniform"``: theta_E uniform in ``theta_e_arcsec`` and the
        source redshift uniform in ``source.z``.
    theta_e_arcsec : tuple[float, float]
        Einstein radius range, arcsec (lenstronomy's product-average convention): the uniform
        range, or with the population prior the accepted range (draws outside are rejected as
        ``theta_e_range``). Default ``(0.5, 3.0)``.
    population : PopulationConfig
        Lens-population priors (cosmology, Faber-Jackson, redshifts).
    visibility : VisibilityConfig
        LensPop-style visibility acceptance and the fraction of flagged hard positives.
    lens_q_sigma : float
        Gaussian scatter of the mass axis ratio about the host light's axis ratio. The draw is a
        normal truncated to ``lens_q_range``. Default 0.1.
    lens_q_range : tuple[float, float]
        Allowed mass axis ratio (minor/major). Default ``(0.4, 1.0)``.
    lens_phi_sigma_deg : float
        Gaussian scatter of the mass position angle about the host light's, degrees. Default 10.
    shear_sigma : float
        Standard deviation of each external-shear component ``gamma1, gamma2``. Default 0.05.
    source : SourceConfig
        The lensed galaxy: light model and its section, magnitude, SEDs, redshift, placement.
    supersample : int
        Sub-pixels per pixel side for the ray tracing. Default 4.
    adaptive_supersample : bool
        Supersample only the pixels where the arc has flux (the rest take the mean of their
        ray-traced corners); matches full supersampling to ~1e-4 relative L2. Default True.
    psf_kernel_radius_fwhm : float
        Half-width of the Moffat kernel in units of the FWHM (capped at 31 pixels). Default 4.
    gain_e_per_nmgy : tuple[float, float, float]
        Effective coadd gain (photo-electrons per nanomaggy) in g, r, z for the arc shot noise.
        Default: 3 passes x (87, 67, 100) s with the DECam nominal zero points, about 1.1e4 (see
        :data:`builder.inject.noise.DEFAULT_GAIN_E_PER_NMGY`).
    min_magnification : float
        Minimum total magnification (lensed flux in the stamp / unlensed flux, before the PSF).
        Default 3 (Collett 2015).
    require_multiple_images : bool
        Require the source centre to have at least two images. Default True.
    min_arc_snr : float
        Minimum optimal (matched-filter) S/N of the PSF-convolved arc, summed in quadrature over
        g, r, z, against the background noise (the former acceptance; the visibility cut is
        the default one now). Default 0 (off).
    noise_sigma_method : str
        Per-pixel background noise for the S/N: ``"psfdepth"`` (from the catalog depth and the
        Moffat noise-equivalent area, default) or ``"annulus_mad"`` (robust MAD of the stamp's
        outer annulus).
    max_draws : int
        Draws tried before the injection is declared failed. Default 40 (the visibility cut
        rejects a few draws per host).
    """

    lens_prior: str = "population"
    theta_e_arcsec: tuple[float, float] = (0.5, 3.0)
    population: PopulationConfig = field(default_factory=PopulationConfig)
    visibility: VisibilityConfig = field(default_factory=VisibilityConfig)
    lens_q_sigma: float = 0.1
    lens_q_range: tuple[float, float] = (0.4, 1.0)
    lens_phi_sigma_deg: float = 10.0
    shear_sigma: float = 0.05
    source: SourceConfig = field(default_factory=SourceConfig)
    supersample: int = 4
    adaptive_supersample: bool = True
    psf_kernel_radius_fwhm: float = 4.0
    gain_e_per_nmgy: tuple[float, float, float] = DEFAULT_GAIN_E_PER_NMGY
    min_magnification: float = 3.0
    require_multiple_images: bool = True
    min_arc_snr: float = 0.0
    noise_sigma_method: str = "psfdepth"
    max_draws: int = 40

    def validate(self, prefix: str = "injection") -> None:
        """Raise :class:`~common.configio.ConfigError` naming the first invalid key.

        Parameters
        ----------
        prefix : str
            Dotted path of this config inside the whole configuration.
        """
        p = f"{prefix}." if prefix else ""
        check(
            self.lens_prior in LENS_PRIORS,
            f"{p}lens_prior",
            f"must be one of {', '.join(LENS_PRIORS)} (got {self.lens_prior!r})",
        )
        check_range(self.theta_e_arcsec, f"{p}theta_e_arcsec", lo=0.05, hi=10.0)
        check(
            self.lens_q_sigma >= 0.0, f"{p}lens_q_sigma", f"must be >= 0 (got {self.lens_q_sigma})"
        )
        check_range(self.lens_q_range, f"{p}lens_q_range", lo=0.1, hi=1.0)
        check(
            self.lens_phi_sigma_deg >= 0.0,
            f"{p}lens_phi_sigma_deg",
            f"must be >= 0 (got {self.lens_phi_sigma_deg})",
        )
        check_between(self.shear_sigma, f"{p}shear_sigma", 0.0, 0.3)
        check(
            isinstance(self.supersample, int) and 1 <= self.supersample <= 16,
            f"{p}supersample",
            f"must be an integer in [1, 16] (got {self.supersample!r})",
        )
        check_between(self.psf_kernel_radius_fwhm, f"{p}psf_kernel_radius_fwhm", 1.0, 10.0)
        gains = self.gain_e_per_nmgy
        check(
            isinstance(gains, list | tuple) and len(gains) == len(BANDS),
            f"{p}gain_e_per_nmgy",
            f"expected {len(BANDS)} values ({', '.join(BANDS)}), got {gains!r}",
        )
        for band, gain in zip(BANDS, gains, strict=True):
            check(
                1.0 <= float(gain) <= 1.0e7,
                f"{p}gain_e_per_nmgy",
                f"{band}-band gain must be in [1, 1e7] e-/nmgy (got {gain})",
            )
        check(
            self.min_magnification >= 0.0,
            f"{p}min_magnification",
            f"must be >= 0 (got {self.min_magnification})",
        )
        check(self.min_arc_snr >= 0.0, f"{p}min_arc_snr", f"must be >= 0 (got {self.min_arc_snr})")
        check(
            self.noise_sigma_method in NOISE_SIGMA_METHODS,
            f"{p}noise_sigma_method",
            f"must be one of {', '.join(NOISE_SIGMA_METHODS)} (got {self.noise_sigma_method!r})",
        )
        check(
            isinstance(self.max_draws, int) and 1 <= self.max_draws <= 10_000,
            f"{p}max_draws",
            f"must be an integer in [1, 10000] (got {self.max_draws!r})",
        )
