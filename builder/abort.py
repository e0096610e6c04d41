"""The message of a build aborted for too many rejected parents: what went wrong, where to look.

It names the fraction against ``rejects.max_reject_fraction``, the most common reasons each with
one example (galaxy, location and the reader's detail, e.g. ``npz has no key 'image_g' (keys:
['g', 'r', 'z'])``), and the path of ``rejects.jsonl``. When every row was rejected it does not
suggest raising the limit: then the input layout does not match what the reader expects
(``docs/inputs.md``), and the config keys that map it are named.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Reasons shown with an example in the abort message.
TOP_REASONS = 3


def abort_message(
    rejects: Sequence[dict[str, Any]],
    n_total: int,
    max_fraction: float,
    rejects_path: Path | str,
) -> str | None:
    """The abort message if ``len(rejects) / n_total`` exceeds ``max_fraction``, else None."""
    frac = len(rejects) / max(n_total, 1)
    if frac <= max_fraction:
        return None
    counts = Counter(str(r.get("reason")) for r in rejects)
    parts = []
    for reason, count in counts.most_common(TOP_REASONS):
        example = next(r for r in rejects if str(r.get("reason")) == reason)
        where = example.get("location") or example.get("galaxy_id") or "?"
        detail = example.get("detail") or ""
        parts.append(
            f"{reason}: {count} (e.g. {where}: {detail})"
            if detail
            else f"{reason}: {count} (e.g. {where})"
        )
    others = len(counts) - TOP_REASONS
    tail = f"; and {others} other reason(s)" if others > 0 else ""
    head = (
        f"{len(rejects)} of {n_total} parent rows rejected ({frac:.1%} > max_reject_fraction "
        f"{max_fraction:.1%}): "
        + "; ".join(parts)
        + tail
        + f". Every row is listed in {rejects_path}."
    )
    if len(rejects) >= n_total:
        return head + (
            " No row was usable, so the input layout does not match what the reader expects: see "
            "docs/inputs.md (config keys input.parquet.stamp_column / band_keys / column_map, "
            "input.fits.side_table / hdu)."
        )
    return head + " Fix the input, or raise --max-reject-fraction if these rows may be dropped."
