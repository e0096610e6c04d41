"""One-line error messages and exit codes for the command lines (``builder``, ``train``).

Both CLIs print every expected failure as one line, ``PROG: KIND: message``, and never a
traceback. This module holds what they share:

* :func:`one_line` flattens a message to one line; an exception re-raised from a DataLoader
  worker (whose message carries the worker's whole traceback) becomes its last line, the
  original error, plus which worker raised it;
* :func:`os_error` turns an :class:`OSError` into a sentence naming the file and what to do, and
  its exit status: :data:`EXIT_USAGE` (2) for a path the user gave that cannot be used (a file
  where a directory is needed, under a file, read-only, missing), :data:`EXIT_FAILURE` (1) for
  the environment failing under a valid command (disk full, file-size limit, I/O error).
"""

from __future__ import annotations

import errno
import re

__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "one_line", "os_error"]

EXIT_FAILURE = 1
"""A valid command that failed (data, invariant, disk full)."""

EXIT_USAGE = 2
"""A command that cannot run as given (config, paths, inputs)."""

_WORKER = re.compile(r"Caught (\w+) in DataLoader worker process (\d+)")

#: errno -> (what happened, advice, exit status)
_OS_ERRORS: dict[int, tuple[str, str, int]] = {
    errno.ENOSPC: (
        "no space left on device",
        "free some space and rerun; finished work is kept and resumed",
        EXIT_FAILURE,
    ),
    errno.EDQUOT: (
        "disk quota exceeded",
        "free some space and rerun; finished work is kept and resumed",
        EXIT_FAILURE,
    ),
    errno.EFBIG: (
        "file too large (file-size limit, see `ulimit -f`, or the file system's limit)",
        "raise the limit and rerun; finished work is kept and resumed",
        EXIT_FAILURE,
    ),
    errno.EIO: ("input/output error", "check the disk", EXIT_FAILURE),
    errno.EROFS: ("read-only file system", "choose a writable output directory", EXIT_USAGE),
    errno.EACCES: ("permission denied", "choose a path you can write", EXIT_USAGE),
    errno.EPERM: ("operation not permitted", "choose a path you can write", EXIT_USAGE),
    errno.EEXIST: ("exists and is not a directory", "choose a directory path", EXIT_USAGE),
    errno.ENOTDIR: (
        "a component of the path is a file, not a directory",
        "choose a directory path",
        EXIT_USAGE,
    ),
    errno.EISDIR: ("is a directory, a file is needed here", "give a file path", EXIT_USAGE),
    errno.ENOENT: ("no such file or directory", "check the path", EXIT_USAGE),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter path", EXIT_USAGE),
}


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (a DataLoader worker's traceback reduced to its error)."""
    text = str(exc).strip()
    match = _WORKER.search(text)
    if match and "Original Traceback" in text:
        last = [ln.strip() for ln in text.splitlines() if ln.strip()][-1]
        # "pkg.mod.ShardFormatError: message" -> "message"
        name = match.group(1)
        head, sep, rest = last.partition(": ")
        if sep and head.rsplit(".", 1)[-1] == name:
            last = rest
        return f"{last} (raised in DataLoader worker {match.group(2)})"
    return " ".join(ln.strip() for ln in text.splitlines() if ln.strip()) or type(exc).__name__


def os_error(exc: OSError) -> tuple[str, int]:
    """A one-line message for ``exc`` naming the file, and the exit status."""
    what, advice, status = _OS_ERRORS.get(
        exc.errno or -1, (exc.strerror or str(exc), "", EXIT_FAILURE)
    )
    files = [f for f in (exc.filename, exc.filename2) if f is not None]
    where = " -> ".join(str(f) for f in files)
    message = f"{where}: {what}" if where else what
    return (f"{message}; {advice}" if advice else message), status
