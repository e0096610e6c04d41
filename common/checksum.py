"""sha256 of a file, streamed (shards are tens of MB; never read whole)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path, bufsize: int = 1 << 22) -> str:
    """Hex sha256 of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(bufsize):
            h.update(chunk)
    return h.hexdigest()
