"""A build aborted on rejections says why (reasons with one example each) and where to look."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from builder.abort import abort_message
from builder.build import BuildError, BuildOptions, make_shards
from builder.config import load_build_config

CATALOG = {"ra": 150.0, "dec": 2.0, **{f"psfsize_{b}": 1.2 for b in "grz"}}
CATALOG.update({f"psfdepth_{b}": 1000.0 for b in "grz"})


def _npz(keys: tuple[str, ...], rng) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: rng.normal(0, 0.01, (64, 64)).astype(np.float32) for k in keys})
    return buf.getvalue()


def test_all_rows_rejected_names_an_example_detail_the_file_and_the_layout_keys(tmp_path):
    rng = np.random.default_rng(0)
    rows = [
        {"galaxy_id": f"g{i}", "stamp_npz": _npz(("g", "r", "z"), rng), **CATALOG}
        for i in range(12)
    ]
    parents = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parents)
    cfg = load_build_config(None, {"input": {"kind": "parquet", "path": str(parents)}})
    with pytest.raises(BuildError) as err:
        make_shards(cfg, tmp_path / "out", BuildOptions(progress=False))
    message = str(err.value)
    assert "12 of 12 parent rows rejected" in message
    assert "image_g" in message  # the reader's detail: which key was missing
    assert str(tmp_path / "out" / "rejects.jsonl") in message
    assert "No row was usable" in message and "band_keys" in message
    assert "raise --max-reject-fraction" not in message


def test_message_lists_top_reasons_with_examples_and_counts_the_rest():
    rejects = [
        {"reason": r, "location": f"f:{i}", "detail": f"d{r}"} for i, r in enumerate("aabbbcd")
    ]
    message = abort_message(rejects, 100, 0.05, "OUT/rejects.jsonl")
    assert message is not None
    assert message.index("b: 3 (e.g. f:2: db)") < message.index("a: 2 (e.g. f:0: da)")
    assert "and 1 other reason(s)" in message and "raise --max-reject-fraction" in message
    assert abort_message(rejects, 1000, 0.05, "x") is None
