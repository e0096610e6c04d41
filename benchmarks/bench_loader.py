"""Loader throughput per worker: our pipeline against raw reads, tarfile, stock webdataset, Parquet.

Builds (or reuses, ``--shards DIR``) a dataset of float32 (3, 64, 64) samples written with the real
shard writer plus a manifest, and a Parquet file of the same samples in the previous team's layout
(one row per sample, ``stamp_npz`` = ``np.savez_compressed`` bytes with ``image_g/r/z``). Every
method runs in a single process (one worker) over all samples; the median of ``--repeats`` timed
passes after one warm-up pass (page cache hot for everyone) is reported.

Methods
-------
raw_read          ``f.read()`` of every whole shard (the I/O the indexed fast path needs).
raw_read_chunked  ``readinto`` 1 MiB chunks of a reused buffer (the ceiling of plain file reads).
tarfile           ``tarfile`` iteration reading every member's bytes.
wds_decode        ``wds.WebDataset(...).decode()`` with webdataset's stock handlers (trusted data
                  only: its default handlers would unpickle ``.pyd``).
parquet_npz       pyarrow row batches, ``np.load`` of each row's ``stamp_npz``, stacked to (3,64,64).
ours_train        ``train.data.make_loader(training=True)``: read, decode, shuffle, collate,
                  normalise, augment, to torch (``num_workers=0``).
ours_eval         the same with ``training=False`` (no shuffle, no augmentation).
mosaicml_streaming, litdata
                  the same samples converted (untimed) to MDS / litdata ``optimize`` chunks,
                  read by the peer's ``StreamingDataset`` in one process, then our batch work
                  (collate + dihedral augmentation + annulus normalisation + to torch);
                  ``*_raw``: the peer's iteration alone (benchmarks/loader_peers.py). A peer that
                  is not installed is skipped with a message (``pip install -e .[bench]``).

``--json`` holds ``ours_train`` (samples/s) and ``peers`` (name -> samples/s, same batch work).

Usage::

    python benchmarks/bench_loader.py [--shards DIR | --workdir DIR] [--n-shards 20]
        [--per-shard 1000] [--repeats 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import webdataset as wds

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shards.manifest import Manifest, ShardEntry  # noqa: E402
from shards.reader import iter_tar_samples  # noqa: E402
from shards.schema import BANDS, CATALOG_FIELDS, make_key, shard_name  # noqa: E402
from shards.writer import Sample, write_shard  # noqa: E402
from train.data import DataConfig, make_loader  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loader_peers import PEERS as PEER_NAMES  # noqa: E402
from loader_peers import peer_methods  # noqa: E402

PARQUET_NAME = "seed_layout.parquet"
SPLIT = "train"


# --------------------------------------------------------------------------- dataset


def _fake_sample(rng: np.random.Generator, gid: int) -> Sample:
    label = gid % 2
    galaxy_id = f"bench{gid:08d}"
    meta = {
        "galaxy_id": galaxy_id,
        "split": SPLIT,
        "label": label,
        "role": "host" if label else "control",
        **{f: float(rng.uniform(0.5, 2.0)) for f in CATALOG_FIELDS},
    }
    if label:
        meta["injection"] = {"theta_e_arcsec": float(rng.uniform(1, 3)), "source_mag": 23.1}
    image = rng.normal(0.0, 0.01, size=(3, 64, 64)).astype(np.float32)
    return Sample(make_key(galaxy_id), image, meta, label)


def build_dataset(root: Path, n_shards: int, per_shard: int, seed: int = 0) -> None:
    """Write ``n_shards`` shards of ``per_shard`` samples, a manifest and the Parquet twin."""
    rng = np.random.default_rng(seed)
    manifest = Manifest(seed=seed, status="complete", config={"benchmark": True})
    writer = None
    for index in range(n_shards):
        samples = [_fake_sample(rng, index * per_shard + j) for j in range(per_shard)]
        rel = shard_name(SPLIT, index)
        info = write_shard(root / rel, samples)
        manifest.shards.append(ShardEntry.from_info(info, SPLIT, index, root))
        table = _parquet_table(samples)
        if writer is None:
            writer = pq.ParquetWriter(root / PARQUET_NAME, table.schema)
        writer.write_table(table)
        print(f"  built shard {index + 1}/{n_shards}", file=sys.stderr)
    if writer is not None:
        writer.close()
    manifest.recompute_splits()
    manifest.save(root)


def _npz_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{f"image_{b}": image[i] for i, b in enumerate(BANDS)})
    return buf.getvalue()


def _parquet_table(samples: list[Sample]) -> pa.Table:
    cols: dict[str, list] = {
        "key": [s.key for s in samples],
        "galaxy_id": [s.meta["galaxy_id"] for s in samples],
        "label": [s.label for s in samples],
        "stamp_npz": [_npz_bytes(s.image_nmgy) for s in samples],
    }
    for f in CATALOG_FIELDS:
        cols[f] = [s.meta[f] for s in samples]
    return pa.table(cols)


def write_parquet_from_shards(root: Path) -> None:
    """Parquet twin of an existing dataset (for ``--shards DIR`` without one)."""
    writer = None
    for entry in Manifest.load(root).shards_for(SPLIT):
        samples = [
            Sample(s["__key__"], s["image"], s["meta"], s["label"])
            for s in iter_tar_samples(str(root / entry.path))
        ]
        table = _parquet_table(samples)
        if writer is None:
            writer = pq.ParquetWriter(root / PARQUET_NAME, table.schema)
        writer.write_table(table)
    if writer is not None:
        writer.close()


# --------------------------------------------------------------------------- methods


def run_raw_read(urls: list[str], root: Path) -> int:
    total = 0
    for url in urls:
        with open(url, "rb") as fh:
            total += len(fh.read())
    return total


def run_raw_read_chunked(urls: list[str], root: Path) -> int:
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    total = 0
    for url in urls:
        with open(url, "rb", buffering=0) as fh:
            while n := fh.readinto(view):
                total += n
    return total


def run_tarfile(urls: list[str], root: Path) -> int:
    n = 0
    for url in urls:
        with tarfile.open(url, "r:") as tf:
            for member in tf:
                fh = tf.extractfile(member)
                if fh is not None:
                    fh.read()
                    n += 1
    return n


def run_wds_decode(urls: list[str], root: Path) -> int:
    ds = wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode()
    n = 0
    for sample in ds:
        assert sample["npy"].shape == (3, 64, 64)
        n += 1
    return n


def run_parquet(urls: list[str], root: Path) -> int:
    n = 0
    pf = pq.ParquetFile(root / PARQUET_NAME)
    for batch in pf.iter_batches(batch_size=1024, columns=["key", "label", "stamp_npz"]):
        labels = batch.column("label").to_pylist()
        for blob, _label in zip(batch.column("stamp_npz").to_pylist(), labels, strict=True):
            with np.load(io.BytesIO(blob)) as z:
                image = np.stack([z[f"image_{b}"] for b in BANDS])
            assert image.shape == (3, 64, 64)
            n += 1
    return n


def _run_ours(root: Path, training: bool, epoch: int) -> int:
    cfg = DataConfig(batch_size=64, num_workers=0, shuffle_buffer=1000, augment=True)
    loader = make_loader(root, SPLIT, cfg, epoch=epoch, rank=0, world_size=1, training=training)
    n = 0
    for batch in loader:
        n += int(batch["weight"].sum())
    return n


def _timed(fn: Callable[[int], int], n_samples: int, repeats: int) -> dict[str, float]:
    fn(0)  # warm-up: page cache, lazy imports
    rates, cpu_rates = [], []
    for r in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn(r + 1)
        rates.append(n_samples / (time.perf_counter() - t0))
        cpu_rates.append(n_samples / (time.process_time() - c0))
    return {
        "samples_per_s": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        # Samples per CPU-second of this process (user + system): steadier on a shared machine.
        "samples_per_cpu_s": statistics.median(cpu_rates),
        "runs": repeats,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=Path, help="existing dataset root (manifest.json inside)")
    ap.add_argument(
        "--workdir", type=Path, help="build (and keep) the dataset here (default: temp dir)"
    )
    ap.add_argument("--n-shards", type=int, default=20)
    ap.add_argument("--per-shard", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--methods", default="all", help="comma-separated subset of the methods")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--no-peers", action="store_true", help="skip MosaicML streaming and litdata")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        if args.shards is not None:
            root = args.shards
            if not (root / PARQUET_NAME).exists():
                write_parquet_from_shards(root)
        else:
            # --workdir keeps the built dataset for later runs (reused when its size matches).
            root = (
                args.workdir / f"bench_{args.n_shards}x{args.per_shard}"
                if args.workdir
                else Path(tmp)
            )
            if not (root / "manifest.json").exists():
                print(
                    f"building {args.n_shards} x {args.per_shard} samples in {root}",
                    file=sys.stderr,
                )
                build_dataset(root, args.n_shards, args.per_shard)
        manifest = Manifest.load(root)
        urls = [str(root / e.path) for e in manifest.shards_for(SPLIT)]
        n_samples = manifest.expected(SPLIT)
        methods: dict[str, Callable[[int], int]] = {
            "raw_read": lambda _e: run_raw_read(urls, root),
            "raw_read_chunked": lambda _e: run_raw_read_chunked(urls, root),
            "tarfile": lambda _e: run_tarfile(urls, root),
            "wds_decode": lambda _e: run_wds_decode(urls, root),
            "parquet_npz": lambda _e: run_parquet(urls, root),
            "ours_train": lambda e: _run_ours(root, True, e),
            "ours_eval": lambda e: _run_ours(root, False, e),
        }
        wanted_all = args.methods == "all" or any(
            m.startswith(tuple(PEER_NAMES)) for m in args.methods.split(",")
        )
        if wanted_all and not args.no_peers:
            methods.update(peer_methods(urls, root / "peers"))
        if args.methods != "all":
            wanted = args.methods.split(",")
            unknown = set(wanted) - set(methods)
            if unknown:
                ap.error(f"unknown methods {sorted(unknown)}; choose from {sorted(methods)}")
            methods = {k: v for k, v in methods.items() if k in wanted}
        results = {}
        for name, fn in methods.items():
            results[name] = _timed(fn, n_samples, args.repeats)
            res = results[name]
            print(
                f"{name:>17}: {res['samples_per_s']:>9.0f} samples/s "
                f"({res['samples_per_cpu_s']:.0f} per CPU-s)",
                file=sys.stderr,
            )

    def ratio(a: str, b: str, field: str) -> float | None:
        if a in results and b in results:
            return results[a][field] / results[b][field]
        return None

    ratios = {
        f"{m}_vs_{ref}{suffix}": ratio(m, ref, field)
        for m in ("ours_train", "ours_eval")
        for ref in ("raw_read", "raw_read_chunked", "parquet_npz", "wds_decode")
        for suffix, field in (("", "samples_per_s"), ("_cpu", "samples_per_cpu_s"))
    }
    report = {
        "n_samples": n_samples,
        "n_shards": len(urls),
        "repeats": args.repeats,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "results": results,
        "ratios": {k: v for k, v in ratios.items() if v is not None},
    }
    if "ours_train" in results:
        report["ours_train"] = results["ours_train"]["samples_per_s"]
    report["peers"] = {p: results[p]["samples_per_s"] for p in PEER_NAMES if p in results}
    report["peers_raw"] = {
        p: results[f"{p}_raw"]["samples_per_s"] for p in PEER_NAMES if f"{p}_raw" in results
    }
    if "ours_train" in results:
        report["ratios"].update(
            {f"ours_train_vs_{p}": report["ours_train"] / v for p, v in report["peers"].items()}
        )
    for k, v in report["ratios"].items():
        print(f"{k:>32}: {v:.2f}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    else:
        print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
