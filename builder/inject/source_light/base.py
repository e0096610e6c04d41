"""The source-light protocol: what the renderer and the sampler ask of a lensed galaxy's light.

A lensed-source light model (a :class:`SourceLight`) is a sum of *components*, each one a
unit-flux surface-brightness profile in the source plane (a :class:`UnitProfile`, arcsec^-2,
integrating to 1) times its own unlensed flux per band (nmgy). A component has one colour; a
model with a colour gradient (e.g. blue star-forming knots on a redder disc) has several. So

    surface brightness [nmgy arcsec^-2] in band b at beta = sum_c flux_c[b] * unit_c(beta)

and the renderer ray-traces each component once (one image, one FFT per component) instead of
once per band. Models are registered by name (:func:`register_source_light`, timm style) with
their config section (``injection.source.<name>``) and a ``draw`` that takes all of their random
parameters from a generator; see ``builder.inject.source_light.sersic`` for the reference
implementation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from builder.photometry import band_fluxes_nmgy

if TYPE_CHECKING:  # pragma: no cover
    from builder.inject.config import SourceConfig


@runtime_checkable
class UnitProfile(Protocol):
    """A unit-flux surface brightness in the source plane (one colour component).

    ``unit_surface_brightness`` integrates to 1 over the plane; the adaptive renderer uses
    the two hints: pixels whose corners are brighter than a fraction of
    ``peak_unit_sb_arcsec2()`` or whose source-plane footprint comes within
    ``core_radius_arcsec()`` of ``center_arcsec()`` are supersampled.
    """

    def unit_surface_brightness(
        self, beta_x_arcsec: np.ndarray, beta_y_arcsec: np.ndarray
    ) -> np.ndarray:
        """Surface brightness (arcsec^-2, unit total flux) at source-plane positions."""
        ...

    def peak_unit_sb_arcsec2(self) -> float:
        """Largest value of :meth:`unit_surface_brightness`, arcsec^-2."""
        ...

    def center_arcsec(self) -> tuple[float, float]:
        """Source-plane centre, arcsec from the lens."""
        ...

    def core_radius_arcsec(self) -> float:
        """Radius around the centre that always gets supersampled, arcsec."""
        ...


class SourceLight:
    """Base class of a lensed-source light model.

    A one-component model (e.g. a Sersic) implements the :class:`UnitProfile` methods and sets
    ``flux_nmgy``; a model with several colour components overrides :meth:`components`.
    Subclasses also say which per-sample metadata they record (:meth:`metadata`).

    Attributes
    ----------
    x_arcsec, y_arcsec : float
        Source centre, arcsec from the lens centre (set by the subclass).
    flux_nmgy : tuple of float
        Unlensed g, r, z flux of a one-component model, nmgy.
    """

    x_arcsec: float
    y_arcsec: float
    flux_nmgy: tuple[float, ...]

    def components(self) -> tuple[tuple[UnitProfile, np.ndarray], ...]:
        """The colour components: ``(unit profile, unlensed flux per band in nmgy)`` pairs."""
        return ((self, np.asarray(self.flux_nmgy, dtype=np.float64)),)  # type: ignore[return-value]

    def center_arcsec(self) -> tuple[float, float]:
        """Source centre, arcsec from the lens (its image count is taken there)."""
        return self.x_arcsec, self.y_arcsec

    def total_flux_nmgy(self) -> np.ndarray:
        """Unlensed total flux per band (g, r, z), nmgy: the sum over components."""
        return np.sum([flux for _, flux in self.components()], axis=0)

    def surface_brightness_nmgy_arcsec2(
        self, beta_x_arcsec: np.ndarray, beta_y_arcsec: np.ndarray
    ) -> np.ndarray:
        """Surface brightness per band at source-plane positions.

        Parameters
        ----------
        beta_x_arcsec, beta_y_arcsec : np.ndarray
            Ray-traced (source-plane) positions, arcsec from the lens centre.

        Returns
        -------
        np.ndarray
            ``(n_bands, *beta_x_arcsec.shape)`` float64, nmgy per arcsec^2.
        """
        out = None
        for profile, flux in self.components():
            unit = np.asarray(profile.unit_surface_brightness(beta_x_arcsec, beta_y_arcsec))
            term = flux.reshape((-1,) + (1,) * unit.ndim) * unit[None]
            out = term if out is None else out + term
        return out

    def metadata(self) -> dict[str, Any]:
        """Model-specific per-sample metadata (JSON scalars, keys ``source_*``)."""
        return {}

    def half_light_radius_arcsec(self) -> float:
        """Unlensed half-light radius of the whole source, arcsec (the visibility criteria)."""
        raise NotImplementedError(f"{type(self).__name__} must define half_light_radius_arcsec")


@dataclass(frozen=True)
class Photometry:
    """Unlensed colours of a source: r magnitude, SED template and redshift.

    Attributes
    ----------
    mag_r : float
        Unlensed r-band AB magnitude (total).
    sed : str
        SED template name (:data:`builder.inject.config.KNOWN_SEDS`).
    redshift : float
        Source redshift.
    """

    mag_r: float
    sed: str
    redshift: float

    def band_fluxes_nmgy(self) -> np.ndarray:
        """g, r, z flux of the template at this magnitude and redshift, nmgy (float64)."""
        return band_fluxes_nmgy(self.sed, self.redshift, self.mag_r)


def uniform(rng: np.random.Generator, pair: tuple[float, float]) -> float:
    """One uniform draw in ``[pair[0], pair[1])``."""
    return float(rng.uniform(pair[0], pair[1]))


def draw_photometry(
    rng: np.random.Generator, cfg: SourceConfig, redshift: float | None = None
) -> Photometry:
    """Draw magnitude, SED and redshift from ``injection.source`` (three generator calls).

    ``redshift``, when given (e.g. by the lens population), replaces the uniform draw in
    ``cfg.z``; the generator is called the same number of times either way.
    """
    mag_r = uniform(rng, cfg.mag_r)
    sed = str(cfg.seds[int(rng.integers(len(cfg.seds)))])
    z_uniform = uniform(rng, cfg.z)
    z = z_uniform if redshift is None else float(redshift)
    return Photometry(mag_r=mag_r, sed=sed, redshift=z)


#: ``draw(rng, source_cfg, x_arcsec, y_arcsec, redshift=None) -> SourceLight``: all random
#: parameters of one source at a given centre (at ``redshift`` when the lens population set it),
#: with a fixed sequence of generator calls.
DrawFn = Callable[..., SourceLight]


@dataclass(frozen=True)
class SourceLightEntry:
    """One row of the source-light table.

    Attributes
    ----------
    name : str
        Registry name, the value of ``injection.source.model`` and the config section key.
    config_cls : type
        Dataclass of ``injection.source.<name>`` (validated once at load, with a
        ``validate(prefix)`` method naming the dotted key).
    light_cls : type
        The :class:`SourceLight` subclass; its ``draw`` classmethod is the sampler.
    """

    name: str
    config_cls: type
    light_cls: type

    @property
    def draw(self) -> DrawFn:
        """The model's sampler, ``light_cls.draw``."""
        return self.light_cls.draw


SOURCE_LIGHTS: dict[str, SourceLightEntry] = {}
"""Registered source-light models, name -> entry (filled by :func:`register_source_light`)."""


def register_source_light(name: str, config_cls: type) -> Callable[[type], type]:
    """Class decorator: register a :class:`SourceLight` subclass under ``name``.

    The class must define ``draw(cls, rng, source_cfg, x_arcsec, y_arcsec)`` (a classmethod)
    that reads its own section as ``source_cfg.section(name)``.

    Examples
    --------
    >>> @register_source_light("disc", DiscConfig)  # doctest: +SKIP
    ... class DiscLight(SourceLight): ...
    """

    def deco(cls: type) -> type:
        if name in SOURCE_LIGHTS:
            raise ValueError(f"source-light model {name!r} is already registered")
        if not (isinstance(cls, type) and issubclass(cls, SourceLight)):
            raise TypeError(f"{cls!r} must subclass SourceLight")
        if not callable(getattr(cls, "draw", None)):
            raise TypeError(f"{cls.__name__} needs a draw(rng, source_cfg, x, y) classmethod")
        cls.model_name = name  # type: ignore[attr-defined]
        SOURCE_LIGHTS[name] = SourceLightEntry(name, config_cls, cls)
        return cls

    return deco
