"""Light models of the lensed background galaxy, one module per model, behind one protocol.

Table (filled by ``@register_source_light``; selected by ``injection.source.model``):

============  ==========================================  ===============================
name          module                                      config section
============  ==========================================  ===============================
``clumpy``    :mod:`~.clumpy` (Sersic + GalSim knots,     ``injection.source.clumpy``
              default)
``sersic``    :mod:`~.sersic` (smooth, one colour)        ``injection.source.sersic``
``stamps``    :mod:`~.stamps` (user FITS images,          ``injection.source.stamps``
              bilinear, lenstronomy INTERPOL)
============  ==========================================  ===============================

To add a model: write one module with a config dataclass (``validate(prefix)``) and a
:class:`~.base.SourceLight` subclass decorated ``@register_source_light("name", Config)`` with a
``draw(rng, source_cfg, x_arcsec, y_arcsec)`` classmethod, and import it below.
"""

from builder.inject.source_light import (  # noqa: F401  (import registers the models)
    clumpy,
    sersic,
    stamps,
)
from builder.inject.source_light.base import (
    SOURCE_LIGHTS,
    Photometry,
    SourceLight,
    SourceLightEntry,
    UnitProfile,
    draw_photometry,
    register_source_light,
)

__all__ = [
    "SOURCE_LIGHTS",
    "Photometry",
    "SourceLight",
    "SourceLightEntry",
    "UnitProfile",
    "draw_photometry",
    "register_source_light",
]
