"""Hard-negative families of the synthetic sky (rings, spirals, blue companions, mergers ...).

Importing the package registers the built-in families (:data:`FAMILIES`) and feature
renderers (:data:`PROFILES`). See :mod:`.registry` for how a parent's family is drawn and
docs/experiments.md for the defaults and their motivation.
"""

from __future__ import annotations

from builder.parents.families import companions, interactions, structures  # noqa: F401  (register)
from builder.parents.families.base import Feature, HostContext
from builder.parents.families.profiles import PROFILES, feature_profile, register_profile
from builder.parents.families.registry import (
    DEFAULT_FRACTIONS,
    FAMILIES,
    Family,
    check_fractions,
    draw_family,
    register_family,
)

FEATURE_KINDS: tuple[str, ...] = (
    "companion",
    "galaxy",
    "ring",
    "disk",
    "arm",
    "nucleus",
    "tail",
    "shell",
)
"""Component kinds a family feature may have (``render_stamp(kinds=...)`` selects them)."""

__all__ = [
    "DEFAULT_FRACTIONS",
    "FAMILIES",
    "FEATURE_KINDS",
    "PROFILES",
    "Family",
    "Feature",
    "HostContext",
    "check_fractions",
    "draw_family",
    "feature_profile",
    "register_family",
    "register_profile",
]
