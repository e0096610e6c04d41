"""The standard-library tar writer gives webdataset's TarWriter bytes; builders never load torch."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import webdataset as wds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shards.manifest import Manifest
from shards.reader import iter_raw_tar
from shards.schema import make_key
from shards.tarstream import TarStream
from shards.writer import (
    TAR_MODE,
    TAR_MTIME,
    TAR_USER,
    Sample,
    build_index,
    encode_sample,
    write_shard,
)

ROOT = Path(__file__).resolve().parents[1]


def _wds_bytes(encoded_samples, mtime=TAR_MTIME) -> bytes:
    """What webdataset's TarWriter writes, with the writer's header fields."""
    buf = io.BytesIO()
    with wds.TarWriter(
        buf, user=TAR_USER, group=TAR_USER, mode=TAR_MODE, encoder=False, mtime=mtime
    ) as tw:
        for enc in encoded_samples:
            tw.write(enc)
    return buf.getvalue()


def _stream_bytes(encoded_samples, mtime=TAR_MTIME) -> bytes:
    buf = io.BytesIO()
    ts = TarStream(buf, mtime=mtime, mode=TAR_MODE, uname=TAR_USER, gname=TAR_USER)
    for enc in encoded_samples:
        for suffix in sorted(k for k in enc if k != "__key__"):
            ts.add(f"{enc['__key__']}.{suffix}", enc[suffix])
    ts.close()
    return buf.getvalue()


def _samples(n: int, seed: int = 0, dtype=np.float32) -> list[Sample]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        s = Sample(
            make_key(f"gal{i}"),
            rng.normal(size=(3, 64, 64)).astype(dtype),
            {"galaxy_id": f"gal{i}", "label": i % 2, "note": "x" * int(rng.integers(0, 900))},
            i % 2,
        )
        if i % 3 == 0:
            s.arc_nmgy = rng.random((3, 64, 64)).astype(dtype)
        out.append(s)
    return out


def test_writer_bytes_equal_webdataset_tarwriter(tmp_path):
    for dtype in ("float32", "float16"):
        samples = _samples(7, seed=3, dtype=np.dtype(dtype))
        path = tmp_path / dtype / "s-000000.tar"
        info = write_shard(path, samples, dtype=dtype)
        expected = _wds_bytes([encode_sample(s, dtype) for s in samples])
        assert path.read_bytes() == expected
        assert info.sha256 == hashlib.sha256(expected).hexdigest()
        assert info.bytes == len(expected)


def test_empty_shard_equals_webdataset(tmp_path):
    path = tmp_path / "s-000000.tar"
    write_shard(path, [])
    assert path.read_bytes() == _wds_bytes([])


def test_index_recorded_while_writing_equals_tarfile_parse(tmp_path):
    path = tmp_path / "s-000000.tar"
    info = write_shard(path, _samples(6, seed=1))
    written = json.loads((tmp_path / "s-000000.idx.json").read_text())
    assert written == build_index(path, info.sha256)


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=130)
_members = st.dictionaries(
    st.sampled_from(["npy", "json", "cls", "arc.npy", "mask.npy", "x.y.z"]),
    st.binary(max_size=1500),
    min_size=1,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    keys=st.lists(_names, min_size=0, max_size=5, unique=True),
    members=st.lists(_members, min_size=5, max_size=5),
    mtime=st.sampled_from([TAR_MTIME, 1234.5, 0]),
)
def test_tarstream_matches_tarwriter_on_arbitrary_members(keys, members, mtime):
    """Long names (PAX headers), float mtimes, empty and unaligned members: same bytes, and the
    offsets TarStream returns are those tarfile reads back."""
    encoded = [{"__key__": k, **m} for k, m in zip(keys, members, strict=False)]
    got = _stream_bytes(encoded, mtime)
    assert got == _wds_bytes(encoded, mtime)
    buf = io.BytesIO()
    ts = TarStream(buf, mtime=mtime, mode=TAR_MODE, uname=TAR_USER, gname=TAR_USER)
    offsets = []
    for enc in encoded:
        for suffix in sorted(k for k in enc if k != "__key__"):
            offsets.append(ts.add(f"{enc['__key__']}.{suffix}", enc[suffix]))
    ts.close()
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
        parsed = [(m.offset_data - tarfile.BLOCKSIZE, m.offset_data) for m in tf]
    assert offsets == parsed
    assert ts.offset == len(got) and len(got) % tarfile.RECORDSIZE == 0


def test_build_shards_are_tarwriter_bytes(tmp_path):
    """Every shard of a small default build equals webdataset's TarWriter re-writing its
    members (so switching writers left the build's sha256 unchanged)."""
    from builder.cli import main

    out = tmp_path / "b"
    rc = main(
        ["make-shards", "--out", str(out), "--n", "40", "--seed", "2"]
        + ["--workers", "1", "--samples-per-shard", "10", "--with-arcs", "--quiet"]
    )
    assert rc == 0
    manifest = Manifest.load(out)
    assert manifest.shards
    for entry in manifest.shards:
        path = out / entry.path
        raw = list(iter_raw_tar([str(path)]))
        enc = [{k: v for k, v in s.items() if k == "__key__" or not k.startswith("_")} for s in raw]
        assert len(enc) == entry.n_samples
        assert path.read_bytes() == _wds_bytes(enc), entry.path
        assert entry.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


_NO_TORCH_CHILD = textwrap.dedent(
    """
    import json, os, sys

    class Watch:
        # records (in this process and in forked build workers) any request for torch/webdataset
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "webdataset"):
                with open(os.environ["IMPORT_LOG"], "a") as fh:
                    fh.write(f"{os.getpid()} {name}\\n")
            return None

    sys.meta_path.insert(0, Watch())
    import builder.build, builder.tasks, builder.cli
    after_import = sorted(m for m in ("torch", "webdataset") if m in sys.modules)
    rc = builder.cli.main(["make-shards", "--out", sys.argv[1], "--n", "30", "--workers", "2",
                           "--samples-per-shard", "10", "--seed", "4", "--quiet"])
    print(json.dumps({"rc": rc, "after_import": after_import,
                      "after_build": sorted(m for m in ("torch", "webdataset") if m in sys.modules)}))
    """
)


def test_builder_never_imports_torch_or_webdataset(tmp_path):
    log = tmp_path / "imports.log"
    env = {**os.environ, "IMPORT_LOG": str(log)}
    r = subprocess.run(
        [sys.executable, "-c", _NO_TORCH_CHILD, str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res == {"rc": 0, "after_import": [], "after_build": []}
    assert not log.exists(), log.read_text()
