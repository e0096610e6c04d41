"""Deterministic split and role assignment from a galaxy id and a salt.

Each galaxy gets two independent uniforms from a keyed BLAKE2b hash of its id: one picks the split
(default 80/10/10), the other the role within the split (host with probability ``pos_fraction``,
else control). The assignment of a galaxy never depends on any other galaxy, on the input order or
on the worker count, so splits are disjoint by construction and stable when the parent sample grows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from shards.schema import SPLITS


def hash_uniforms(galaxy_id: str, salt: str) -> tuple[float, float]:
    """Two independent uniforms in [0, 1) from ``(salt, galaxy_id)`` (53-bit resolution)."""
    digest = hashlib.blake2b(galaxy_id.encode(), key=salt.encode()[:64], digest_size=16).digest()
    a = int.from_bytes(digest[:8], "little") >> 11
    b = int.from_bytes(digest[8:], "little") >> 11
    return a / 2.0**53, b / 2.0**53


def galaxy_seed(galaxy_id: str, seed: int) -> int:
    """A 63-bit integer seed for the injection of one galaxy, from ``(seed, galaxy_id)``."""
    digest = hashlib.blake2b(f"{seed}:{galaxy_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def assign_split(u: float, fractions: Mapping[str, float]) -> str:
    """Split for uniform ``u`` given fractions summing to 1 (in :data:`SPLITS` order)."""
    edge = 0.0
    for split in SPLITS:
        edge += fractions[split]
        if u < edge:
            return split
    return SPLITS[-1]


def assign(
    galaxy_id: str, salt: str, fractions: Mapping[str, float], pos_fraction: Mapping[str, float]
) -> tuple[str, str]:
    """(split, role) of a galaxy; role is ``"host"`` or ``"control"``."""
    u_split, u_role = hash_uniforms(galaxy_id, salt)
    split = assign_split(u_split, fractions)
    role = "host" if u_role < pos_fraction[split] else "control"
    return split, role
