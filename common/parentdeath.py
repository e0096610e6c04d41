"""Worker processes that exit when their parent dies (no orphans holding memory under PID 1).

A pool worker blocks reading its task queue; if only the main process is killed (the OOM
killer, ``kill -9``), nothing closes that queue and the worker would idle forever. Call
:func:`exit_with_parent` as the pool's ``initializer``: on Linux it asks the kernel for SIGKILL
when the parent dies (``prctl(PR_SET_PDEATHSIG)``), and on every platform it starts a daemon
thread that exits the process once ``os.getppid()`` no longer is the parent's pid.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

__all__ = ["exit_with_parent", "set_parent_death_signal"]

PR_SET_PDEATHSIG = 1
"""``prctl`` option: signal to deliver to this process when its parent thread dies."""

#: Seconds between two checks of the watchdog thread.
WATCHDOG_INTERVAL_S = 1.0


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Linux: have the kernel send ``sig`` to this process when its parent dies.

    Returns False where ``prctl`` is unavailable (the watchdog thread still works there).
    """
    if not sys.platform.startswith("linux"):
        return False
    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    return False


def _watchdog(parent_pid: int, interval_s: float) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)  # the parent is gone; nothing here is worth finishing
        time.sleep(interval_s)


def exit_with_parent(parent_pid: int, interval_s: float = WATCHDOG_INTERVAL_S) -> None:
    """Pool initializer: end this worker when ``parent_pid`` (its parent) dies.

    Parameters
    ----------
    parent_pid : int
        ``os.getpid()`` of the process that creates the pool (passed via ``initargs``).
    interval_s : float
        Polling interval of the portable watchdog thread.
    """
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(
        target=_watchdog, args=(parent_pid, interval_s), name="parent-watchdog", daemon=True
    ).start()
