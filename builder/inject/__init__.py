"""Injection of strongly lensed arcs (SIE + shear lens, Sersic source) into survey cutouts.

Public API::

    from builder.inject import InjectionConfig, InjectionResult, inject_arc

See ``docs/injection.md`` for the physics, conventions and acceptance cuts.
"""

from builder.inject.config import InjectionConfig
from builder.inject.sampler import InjectionResult, inject_arc

__all__ = ["InjectionConfig", "InjectionResult", "inject_arc"]
