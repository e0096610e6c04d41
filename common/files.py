"""What kind of file a path names, found without opening it (a FIFO would block ``open``).

:func:`not_regular_reason` and :func:`require_regular_file` are the one place that tells a
regular file from a FIFO, socket, device, directory, dangling symlink or symlink loop; the
parent readers (``--parents``) and ``builder inspect`` use them before opening anything.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["NotRegularFileError", "file_kind", "not_regular_reason", "require_regular_file"]


class NotRegularFileError(ValueError):
    """A path that should be a regular file is missing or is something else (a FIFO, ...)."""


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def file_kind(path: str | Path) -> str:
    """``"regular file"``, ``"a FIFO (named pipe)"``, ``"a dangling symlink"``... of ``path``.

    Symlinks are followed; nothing is opened, so a FIFO never blocks.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a dangling symlink" if os.path.islink(path) else "missing"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop"
        return f"not accessible ({exc.strerror})"
    if stat.S_ISREG(mode):
        return "regular file"
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "not a regular file"


def not_regular_reason(path: str | Path) -> str | None:
    """``None`` for a regular file (or a symlink to one), else why it is not one."""
    kind = file_kind(path)
    return None if kind == "regular file" else kind


def require_regular_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` if it is a regular file, else raise :class:`NotRegularFileError`.

    Parameters
    ----------
    path : str or Path
        The path to check (symlinks followed).
    what : str
        What the file is for, named in the message (``"parent Parquet file"``).
    """
    reason = not_regular_reason(path)
    if reason is not None:
        raise NotRegularFileError(
            f"{what} {path} is {reason}, not a regular file; refusing to open it"
        )
    return Path(path)
