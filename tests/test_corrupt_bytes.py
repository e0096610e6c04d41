"""Property tests: readers on corrupt bytes fail only with their documented error types.

Whatever bytes a shard or a parent stamp holds, the readers either return well-formed data or
raise :class:`shards.reader.ShardFormatError` / :class:`builder.validate.BadRecord`, never another
exception, never a hang, and never a sample with the wrong shape or non-finite pixels unflagged.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.parents.parquet import NPZ_KEYS, decode_stamp_npz, encode_stamp_npz
from builder.validate import BadRecord
from shards.reader import IndexedShard, ShardFormatError, decode_sample, iter_tar_samples
from shards.schema import STAMP_SHAPE, make_key
from shards.writer import Sample, write_shard

SETTINGS = settings(
    max_examples=int(os.environ.get("CORRUPT_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@functools.cache
def shard_bytes() -> tuple[bytes, bytes]:
    """A valid 3-sample shard and its index, as bytes."""
    d = Path(tempfile.mkdtemp(prefix="corrupt-"))
    rng = np.random.default_rng(0)
    samples = [
        Sample(
            make_key(f"g{i}"),
            rng.normal(size=STAMP_SHAPE).astype(np.float32),
            {"galaxy_id": f"g{i}", "label": i % 2},
            i % 2,
        )
        for i in range(3)
    ]
    write_shard(d / "s-000000.tar", samples)
    out = (d / "s-000000.tar").read_bytes(), (d / "s-000000.idx.json").read_bytes()
    shutil.rmtree(d)
    return out


def _check(sample: dict) -> None:
    assert sample["image"].shape == STAMP_SHAPE
    assert sample["label"] in (0, 1)
    assert isinstance(sample["meta"], dict)


corruptions = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("zero"), st.integers(0, 10**6), st.integers(1, 4096)),
)


def _corrupt(data: bytes, how: tuple[str, int, int]) -> bytes:
    kind, pos, arg = how
    if not data:
        return data
    pos %= len(data)
    buf = bytearray(data)
    if kind == "flip":
        buf[pos] ^= arg
    elif kind == "truncate":
        del buf[pos:]
    else:
        buf[pos : pos + arg] = bytes(min(arg, len(buf) - pos))
    return bytes(buf)


@SETTINGS
@given(how=st.lists(corruptions, min_size=1, max_size=3))
def test_streaming_reader_on_corrupt_shards(tmp_path, how):
    data = shard_bytes()[0]
    for h in how:
        data = _corrupt(data, h)
    path = tmp_path / "c-000000.tar"
    path.write_bytes(data)
    try:
        for sample in iter_tar_samples(str(path)):
            _check(sample)
    except ShardFormatError as exc:
        assert "c-000000.tar" in str(exc)


@SETTINGS
@given(how=st.lists(corruptions, min_size=1, max_size=3), corrupt_index=st.booleans())
def test_indexed_reader_on_corrupt_shards(tmp_path, how, corrupt_index):
    data, index = shard_bytes()
    for h in how:
        if corrupt_index:
            index = _corrupt(index, h)
        else:
            data = _corrupt(data, h)
    path = tmp_path / "c-000000.tar"
    path.write_bytes(data)
    (tmp_path / "c-000000.idx.json").write_bytes(index)
    try:
        for sample in IndexedShard(path).iter_samples():
            _check(sample)
    except ShardFormatError as exc:
        assert "c-000000" in str(exc)


@SETTINGS
@given(
    raw=st.dictionaries(
        st.sampled_from(["npy", "json", "cls", "pickle", "pyd", "arc.npy", "txt"]),
        st.binary(max_size=300),
        max_size=5,
    )
)
def test_decode_sample_on_arbitrary_members(raw):
    raw = {"__key__": "gk", "__url__": "x.tar", **raw}
    try:
        _check(decode_sample(raw))
    except ShardFormatError as exc:
        assert "x.tar" in str(exc)  # the error names the shard


@functools.cache
def stamp_bytes() -> bytes:
    rng = np.random.default_rng(1)
    return encode_stamp_npz(rng.normal(size=STAMP_SHAPE).astype(np.float32) + 1.0, NPZ_KEYS)


@SETTINGS
@given(how=st.lists(corruptions, min_size=1, max_size=3))
def test_npz_stamp_decoder_on_corrupt_bytes(how):
    data = stamp_bytes()
    for h in how:
        data = _corrupt(data, h)
    try:
        stamp = decode_stamp_npz(data)
    except BadRecord as exc:
        assert exc.reason in {
            "corrupt_stamp",
            "bad_shape",
            "missing_band",
            "nonfinite_pixels",
            "zero_band",
        }
    else:
        assert stamp.shape == STAMP_SHAPE and stamp.dtype == np.float32
        assert np.isfinite(stamp).all()


def test_npz_decoder_refuses_pickled_object_arrays():
    buf = io.BytesIO()
    np.savez(
        buf,
        image_g=np.array([object()], dtype=object),
        image_r=np.zeros((64, 64)),
        image_z=np.zeros((64, 64)),
    )
    with pytest.raises(BadRecord) as info:
        decode_stamp_npz(buf.getvalue())
    assert info.value.reason == "corrupt_stamp"
