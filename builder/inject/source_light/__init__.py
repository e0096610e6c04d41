"""Light models of the lensed background galaxy, one module per model, behind one protocol.

Table (filled by ``@register_source_light``; selected by ``injection.source.model``):

============  ==========================================  ===============================
name          module                                      config section
============  ==========================================  ===============================
``sersic``    :mod:`~.sersic` (default)                   ``injection.source.sersic``
``clumpy``    :mod:`~.clumpy` (Sersic + GalSim knots)     ``injection.source.clumpy``
============  ==========================================  ===============================

To add a model: write one module with a config dataclass (``validate(prefix)``) and a
:class:`~.base.SourceLight` subclass decorated ``@register_source_light("name", Config)`` with a
``draw(rng, source_cfg, x_arcsec, y_arcsec)`` classmethod, and import it below.
"""

from builder.inject.source_light import sersic  # noqa: F401, E402  (registers "sersic")
from builder.inject.source_light.base import (
    SOURCE_LIGHTS,
    Photometry,
    SourceLight,
    SourceLightEntry,
    UnitProfile,
    draw_photometry,
    register_source_light,
)

# TODO(issue 10): from builder.inject.source_light import clumpy  # noqa: F401, E402  (registers "clumpy")

__all__ = [
    "SOURCE_LIGHTS",
    "Photometry",
    "SourceLight",
    "SourceLightEntry",
    "UnitProfile",
    "draw_photometry",
    "register_source_light",
]
