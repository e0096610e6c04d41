"""The family table: name -> draw function, and the per-parent family draw.

A family is what surrounds (or is) the central galaxy of a synthetic parent: plain LRG, blue
star-forming companions, a ring, spiral arms ... Each is registered once with
:func:`register_family`; the synthetic sky picks one per parent with the probabilities of
``input.synthetic.families`` (:data:`DEFAULT_FRACTIONS`) and records its name as the parent's
``family`` (metadata only: :func:`shards.schema.is_label_leaking` keeps it out of the model).

The family of a parent does not depend on its role: the split/role hash never sees it, so hosts
carry companions, rings and arms as often as controls do and only the injected arc tells them
apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from builder.parents.families.base import Feature, HostContext

DrawFn = Callable[[np.random.Generator, HostContext], tuple[Feature, ...]]


@dataclass(frozen=True)
class Family:
    """One registered family.

    Attributes
    ----------
    name : str
        Recorded as the parent's ``family``.
    draw : callable
        ``draw(rng, host) -> tuple of Feature`` (may be empty).
    description : str
        One line for docs and reports.
    """

    name: str
    draw: DrawFn
    description: str


FAMILIES: dict[str, Family] = {}
"""Family name -> :class:`Family`, in registration order."""

FAMILY_STREAM = 2
"""Spawn key of the family draw under ``SeedSequence([seed, index])`` (0 and 1 are the stamp's
parameters and noise), so a family never shifts the other draws of a parent."""

# Fractions of parents per family in the default build. The real sky is mostly plain LRGs, but
# a training set must over-represent what a lens finder confuses with arcs. Sky rates for
# orientation (see docs/experiments.md): close companions within ~25 kpc ~5-10 % (Lotz+2011,
# Mundy+2017); rings in ~1/3 of disc galaxies, resonance rings dominating and collisional rings
# rare (Buta & Combes 1996; Comeron+2014); tidal features in ~10-25 % of massive ellipticals at
# survey depth (Atkinson+2013; Bilek+2020) and shells in ~10 % (Malin & Carter 1983); spiral
# arms, rings and blue companions lead the false-positive lists of DECaLS lens searches
# (Jacobs+2019; Huang+2020, 2021; Storfer+2022).
DEFAULT_FRACTIONS: dict[str, float] = {
    "lrg": 0.30,
    "blue_companion": 0.15,
    "chance_alignment": 0.10,
    "ring": 0.10,
    "spiral": 0.12,
    "merger": 0.09,
    "shell": 0.07,
    "edge_on": 0.07,
}


def register_family(name: str, description: str) -> Callable[[DrawFn], DrawFn]:
    """Decorator registering ``draw(rng, host)`` as family ``name``."""

    def deco(fn: DrawFn) -> DrawFn:
        if name in FAMILIES:
            raise ValueError(f"family {name!r} is already registered")
        FAMILIES[name] = Family(name, fn, description)
        return fn

    return deco


def check_fractions(fractions: Mapping[str, float]) -> list[str]:
    """Problems with a family-fraction mapping (empty list when it is valid)."""
    problems = []
    for name, v in fractions.items():
        if name not in FAMILIES:
            problems.append(f"unknown family {name!r} (registered: {', '.join(FAMILIES)})")
        elif not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
            problems.append(f"{name}: fraction must be a number >= 0 (got {v!r})")
    if not problems and not sum(float(v) for v in fractions.values()) > 0:
        problems.append("fractions must not all be 0")
    return problems


def draw_family(
    seed: int, index: int, host: HostContext, fractions: Mapping[str, float]
) -> tuple[str, tuple[Feature, ...]]:
    """Pick the family of parent ``(seed, index)`` and draw its features.

    Depends only on ``(seed, index)``, the host and the fractions (normalised to sum 1).

    Returns
    -------
    name : str
        The family.
    features : tuple of Feature
    """
    names = [n for n, v in fractions.items() if v > 0]
    p = np.array([float(fractions[n]) for n in names])
    ss = np.random.SeedSequence([int(seed), int(index)], spawn_key=(FAMILY_STREAM,))
    rng = np.random.default_rng(ss)
    name = names[int(rng.choice(len(names), p=p / p.sum()))]
    return name, tuple(FAMILIES[name].draw(rng, host))
