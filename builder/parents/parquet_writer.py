"""Writer of parent galaxies in the seed Parquet layout (read back by :mod:`.parquet`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from builder.parents.base import ParentRecord
from builder.parents.npz import encode_stamp_npz
from shards.schema import CATALOG_FIELDS


def _record_row(rec: ParentRecord) -> dict[str, object]:
    row: dict[str, object] = {
        "galaxy_id": rec.galaxy_id,
        "stamp_npz": encode_stamp_npz(rec.stamp_nmgy),
    }
    for f in CATALOG_FIELDS:
        v = rec.catalog.get(f)
        row[f] = None if v is None else float(v)
    return row


def write_parents_parquet(
    path: str | Path,
    records: Iterable[ParentRecord],
    row_group_size: int,
    extra_columns: Mapping[str, Callable[[ParentRecord], object]] | None = None,
) -> Path:
    """Write parent records in the seed layout, streaming one row group at a time.

    Columns: ``galaxy_id`` (string), ``stamp_npz`` (binary npz with ``image_g/r/z``),
    ``ra``, ``dec``, ``psfsize_g/r/z``, ``psfdepth_g/r/z`` (float64), then any extra columns.
    The file is written to ``path + ".tmp"`` and renamed over ``path`` only when complete.

    Parameters
    ----------
    path : str or Path
        Output file.
    records : iterable of ParentRecord
        Consumed lazily; at most ``row_group_size`` records are held at once.
    row_group_size : int
        Rows per row group (> 0).
    extra_columns : mapping, optional
        Column name -> function of the record giving that column's value (e.g. a brickname).

    Returns
    -------
    Path
        ``path``.
    """
    if row_group_size <= 0:
        raise ValueError(f"row_group_size must be > 0 (got {row_group_size})")
    extra = dict(extra_columns or {})
    clash = set(extra) & {"galaxy_id", "stamp_npz", *CATALOG_FIELDS}
    if clash:
        raise ValueError(f"extra_columns {sorted(clash)} clash with the standard columns")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    base_fields = [pa.field("galaxy_id", pa.string()), pa.field("stamp_npz", pa.binary())]
    base_fields += [pa.field(f, pa.float64()) for f in CATALOG_FIELDS]
    schema: pa.Schema | None = None if extra else pa.schema(base_fields)
    writer: pq.ParquetWriter | None = None

    def flush(batch: list[ParentRecord]) -> None:
        nonlocal writer, schema
        rows = [_record_row(r) | {name: fn(r) for name, fn in extra.items()} for r in batch]
        if schema is None:  # infer the extra columns' types from the first row group
            inferred = pa.Table.from_pylist(rows)
            schema = pa.schema(base_fields + [inferred.schema.field(n) for n in extra])
        table = pa.Table.from_pylist(rows, schema=schema)
        if writer is None:
            # npz bytes are already deflated: Parquet compression would only cost read time
            codecs = {name: "zstd" for name in schema.names}
            codecs["stamp_npz"] = "none"
            writer = pq.ParquetWriter(
                tmp,
                schema,
                compression=codecs,
                use_dictionary=[n for n in schema.names if n != "stamp_npz"],
            )
        writer.write_table(table, row_group_size=row_group_size)

    try:
        batch: list[ParentRecord] = []
        for rec in records:
            batch.append(rec)
            if len(batch) == row_group_size:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
        if writer is None:  # no records: an empty file with the base schema
            writer = pq.ParquetWriter(tmp, schema or pa.schema(base_fields))
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return path
