"""Cost of the read-path integrity checks (issue 16): loader samples/s with and without them.

The checks on the indexed read path are: the offset index tiles the tar (on open), each member's
tar header (checksum, name, size, position) and each member's CRC32 (index version 2). The CRC32
is the only one that reads every byte; ``IndexedShard(check_crc=False)`` switches it off, so the
two arms differ exactly by it. Both arms run in the same process, interleaved (on, off, on,
off, ...) so that load from other processes hits both alike; medians of ``--repeats`` passes after
one warm-up pass of each (page cache hot).

Arms
----
reader_crc / reader_nocrc   ``IndexedShard.iter_samples(decode_meta=False)`` over every shard.
loader_crc / loader_nocrc   ``train.data.make_loader(training=False)`` (read, decode, collate,
                            normalise, to torch; ``num_workers=0``).

Usage::

    python benchmarks/bench_integrity.py [--n-shards 4] [--per-shard 500] [--repeats 5]
        [--workdir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchutil import median, write_json  # noqa: E402

import train.stages  # noqa: E402
from shards.manifest import Manifest  # noqa: E402
from shards.reader import IndexedShard  # noqa: E402
from tests.datasets import make_tiny_dataset  # noqa: E402
from train.data import DataConfig, make_loader  # noqa: E402


def _reader_pass(root: Path, check_crc: bool) -> int:
    n = 0
    for entry in Manifest.load(root).shards:
        for _ in IndexedShard(root / entry.path, check_crc=check_crc).iter_samples(
            decode_meta=False
        ):
            n += 1
    return n


def _loader_pass(root: Path, check_crc: bool) -> int:
    original = train.stages.IndexedShard
    train.stages.IndexedShard = functools.partial(IndexedShard, check_crc=check_crc)
    try:
        cfg = DataConfig(batch_size=256)
        loader = make_loader(root, "train", cfg, epoch=0, rank=0, world_size=1, training=False)
        return sum(len(b["key"]) for b in loader)
    finally:
        train.stages.IndexedShard = original


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-shards", type=int, default=4)
    ap.add_argument("--per-shard", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workdir", help="where to write the dataset (default: a temp dir)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-integrity-"))
    root = work / "data"
    if not (root / "manifest.json").is_file():
        make_tiny_dataset(root, {"train": (args.per_shard,) * args.n_shards})
    times: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    arms = {
        "reader_crc": lambda: _reader_pass(root, True),
        "reader_nocrc": lambda: _reader_pass(root, False),
        "loader_crc": lambda: _loader_pass(root, True),
        "loader_nocrc": lambda: _loader_pass(root, False),
    }
    for fn in arms.values():  # warm-up: page cache, imports, header caches
        fn()
    for _ in range(args.repeats):
        for name, fn in arms.items():
            t0 = time.perf_counter()
            counts[name] = fn()
            times.setdefault(name, []).append(time.perf_counter() - t0)
    rates = {name: counts[name] / median(ts) for name, ts in times.items()}
    write_json(
        args.json,
        {
            "n_samples": counts["loader_crc"],
            "repeats": args.repeats,
            "samples_per_s_median": {k: round(v, 1) for k, v in rates.items()},
            "seconds": {k: [round(t, 4) for t in ts] for k, ts in times.items()},
            "crc_cost_reader": round(1 - rates["reader_crc"] / rates["reader_nocrc"], 4),
            "crc_cost_loader": round(1 - rates["loader_crc"] / rates["loader_nocrc"], 4),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
