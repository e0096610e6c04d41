"""Deterministic split and role assignment from a galaxy id, its sky position and a salt.

Each galaxy gets two independent uniforms from a keyed BLAKE2b hash of its id: one can pick the
split (default 80/10/10), the other picks the role within the split (host with probability
``pos_fraction``, else control). The split uniform comes from a registered *split scheme*
(:data:`SPLIT_SCHEMES`, chosen by ``splits.scheme``):

* ``healpix`` (default): the uniform is a hash of the galaxy's HEALPix pixel (nested order,
  ``splits.healpix_nside``), so every galaxy of a pixel lands in the same split. Neighbouring
  galaxies (which share stamps, bricks and observing conditions) then never straddle train and
  test, except across a pixel edge. nside=64 gives 0.84 deg^2 pixels (~55' across, about 4x4 DR10
  bricks): galaxies within one 16.8" stamp of a pixel edge are ~2% of the sample, and the ~17,000
  pixels of DR10 hold ~100 LRGs each, so the split fractions hold to well under 1%.
* ``hash``: the uniform is the galaxy's own hash (pixel-blind; the scheme before spatial splits).

The assignment of a galaxy never depends on any other galaxy, on the input order or on the worker
count, so splits are disjoint by construction and stable when the parent sample grows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from shards.schema import SPLITS
from shards.spatial import HEALPIX_ORDER, healpix_pixel_area_deg2, healpix_pixels


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


def pixel_uniform(pixel: int, nside: int, salt: str) -> float:
    """The split uniform of HEALPix ``pixel`` (shared by every galaxy in it)."""
    return hash_uniforms(f"healpix-{HEALPIX_ORDER}-{int(nside)}:{int(pixel)}", salt)[0]


def _hash_scheme(
    u_galaxy: np.ndarray, ra_deg: np.ndarray, dec_deg: np.ndarray, cfg: Any
) -> tuple[np.ndarray, np.ndarray | None]:
    return u_galaxy, None


def _healpix_scheme(
    u_galaxy: np.ndarray, ra_deg: np.ndarray, dec_deg: np.ndarray, cfg: Any
) -> tuple[np.ndarray, np.ndarray | None]:
    nside = cfg.healpix_nside
    pixels = healpix_pixels(ra_deg, dec_deg, nside)
    cache: dict[int, float] = {}
    u = np.empty(pixels.size, dtype=np.float64)
    for i, p in enumerate(pixels.tolist()):
        if p not in cache:
            cache[p] = pixel_uniform(p, nside, cfg.salt)
        u[i] = cache[p]
    return u, pixels


SplitScheme = Callable[..., tuple[np.ndarray, "np.ndarray | None"]]
SPLIT_SCHEMES: dict[str, SplitScheme] = {"hash": _hash_scheme, "healpix": _healpix_scheme}
"""``splits.scheme`` -> ``scheme(u_galaxy, ra_deg, dec_deg, split_cfg) -> (u_split, pixels)``.

``u_galaxy`` is each galaxy's own split uniform (:func:`hash_uniforms`); ``u_split`` holds one uniform in [0, 1) per galaxy (mapped to a split by :func:`assign_split`);
``pixels`` the spatial cell of each galaxy, or None for a pixel-blind scheme.
"""


def assign_many(
    galaxy_ids: Sequence[str], ra_deg: Any, dec_deg: Any, cfg: Any
) -> tuple[list[str], list[float], np.ndarray | None]:
    """Split, role uniform and pixel of many galaxies under ``cfg`` (a ``SplitConfig``).

    Returns
    -------
    splits : list of str
        Split of each galaxy, from the scheme's uniform and ``cfg.fractions``.
    u_role : list of float
        Each galaxy's own role uniform (host when below ``cfg.pos_fraction[split]``).
    pixels : numpy.ndarray or None
        Pixel of each galaxy (``healpix``), None for ``hash``.
    """
    uniforms = [hash_uniforms(g, cfg.salt) for g in galaxy_ids]
    u_galaxy = np.array([u for u, _ in uniforms], dtype=np.float64)
    u_split, pixels = SPLIT_SCHEMES[cfg.scheme](
        u_galaxy, np.asarray(ra_deg, float), np.asarray(dec_deg, float), cfg
    )
    splits = [assign_split(float(u), cfg.fractions) for u in u_split]
    return splits, [v for _, v in uniforms], pixels


def scheme_record(cfg: Any) -> dict[str, Any]:
    """How splits were assigned, for the manifest (``verify`` re-checks it)."""
    rec: dict[str, Any] = {"scheme": cfg.scheme}
    if cfg.scheme == "healpix":
        rec.update(
            nside=int(cfg.healpix_nside),
            order=HEALPIX_ORDER,
            pixel_area_deg2=float(f"{healpix_pixel_area_deg2(cfg.healpix_nside):.8g}"),
        )
    return rec
