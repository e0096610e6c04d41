"""Peers of our loader for benchmarks/bench_loader.py: MosaicML streaming (MDS) and litdata.

Both get the very samples of our shards (converted once, not timed) and are iterated in one
process with their own readers; every sample then goes through exactly our per-batch work:
``train.collate.collate`` with random dihedral symmetries (the augmentation), the in-place annulus
normalisation and the conversion to torch (``train.stages``'s ``_make_batches`` + ``to_torch``).
``*_raw`` variants iterate the peer's samples without that work (its reading + decoding alone).
A peer that is not installed is skipped with a message (``pip install -e .[bench]``).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from shards.reader import iter_tar_samples
from train.collate import collate
from train.preprocess import PreprocessConfig, normalize, random_symmetries
from train.stages import to_torch

BATCH = 64
PEERS = {"mosaicml_streaming": "streaming", "litdata": "litdata"}  # name -> import name


def available(name: str) -> str | None:
    """None if peer ``name`` imports, else the reason it is skipped."""
    try:
        __import__(PEERS[name])
    except Exception as exc:  # ImportError, or a broken dependency of the peer
        return f"{name} not usable ({type(exc).__name__}: {exc}); pip install -e .[bench]"
    return None


def our_samples(urls: list[str]) -> Iterator[dict[str, Any]]:
    for s in iter_tar_samples(urls):
        yield {"key": s["__key__"], "image": s["image"], "label": int(s["label"]),
               "meta": json.dumps(s["meta"])}  # fmt: skip


def _as_ours(key: str, image: np.ndarray, label: int, meta: str) -> dict[str, Any]:
    return {"__key__": key, "__url__": "peer", "image": image, "label": label,
            "meta": json.loads(meta)}  # fmt: skip


def batches(samples: Iterable[dict[str, Any]], seed: int = 0) -> int:
    """Our per-batch work on a peer's samples; returns the sample count."""
    cfg = PreprocessConfig()
    rng = np.random.default_rng(seed)
    buf: list[dict[str, Any]] = []
    n = 0

    def flush() -> None:
        batch = collate(buf, random_symmetries(len(buf), rng))
        normalize(batch["image"], cfg, inplace=True)
        to_torch(batch)

    for s in samples:
        buf.append(s)
        if len(buf) == BATCH:
            flush()
            n += len(buf)
            buf = []
    if buf:
        flush()
        n += len(buf)
    return n


# --------------------------------------------------------------------------- MosaicML streaming


def convert_mds(urls: list[str], out: Path) -> None:
    from streaming import MDSWriter

    if (out / "index.json").exists():
        return
    shutil.rmtree(out, ignore_errors=True)
    columns = {"key": "str", "image": "ndarray:float32:3,64,64", "label": "int", "meta": "str"}
    with MDSWriter(out=str(out), columns=columns, compression=None, size_limit="64mb") as w:
        for s in our_samples(urls):
            w.write(s)


def iter_mds(out: Path) -> Iterator[dict[str, Any]]:
    from streaming import StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    ds = StreamingDataset(local=str(out), shuffle=False, batch_size=BATCH)
    for s in ds:
        yield _as_ours(s["key"], s["image"], s["label"], s["meta"])


# --------------------------------------------------------------------------- litdata


def _lit_fn(url: str):
    yield from our_samples([url])


def convert_litdata(urls: list[str], out: Path) -> None:
    from litdata import optimize

    if (out / "index.json").exists():
        return
    shutil.rmtree(out, ignore_errors=True)
    optimize(fn=_lit_fn, inputs=urls, output_dir=str(out), chunk_bytes="64MB", num_workers=1,
             verbose=False)  # fmt: skip


def iter_litdata(out: Path) -> Iterator[dict[str, Any]]:
    from litdata import StreamingDataset

    ds = StreamingDataset(input_dir=str(out), shuffle=False)
    for s in ds:
        image = s["image"]
        if not isinstance(image, np.ndarray):  # litdata hands numpy back as numpy; be safe
            image = np.asarray(image)
        yield _as_ours(s["key"], image, int(s["label"]), s["meta"])


# --------------------------------------------------------------------------- methods


def peer_methods(urls: list[str], work: Path) -> dict[str, Callable[[int], int]]:
    """Timed methods of every usable peer (converting their data first, untimed)."""
    out: dict[str, Callable[[int], int]] = {}
    specs = {
        "mosaicml_streaming": (convert_mds, iter_mds, work / "mds"),
        "litdata": (convert_litdata, iter_litdata, work / "litdata"),
    }
    for name, (convert, iterate, where) in specs.items():
        why = available(name)
        if why is not None:
            print(f"skipping peer {why}", file=sys.stderr)
            continue
        print(f"converting to {name} in {where}", file=sys.stderr)
        convert(urls, where)
        out[name] = lambda e, it=iterate, w=where: batches(it(w), seed=e)
        out[f"{name}_raw"] = lambda _e, it=iterate, w=where: sum(1 for _ in it(w))
    return out
