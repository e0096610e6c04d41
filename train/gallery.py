"""Visual-inspection gallery of the top candidates: one PNG grid and an HTML page of thumbnails.

Stamps are read back raw (nanomaggies) from the parent source by chunk and row, so what is shown
is what was scored, and drawn with the one colour composite of the project
(:func:`train.plots.rgb_composite`: z, r, g -> red, green, blue, Lupton asinh stretch with the
Legacy Survey viewer's band scales). Each cutout carries its rank, galaxy id, ra/dec and logit;
the HTML links each one to the Legacy Survey viewer at its position (a link only; nothing is
fetched).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np
from matplotlib.image import imsave

from builder.parents.base import Rejection
from builder.parents.open import SourceSpec, open_source
from common.atomic import atomic_write_text
from train.plots import plot_cutout_grid, rgb_composite

__all__ = ["GalleryEntry", "read_stamps", "write_gallery"]

GALLERY_DIR = "gallery"
GRID_NAME = "top.png"
HTML_NAME = "index.html"
VIEWER_URL = "https://www.legacysurvey.org/viewer?ra={ra:.6f}&dec={dec:.6f}&layer=ls-dr10&zoom=16"


@dataclass(frozen=True)
class GalleryEntry:
    """One candidate to show."""

    rank: int
    galaxy_id: str
    ra: float
    dec: float
    logit: float
    probability: float
    chunk: int
    row: int


def read_stamps(spec: SourceSpec, entries: Sequence[GalleryEntry]) -> list[np.ndarray]:
    """Raw (3, 64, 64) stamps of ``entries`` (in their order), read chunk by chunk."""
    source = open_source(spec)
    found: dict[tuple[int, int], np.ndarray] = {}
    by_chunk = sorted(entries, key=lambda e: (e.chunk, e.row))
    for chunk, group in groupby(by_chunk, key=lambda e: e.chunk):
        rows = sorted({e.row for e in group})
        for row, rec in zip(rows, source.read(chunk, rows), strict=True):
            if isinstance(rec, Rejection):  # the input changed since it was scored
                raise ValueError(f"{rec.location}: no longer readable ({rec.reason})")
            found[(chunk, row)] = rec.stamp_nmgy
    return [found[(e.chunk, e.row)] for e in entries]


def _title(e: GalleryEntry) -> str:
    return f"#{e.rank} {e.galaxy_id[-16:]}\n{e.ra:.5f} {e.dec:+.5f}\nlogit {e.logit:.2f}"


def write_gallery(
    spec: SourceSpec,
    entries: Sequence[GalleryEntry],
    out_dir: str | Path,
    title: str,
) -> dict[str, str]:
    """Write ``gallery/top.png`` and ``gallery/index.html`` (+ ``gallery/thumbs/*.png``).

    Returns
    -------
    dict
        ``{"png": path, "html": path}`` relative to ``out_dir`` (empty when nothing to show).
    """
    out = Path(out_dir)
    if not entries:
        return {}
    gdir = out / GALLERY_DIR
    (gdir / "thumbs").mkdir(parents=True, exist_ok=True)
    stamps = read_stamps(spec, entries)
    plot_cutout_grid(
        np.stack(stamps).astype(np.float32),
        [_title(e) for e in entries],
        gdir / GRID_NAME,
        suptitle=title,
    )
    cells = []
    for e, stamp in zip(entries, stamps, strict=True):
        thumb = f"thumbs/{e.rank:06d}.png"
        imsave(gdir / thumb, rgb_composite(stamp), origin="lower")
        url = html.escape(VIEWER_URL.format(ra=e.ra, dec=e.dec))
        cells.append(
            f'<figure><a href="{url}"><img src="{thumb}" width="192" height="192" '
            f'alt="{html.escape(e.galaxy_id)}"></a><figcaption>#{e.rank} '
            f"<b>{html.escape(e.galaxy_id)}</b><br>ra {e.ra:.6f} dec {e.dec:+.6f}<br>"
            f"logit {e.logit:.3f} (p {e.probability:.4f})</figcaption></figure>"
        )
    page = (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;background:#111;color:#ddd}"
        "figure{display:inline-block;margin:6px;width:192px;font-size:12px;vertical-align:top}"
        "img{image-rendering:pixelated;border:1px solid #444}a{color:#9cf}"
        "</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n<p>Colour: z, r, g as red, green, blue (asinh "
        "stretch). Ranked by logit; the probability is for display only. Each image links to "
        "the Legacy Survey viewer.</p>\n" + "\n".join(cells) + "\n</body></html>\n"
    )
    atomic_write_text(gdir / HTML_NAME, page)
    return {"png": f"{GALLERY_DIR}/{GRID_NAME}", "html": f"{GALLERY_DIR}/{HTML_NAME}"}
