"""Configuration dataclasses of the parent-sample sources (Parquet, FITS, synthetic sky).

Each dataclass is built with :func:`common.configio.from_mapping` and checked by its
``validate(prefix)`` method, whose errors name the dotted key (``input.parquet.missing_depth``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

from builder.psfmodel import MIN_MOFFAT_BETA
from common.configio import check, check_between, check_range
from shards.schema import BANDS, CATALOG_FIELDS, STAMP_SIZE_PIX

MISSING_DEPTH_MODES: tuple[str, ...] = ("estimate", "reject")
"""What to do with a missing/null ``psfdepth_*`` value: estimate it from the stamp noise, or
reject the row with ``missing_catalog``."""

_MAX_ANNULUS_PIX = STAMP_SIZE_PIX / 2 - 1  # leaves a ring of corner pixels to measure


def _key(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_positive(value: float, key: str) -> None:
    check(math.isfinite(value) and value > 0, key, f"must be a finite number > 0 (got {value})")


def _check_depth_options(obj, prefix: str) -> None:
    from builder.parents.base import check_extra_columns

    check_extra_columns(list(getattr(obj, "extra_columns", ())), _key(prefix, "extra_columns"))
    check(
        obj.missing_depth in MISSING_DEPTH_MODES,
        _key(prefix, "missing_depth"),
        f"must be one of {list(MISSING_DEPTH_MODES)} (got {obj.missing_depth!r})",
    )
    check(
        0 < obj.annulus_inner_pix <= _MAX_ANNULUS_PIX,
        _key(prefix, "annulus_inner_pix"),
        f"must be in (0, {_MAX_ANNULUS_PIX}] (got {obj.annulus_inner_pix})",
    )


@dataclass
class ParquetConfig:
    """How to read a parent Parquet file (the seed pipeline's layout by default).

    Attributes
    ----------
    id_column : str
        Column holding the galaxy id. If the file has no such column the id is
        ``f"{brickname}_{objid}"`` when both ``brickname`` and ``objid`` columns exist, else
        ``f"J{ra:.6f}{dec:+.6f}"`` (ra/dec in degrees, from the mapped ra/dec columns).
    stamp_column : str
        Binary column holding ``np.savez_compressed`` bytes of the three band images.
    band_keys : tuple of str
        Keys of the g, r, z images inside each npz (float 64x64 nanomaggies per pixel).
    column_map : dict
        Our catalog field name (``shards.schema.CATALOG_FIELDS``) -> column name in the file,
        for fields whose column is named differently; unmapped fields use their own name.
    missing_depth : str
        ``"estimate"`` (default): a missing ``psfdepth_<b>`` column, or a null or NaN value, is
        estimated from the stamp (1.4826 * MAD of the pixels beyond ``annulus_inner_pix`` from
        the centre, and the NEA of a Moffat with FWHM ``psfsize_<b>`` and index
        ``psf.moffat_beta``); the estimate is biased
        low by a few per cent on average when a large host's wings or neighbours reach the
        annulus. ``"reject"``: such rows are rejected with ``missing_catalog``.
    annulus_inner_pix : float
        Inner radius (pixels) of the noise-measurement annulus; default 24.
    extra_columns : tuple of str
        Further columns carried into each sample's metadata under ``extra`` (e.g. ``z_phot``,
        ``brickname``, ``type``) and kept by ``train score``; never a model input. Default none.
    psf_column : str
        Optional list column of per-row PSF images, ``(3, K, K)`` g, r, z with K odd <= 63, as a
        flat list of ``3 * K * K`` floats (C order) or nested lists; null = none for that row
        (:mod:`builder.parents.psf_input`). Arcs are convolved with it. Default ``psf``.
    """

    id_column: str = "galaxy_id"
    stamp_column: str = "stamp_npz"
    band_keys: tuple[str, ...] = ("image_g", "image_r", "image_z")
    column_map: dict[str, str] = field(default_factory=dict)
    missing_depth: str = "estimate"
    annulus_inner_pix: float = 24.0
    extra_columns: tuple[str, ...] = ()
    psf_column: str = "psf"

    def column(self, name: str) -> str:
        """File column holding catalog field ``name``."""
        return self.column_map.get(name, name)

    def validate(self, prefix: str = "") -> None:
        """Raise :class:`~common.configio.ConfigError` naming the first invalid key."""
        check(bool(self.id_column), _key(prefix, "id_column"), "must be a non-empty string")
        check(bool(self.stamp_column), _key(prefix, "stamp_column"), "must be a non-empty string")
        check(bool(self.psf_column), _key(prefix, "psf_column"), "must be a non-empty string")
        check(
            len(self.band_keys) == len(BANDS) and all(self.band_keys),
            _key(prefix, "band_keys"),
            f"expected {len(BANDS)} non-empty npz keys for bands {list(BANDS)} (got {list(self.band_keys)})",
        )
        check(
            len(set(self.band_keys)) == len(self.band_keys),
            _key(prefix, "band_keys"),
            f"keys must be distinct (got {list(self.band_keys)})",
        )
        for name, col in self.column_map.items():
            check(
                name in CATALOG_FIELDS,
                _key(prefix, f"column_map.{name}"),
                f"unknown catalog field (valid: {', '.join(CATALOG_FIELDS)})",
            )
            check(
                isinstance(col, str) and bool(col),
                _key(prefix, f"column_map.{name}"),
                f"must be a non-empty column name (got {col!r})",
            )
        _check_depth_options(self, prefix)


@dataclass
class FitsConfig:
    """How to read a directory of Legacy Survey cutout-service FITS files.

    Each file holds one (3, ny, nx) g, r, z cube (ny, nx >= 64; centre-cropped to 64 x 64). The
    galaxy id is the file name stem.

    Attributes
    ----------
    pattern : str
        Glob pattern of the cutout files, relative to the directory.
    hdu : int
        Index of the HDU holding the cube (the cutout service writes it in the primary HDU).
    side_table : str or None
        Optional CSV or Parquet table of catalog values with a ``galaxy_id`` (file stem) or
        ``filename`` (file name) column and any of the catalog fields (``ra``, ``dec``,
        ``psfsize_g`` ...). Absent or null values fall back to the defaults below.
    psfsize_arcsec : tuple of float
        Default g, r, z PSF FWHM (arcsec) when the side table does not give one: 1.3, 1.2, 1.1,
        roughly the DR10 DECaLS medians (seeing improves towards the red).
    missing_depth : str
        ``"estimate"`` (default) or ``"reject"``, as for :class:`ParquetConfig`.
    annulus_inner_pix : float
        Inner radius (pixels) of the noise-measurement annulus; default 24.
    files_per_chunk : int
        Files per chunk (chunks are the sorted file list cut in groups of this size).
    extra_columns : tuple of str
        Side-table columns carried into each sample's metadata under ``extra`` (e.g.
        ``z_phot``); never a model input. Default none.
    psf_hdu : str or None
        Name (``EXTNAME``) of an optional image HDU with the cutout's PSF, a ``(3, K, K)`` g, r,
        z stack with K odd <= 63 (``BAND0``..``BAND2`` keys honoured); arcs are convolved with
        it. A file without it uses the Moffat model. Default ``PSF``; null ignores such HDUs.

    Notes
    -----
    ``ra``/``dec`` default to the header's ``RA``/``DEC`` keys, else ``CRVAL1``/``CRVAL2`` when
    ``CTYPE1``/``CTYPE2`` are RA/DEC (the cutout service puts the requested position there);
    a file with neither is rejected with ``missing_catalog``.
    """

    pattern: str = "*.fits"
    hdu: int = 0
    side_table: str | None = None
    psfsize_arcsec: tuple[float, ...] = (1.3, 1.2, 1.1)
    missing_depth: str = "estimate"
    annulus_inner_pix: float = 24.0
    files_per_chunk: int = 256
    extra_columns: tuple[str, ...] = ()
    psf_hdu: str | None = "PSF"

    def validate(self, prefix: str = "") -> None:
        """Raise :class:`~common.configio.ConfigError` naming the first invalid key."""
        check(bool(self.pattern), _key(prefix, "pattern"), "must be a non-empty glob pattern")
        check(self.hdu >= 0, _key(prefix, "hdu"), f"must be >= 0 (got {self.hdu})")
        check(
            self.psf_hdu is None or bool(self.psf_hdu),
            _key(prefix, "psf_hdu"),
            "must be an HDU name or null",
        )
        check(
            self.side_table is None or bool(self.side_table),
            _key(prefix, "side_table"),
            "must be a path or null",
        )
        if self.side_table is not None:
            check(
                self.side_table.lower().endswith((".csv", ".parquet", ".pq")),
                _key(prefix, "side_table"),
                f"must be a .csv or .parquet file (got {self.side_table!r})",
            )
        check(
            len(self.psfsize_arcsec) == len(BANDS),
            _key(prefix, "psfsize_arcsec"),
            f"expected {len(BANDS)} values for bands {list(BANDS)} (got {list(self.psfsize_arcsec)})",
        )
        for b, v in zip(BANDS, self.psfsize_arcsec, strict=True):
            _check_positive(v, _key(prefix, f"psfsize_arcsec[{b}]"))
        check(
            self.files_per_chunk > 0,
            _key(prefix, "files_per_chunk"),
            f"must be > 0 (got {self.files_per_chunk})",
        )
        _check_depth_options(self, prefix)


def _default_family_fractions() -> dict[str, float]:
    from builder.parents.families import DEFAULT_FRACTIONS

    return dict(DEFAULT_FRACTIONS)


@dataclass
class SynthConfig:
    """Knobs of the built-in synthetic DR10-like sky (:mod:`builder.parents.synthetic`).

    Ranges are ``[low, high]``; draws are uniform unless stated. Defaults follow DR10 DECaLS
    LRG hosts and observing conditions.

    Attributes
    ----------
    n_parents : number of synthetic parent galaxies to render; 4000.
    row_group_size : rows per Parquet row group of the rendered parent file; 500.
    mag_r_range : host total DECam r magnitude (AB), uniform; 18-21.
    redshift_range : host redshift, uniform; 0.3-0.8 (colours from the CWW E template).
    hlr_arcsec_range : host half-light radius (arcsec), log-uniform; 0.6-2.5.
    sersic_n : host Sersic index; 4 (de Vaucouleurs).
    sersic_trunc_hlr : Sersic profiles are truncated at this many half-light radii (Tractor's
        profiles are truncated too; it also keeps the FFTs small); 8.
    axis_ratio_range : host minor/major axis ratio; 0.5-1.
    center_jitter_pix : host centre is (31.5, 31.5) (0-based x, y; the stamp centre, where the
        injected lens is centred) plus a uniform offset within +-this, pixels; 0.1 (0.03").
    moffat_beta_range : Moffat index of each band's PSF, drawn uniformly per object and band;
        2.5-4.5. Host, neighbours, stars and the injected arc of a parent share its PSF (the
        indices are recorded as ``psf_beta_g/r/z``). A turbulence-only (Kolmogorov) PSF has
        beta ~4.8 (Trujillo et al. 2001); scattering in the atmosphere and the optics gives real
        ground-based PSFs broader wings, i.e. lower beta (Racine 1996), see docs/injection.md.
        ``[b, b]`` gives one index everywhere. (``psf.moffat_beta`` is the model PSF of inputs
        that bring no PSF of their own; it does not act on the synthetic sky.)
    psfsize_r_range : r-band PSF FWHM (arcsec); 1.1-1.6.
    psfsize_ratio_g, psfsize_ratio_z : mean g/r and z/r FWHM ratios; 1.06 and 0.93 (Kolmogorov
        seeing, FWHM proportional to wavelength^-0.2 at 480/640/920 nm).
    psfsize_ratio_scatter : log-normal scatter of those ratios (the bands stay correlated); 0.03.
    depth5_g_mag, depth5_r_mag, depth5_z_mag : 5-sigma point-source depth (AB mag) ranges;
        g 24.0-24.8, r 23.4-24.2, z 22.5-23.4; ``psfdepth = (5 / flux5_nmgy)^2``.
    gain_e_per_nmgy : coadd effective gain for the sources' Poisson noise; 1e4.
    neighbour_mean : Poisson mean number of neighbour galaxies per stamp; 1.0.
    neighbour_mag_r_range : neighbour r magnitude; 20-23.5.
    neighbour_hlr_arcsec_range : neighbour half-light radius, log-uniform; 0.3-1.5.
    neighbour_redshift_range : neighbour redshift; 0.1-1.2.
    neighbour_red_fraction : fraction of neighbours that are ellipticals (CWW E, n=4); the rest
        are discs (CWW Scd, n=1); 0.3.
    neighbour_sep_arcsec_range : neighbour distance from the centre (uniform in area); 1-11
        (neighbours at all separations, for hosts and controls alike).
    star_mean : Poisson mean number of stars per stamp; 0.3.
    star_mag_r_range : star r magnitude; 17-22.
    star_sep_arcsec_range : star distance from the centre (uniform in area); 1.5-11.
    star_g_minus_r_range : star g-r colour; 0.2-1.5, with r-z = 0.75 (g-r) - 0.05 (a linear
        approximation of the stellar locus).
    ra_range, dec_range : sky patch (deg; uniform on the sphere); a DECaLS-like north patch.
    lrg_density_per_deg2 : 0 (default) spreads the parents over all of ``ra_range`` x
        ``dec_range`` (~1 per deg^2 for 4000 parents, so spatial splits act per galaxy); a value
        > 0 packs them into one contiguous footprint of ``n_parents / lrg_density_per_deg2``
        deg^2 centred in that patch, ``dec`` band of equal width and height on the sky, at this
        surface density (uniform on the sphere). DR10-like: ~130 (2 M LRG parents over
        ~15,000 deg^2); DESI LRG targets: ~600. See :meth:`footprint_deg`.
    folding_threshold : GalSim FFT folding threshold (speed/accuracy); 5e-3 (GalSim default).
    families : family name -> fraction of parents (normalised to sum 1) of the hard-negative
        families (:mod:`builder.parents.families`; defaults and their motivation in
        docs/experiments.md). A parent's family is independent of its role, so hosts get
        companions, rings and arms as often as controls; ``{lrg: 1}`` gives plain LRGs only.
    """

    n_parents: int = 4000
    row_group_size: int = 500
    mag_r_range: tuple[float, ...] = (18.0, 21.0)
    redshift_range: tuple[float, ...] = (0.3, 0.8)
    hlr_arcsec_range: tuple[float, ...] = (0.6, 2.5)
    sersic_n: float = 4.0
    sersic_trunc_hlr: float = 8.0
    axis_ratio_range: tuple[float, ...] = (0.5, 1.0)
    center_jitter_pix: float = 0.1
    moffat_beta_range: tuple[float, ...] = (2.5, 4.5)
    psfsize_r_range: tuple[float, ...] = (1.1, 1.6)
    psfsize_ratio_g: float = 1.06
    psfsize_ratio_z: float = 0.93
    psfsize_ratio_scatter: float = 0.03
    depth5_g_mag: tuple[float, ...] = (24.0, 24.8)
    depth5_r_mag: tuple[float, ...] = (23.4, 24.2)
    depth5_z_mag: tuple[float, ...] = (22.5, 23.4)
    gain_e_per_nmgy: float = 1.0e4
    neighbour_mean: float = 1.0
    neighbour_mag_r_range: tuple[float, ...] = (20.0, 23.5)
    neighbour_hlr_arcsec_range: tuple[float, ...] = (0.3, 1.5)
    neighbour_redshift_range: tuple[float, ...] = (0.1, 1.2)
    neighbour_red_fraction: float = 0.3
    neighbour_sep_arcsec_range: tuple[float, ...] = (1.0, 11.0)
    star_mean: float = 0.3
    star_mag_r_range: tuple[float, ...] = (17.0, 22.0)
    star_sep_arcsec_range: tuple[float, ...] = (1.5, 11.0)
    star_g_minus_r_range: tuple[float, ...] = (0.2, 1.5)
    ra_range: tuple[float, ...] = (150.0, 240.0)
    dec_range: tuple[float, ...] = (-10.0, 30.0)
    lrg_density_per_deg2: float = 0.0
    folding_threshold: float = 5.0e-3
    families: dict[str, float] = field(default_factory=_default_family_fractions)

    def footprint_deg(self) -> tuple[float, float, float, float]:
        """``(ra_lo, ra_hi, dec_lo, dec_hi)`` in degrees where the parents are drawn.

        With ``lrg_density_per_deg2 == 0`` this is ``ra_range`` x ``dec_range``. Otherwise it
        is the contiguous patch of area ``A = n_parents / lrg_density_per_deg2`` deg^2 centred
        on the middle of that patch: a dec band of height ``sqrt(A)`` deg and the RA width that
        makes its solid angle exactly ``A`` (``ra_hi`` may exceed 360: RA is wrapped).
        """
        if self.lrg_density_per_deg2 <= 0:
            return (*self.ra_range, *self.dec_range)  # type: ignore[return-value]
        area_deg2 = self.n_parents / self.lrg_density_per_deg2
        ra0, dec0 = sum(self.ra_range) / 2.0, sum(self.dec_range) / 2.0
        half = math.sqrt(area_deg2) / 2.0
        dec_lo, dec_hi = dec0 - half, dec0 + half
        if dec_lo < -90.0 or dec_hi > 90.0:
            return (ra0, ra0, dec_lo, dec_hi)  # refused by validate
        band = math.sin(math.radians(dec_hi)) - math.sin(math.radians(dec_lo))
        width = math.degrees(math.radians(1.0) ** 2 * area_deg2 / band)
        return (ra0 - width / 2.0, ra0 + width / 2.0, dec_lo, dec_hi)

    def validate(self, prefix: str = "") -> None:
        """Raise :class:`~common.configio.ConfigError` naming the first invalid key."""
        k = functools.partial(_key, prefix)
        check(self.n_parents > 0, k("n_parents"), f"must be > 0 (got {self.n_parents})")
        check(
            self.row_group_size > 0, k("row_group_size"), f"must be > 0 (got {self.row_group_size})"
        )
        check_range(self.mag_r_range, k("mag_r_range"), 10.0, 30.0)
        check_range(self.redshift_range, k("redshift_range"), 0.0, 6.0)
        check_range(self.hlr_arcsec_range, k("hlr_arcsec_range"), 0.05, 10.0)
        check_between(self.sersic_n, k("sersic_n"), 0.3, 6.2, "GalSim's range")
        check(
            self.sersic_trunc_hlr == 0 or self.sersic_trunc_hlr >= 2,
            k("sersic_trunc_hlr"),
            f"must be 0 (no truncation) or >= 2 (got {self.sersic_trunc_hlr})",
        )
        check_range(self.axis_ratio_range, k("axis_ratio_range"), 0.05, 1.0)
        check_between(self.center_jitter_pix, k("center_jitter_pix"), 0, 4)
        check_range(self.moffat_beta_range, k("moffat_beta_range"), MIN_MOFFAT_BETA, 10.0)
        check(
            self.moffat_beta_range[0] > MIN_MOFFAT_BETA,
            k("moffat_beta_range"),
            f"low must be > {MIN_MOFFAT_BETA} (GalSim's Moffat; got {self.moffat_beta_range[0]})",
        )
        check_range(self.psfsize_r_range, k("psfsize_r_range"), 0.5, 4.0)
        for name in ("psfsize_ratio_g", "psfsize_ratio_z", "gain_e_per_nmgy", "folding_threshold"):
            _check_positive(getattr(self, name), k(name))
        check_between(self.psfsize_ratio_scatter, k("psfsize_ratio_scatter"), 0, 0.3)
        for b in BANDS:
            check_range(getattr(self, f"depth5_{b}_mag"), k(f"depth5_{b}_mag"), 15.0, 30.0)
        for name in ("neighbour_mean", "star_mean"):
            check_between(getattr(self, name), k(name), 0, 20)
        check_range(self.neighbour_mag_r_range, k("neighbour_mag_r_range"), 10.0, 30.0)
        check_range(self.neighbour_hlr_arcsec_range, k("neighbour_hlr_arcsec_range"), 0.05, 10.0)
        check_range(self.neighbour_redshift_range, k("neighbour_redshift_range"), 0.0, 6.0)
        check_between(self.neighbour_red_fraction, k("neighbour_red_fraction"), 0, 1)
        check_range(self.neighbour_sep_arcsec_range, k("neighbour_sep_arcsec_range"), 0.0, 30.0)
        check_range(self.star_mag_r_range, k("star_mag_r_range"), 10.0, 30.0)
        check_range(self.star_sep_arcsec_range, k("star_sep_arcsec_range"), 0.0, 30.0)
        check_range(self.star_g_minus_r_range, k("star_g_minus_r_range"), -1.0, 3.0)
        check_range(self.ra_range, k("ra_range"), 0.0, 360.0)
        check_range(self.dec_range, k("dec_range"), -90.0, 90.0)
        check(
            self.lrg_density_per_deg2 >= 0,
            k("lrg_density_per_deg2"),
            f"must be >= 0 (got {self.lrg_density_per_deg2})",
        )
        ra_lo, ra_hi, dec_lo, dec_hi = self.footprint_deg()
        check(
            ra_hi - ra_lo <= 360.0 and -90.0 <= dec_lo and dec_hi <= 90.0,
            k("lrg_density_per_deg2"),
            f"footprint of {self.n_parents / max(self.lrg_density_per_deg2, 1e-300):.4g} deg^2 "
            f"does not fit on the sky around dec {sum(self.dec_range) / 2:g}",
        )
        from builder.parents.families import check_fractions

        problems = check_fractions(self.families)
        check(not problems, k("families"), "; ".join(problems))
