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


def tmp_owner_pid(path: str | Path) -> int | None:
    """The pid in a temporary name made by :func:`tmp_path_for` (``.NAME.tmp-PID``), else None."""
    _, sep, tail = Path(path).name.rpartition(".tmp-")
    return int(tail) if sep and tail.isdigit() else None


def remove_stale_tmp(directory: str | Path) -> list[Path]:
    """Delete temporary files left by crashed writers (``.*.tmp-PID``); return what was removed.

    Only files whose writer is dead are removed: a temporary name whose pid is a live process on
    this host (another build, an orphaned worker still finishing) is left alone, and so is a name
    without a pid. Call it only while holding the directory's :class:`common.lock.DirLock`.
    """
    from common.lock import pid_alive

    removed = []
    d = Path(directory)
    if not d.is_dir():
        return removed
    for p in d.rglob(".*.tmp-*"):
        pid = tmp_owner_pid(p)
        if pid is None or (pid != os.getpid() and pid_alive(pid)):
            continue
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed
