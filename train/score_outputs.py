"""The outputs of ``train score`` assembled from its per-chunk part files.

:func:`assemble` reads the parts in chunk order (only their small per-galaxy columns are held in
memory; no stamp), drops any galaxy id seen in an earlier row (recorded as a
``duplicate_galaxy_id`` rejection, as the builder's scan does), ranks by logit and writes

* ``scores.parquet``: one row per valid parent, in input order: ``galaxy_id``, ``ra``, ``dec``
  (deg), ``logit`` (float32; rank and cut on this), ``probability`` (sigmoid of the logit, for
  display only), the catalogue columns (``psfsize_*`` FWHM arcsec, ``psfdepth_*`` 1/nmgy^2),
  ``source_location`` / ``source_chunk`` / ``source_row`` (where the stamp is), the input's
  descriptive parent columns (:data:`builder.parents.base.PARENT_META_COLUMNS`, e.g. the synthetic
  sky's ``family``) as strings and the input's extra catalogue columns as read, except that the
  selection columns of ``train eval`` (:data:`train.eval_inputs.SAMPLE_COLUMNS`: ``theta_e_arcsec``,
  ``source_mag_r``, ``vis_snr``, ``arc_snr``, ``visible``, ``family`` ...) get the same type as
  there, then ``rank`` (1 = highest logit; ties keep input order);
* ``rejects.jsonl``: every refused parent with its reason, never a silent skip.

:func:`write_candidates` writes the ranked ``candidates.csv``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common.atomic import atomic_open

__all__ = [
    "CANDIDATES_NAME",
    "REJECTS_NAME",
    "SCORES_NAME",
    "Assembled",
    "assemble",
    "display_probability",
    "write_candidates",
]

SCORES_NAME = "scores.parquet"
REJECTS_NAME = "rejects.jsonl"
CANDIDATES_NAME = "candidates.csv"
_KEEP = ("galaxy_id", "ra", "dec", "logit", "source_location", "source_chunk", "source_row")


def display_probability(logit: np.ndarray) -> np.ndarray:
    """``sigmoid(logit)`` as float32, for display only (it saturates at 1.0 from logit ~16.6)."""
    return (1.0 / (1.0 + np.exp(-np.asarray(logit, np.float64)))).astype(np.float32)


@dataclass
class Assembled:
    """Per-galaxy columns of the valid, de-duplicated parents, in input order.

    Attributes
    ----------
    galaxy_id, location : list of str
    ra, dec : ndarray of float64
        Degrees.
    logit : ndarray of float32
    rank : ndarray of int64
        1 for the highest logit.
    chunk, row : ndarray of int32
        Where each stamp is in the source.
    rejects_by_reason : dict
        Count of each rejection reason.
    """

    galaxy_id: list[str]
    location: list[str]
    ra: np.ndarray
    dec: np.ndarray
    logit: np.ndarray
    rank: np.ndarray
    chunk: np.ndarray
    row: np.ndarray
    rejects_by_reason: dict[str, int]

    def __len__(self) -> int:
        return len(self.galaxy_id)

    def n_above(self, threshold: float) -> int:
        """Galaxies with ``logit >= threshold``."""
        return int(np.count_nonzero(self.logit >= threshold))

    def top(self, n: int) -> np.ndarray:
        """Indices of the ``n`` best-ranked galaxies, best first."""
        order = np.argsort(self.rank, kind="stable")
        return order[: max(n, 0)]


def _ranks(logit: np.ndarray) -> np.ndarray:
    order = np.argsort(-logit.astype(np.float64), kind="stable")
    rank = np.empty(len(logit), np.int64)
    rank[order] = np.arange(1, len(logit) + 1)
    return rank


def assemble(parts: list[tuple[Path, Path]], out_dir: str | Path) -> Assembled:
    """Write ``scores.parquet`` and ``rejects.jsonl`` from ``(scores part, rejects part)`` pairs.

    Parameters
    ----------
    parts : list of (Path, Path)
        In chunk order; every pair must exist.
    out_dir : str or Path
        Where the outputs go (atomically).
    """
    out = Path(out_dir)
    seen: dict[str, str] = {}
    masks: list[np.ndarray] = []
    cols: dict[str, list] = {k: [] for k in _KEEP}
    duplicates: list[dict[str, Any]] = []
    for scores_part, _ in parts:
        t = pq.read_table(scores_part, columns=list(_KEEP)).to_pydict()
        mask = np.ones(len(t["galaxy_id"]), bool)
        for i, (gid, loc) in enumerate(zip(t["galaxy_id"], t["source_location"], strict=True)):
            if gid in seen:
                mask[i] = False
                duplicates.append(
                    {
                        "galaxy_id": gid,
                        "location": loc,
                        "reason": "duplicate_galaxy_id",
                        "stage": "score",
                        "detail": f"same id as {seen[gid]} (that row is scored)",
                        "chunk": t["source_chunk"][i],
                    }
                )
            else:
                seen[gid] = loc
        masks.append(mask)
        for k in _KEEP:
            cols[k] += [v for v, m in zip(t[k], mask, strict=True) if m]
    del seen
    logit = np.asarray(cols["logit"], np.float32)
    rank = _ranks(logit)

    by_reason: dict[str, int] = {}
    with atomic_open(out / REJECTS_NAME, "w") as fh:
        dup_by_chunk: dict[int, list[dict]] = {}
        for d in duplicates:
            dup_by_chunk.setdefault(d["chunk"], []).append(d)
        for chunk, (_, rejects_part) in enumerate(parts):
            rows = [json.loads(ln) for ln in rejects_part.read_text().splitlines() if ln.strip()]
            for r in rows + dup_by_chunk.get(chunk, []):
                by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + 1
                fh.write(json.dumps(r, sort_keys=True) + "\n")

    offset = 0
    # Parts may differ in their descriptive parent columns (a chunk without any ``family``).
    schemas = [pq.read_schema(p).remove_metadata() for p, _ in parts]
    columns = pa.unify_schemas(schemas) if schemas else pa.schema([("galaxy_id", pa.string())])
    schema = columns.append(pa.field("rank", pa.int64()))
    with atomic_open(out / SCORES_NAME, "wb") as fh, pq.ParquetWriter(fh, schema) as writer:
        for (scores_part, _), mask in zip(parts, masks, strict=True):
            t = pq.read_table(scores_part).filter(pa.array(mask))
            n = t.num_rows
            arrays = [
                t.column(f.name) if f.name in t.column_names else pa.nulls(n, f.type)
                for f in columns
            ]
            arrays.append(pa.array(rank[offset : offset + n], pa.int64()))
            writer.write_table(pa.table(arrays, schema=schema))
            offset += n
    return Assembled(
        galaxy_id=cols["galaxy_id"],
        location=cols["source_location"],
        ra=np.asarray(cols["ra"], np.float64),
        dec=np.asarray(cols["dec"], np.float64),
        logit=logit,
        rank=rank,
        chunk=np.asarray(cols["source_chunk"], np.int32),
        row=np.asarray(cols["source_row"], np.int32),
        rejects_by_reason=dict(sorted(by_reason.items())),
    )


def write_candidates(scores: Assembled, idx: np.ndarray, path: str | Path) -> Path:
    """``candidates.csv`` of the galaxies ``idx`` (best first): rank, id, position, scores."""
    with atomic_open(path, "w") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["rank", "galaxy_id", "ra", "dec", "logit", "probability", "source_location"])
        prob = display_probability(scores.logit[idx])
        for i, p in zip(idx.tolist(), prob.tolist(), strict=True):
            w.writerow(
                [
                    int(scores.rank[i]),
                    scores.galaxy_id[i],
                    f"{scores.ra[i]:.7f}",
                    f"{scores.dec[i]:.7f}",
                    f"{float(scores.logit[i]):.6g}",
                    f"{p:.6g}",
                    scores.location[i],
                ]
            )
    return Path(path)
