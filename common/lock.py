"""Exclusive locks on output directories: one writer per build or run directory.

A :class:`DirLock` is a lock file (``DIR/.lock`` by default) holding its owner's pid, host,
start time and command. It is taken with ``fcntl.flock`` where the file system supports it
(the kernel drops the lock when the owner dies, however it dies); elsewhere (some network file
systems) the file is created with ``O_EXCL`` and a lock left by a dead process on this host is
detected (its pid no longer exists) and replaced. A second writer either refuses at once with a
:class:`LockError` naming the owner, or, with ``wait=True``, waits until the lock is free.

:func:`pid_alive` is also what :func:`common.atomic.remove_stale_tmp` uses to sweep only the
temporary files of dead writers (temporary names carry the writer's pid).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "DirLock", "LockError", "pid_alive"]

LOCK_NAME = ".lock"
"""File name of the lock inside the locked directory."""

#: errnos meaning "this file system does not do flock": fall back to O_EXCL.
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL}


class LockError(RuntimeError):
    """The directory is locked by another live process (the message names it)."""


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host (zombies count as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _owner_text(info: dict[str, Any] | None) -> str:
    if not info:
        return "an unknown process (the lock file is empty or unreadable)"
    started = info.get("started_utc", "?")
    cmd = info.get("command", "")
    return f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, started {started}" + (
        f" ({cmd})" if cmd else ""
    )


class DirLock:
    """Exclusive lock on ``directory`` (a context manager; see the module docstring).

    Parameters
    ----------
    directory : str or Path
        Directory to lock; created if missing.
    what : str
        What holds it, for messages (``"build"``, ``"training run"``).
    wait : bool
        Wait for the lock instead of refusing.
    poll_s : float
        Polling interval while waiting.
    timeout_s : float, optional
        Give up waiting after this long (``None``: wait forever).
    name : str
        Lock file name inside ``directory``.
    """

    def __init__(
        self,
        directory: str | Path,
        what: str = "writer",
        *,
        wait: bool = False,
        poll_s: float = 0.5,
        timeout_s: float | None = None,
        name: str = LOCK_NAME,
    ):
        self.directory = Path(directory)
        self.path = self.directory / name
        self.what, self.wait, self.poll_s, self.timeout_s = what, wait, poll_s, timeout_s
        self._fd: int | None = None
        self._exclusive_file = False

    # ------------------------------------------------------------------ info
    def _info(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "what": self.what,
            "command": " ".join(
                os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv)
            )[:200],
        }

    def owner(self) -> dict[str, Any] | None:
        """The recorded owner of the lock file, or None if absent or unreadable."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _refusal(self) -> LockError:
        return LockError(
            f"{self.directory} is in use by another {self.what}: {_owner_text(self.owner())}; "
            f"wait for it to finish (or pass --wait), or choose another output directory "
            f"(lock file {self.path})"
        )

    # -------------------------------------------------------------- acquire
    def _write_info(self, fd: int) -> None:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(self._info(), sort_keys=True) + "\n").encode())
        os.fsync(fd)

    def _try_flock(self) -> bool | None:
        """True: locked; False: held by another; None: no flock here (use O_EXCL)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as exc:
            os.close(fd)
            if exc.errno in _NO_FLOCK:
                return None
            raise
        # The holder before us may have unlinked the file on release: lock the current inode.
        try:
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return self._try_flock()
        self._write_info(fd)
        self._fd = fd
        return True

    def _try_exclusive_file(self) -> bool:
        """O_EXCL lock file; a lock of a dead process on this host is stale and replaced."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            info = self.owner()
            stale = (
                info is not None
                and info.get("host") == socket.gethostname()
                and not pid_alive(int(info.get("pid", -1)))
            )
            if stale:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                return self._try_exclusive_file()
            return False
        self._write_info(fd)
        self._fd, self._exclusive_file = fd, True
        return True

    def _try(self) -> bool:
        if fcntl is not None:
            got = self._try_flock()
            if got is not None:
                return got
        return self._try_exclusive_file()

    def acquire(self) -> DirLock:
        """Take the lock (waiting if ``wait``); raise :class:`LockError` if it is held."""
        if self._fd is not None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while not self._try():
            if not self.wait or (deadline is not None and time.monotonic() > deadline):
                raise self._refusal()
            time.sleep(self.poll_s)
        return self

    def release(self) -> None:
        """Remove the lock file and drop the lock (unlink first, while still holding it)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def __enter__(self) -> DirLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
