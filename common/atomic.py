"""Atomic file writes: write to a temporary name in the same directory, fsync, then rename."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def tmp_path_for(path: Path) -> Path:
    """Temporary sibling of ``path`` unique to this process (``.NAME.tmp-PID``)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling for writing; on success fsync and rename it over ``path``.

    On an exception the temporary file is removed and ``path`` is untouched, so readers only ever
    see complete files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(path)
    try:
        with open(tmp, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomically replace ``path`` with UTF-8 ``text``."""
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_tmp(directory: str | Path) -> list[Path]:
    """Delete temporary files left by a crashed writer (``.*.tmp-*``); return what was removed."""
    removed = []
    d = Path(directory)
    if not d.is_dir():
        return removed
    for p in d.rglob(".*.tmp-*"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed
