"""The ``dask`` executor: the build's deterministic tasks on a Dask ``distributed`` cluster.

Registered in :mod:`builder.executors` as ``dask`` and imported only when that name is used, so
nothing else imports dask. With a scheduler address it connects to a running cluster (a
dask-jobqueue ``SLURMCluster``, ``dask scheduler`` + ``dask worker`` by hand, ...); without one
it starts a :class:`distributed.LocalCluster` of ``workers`` single-threaded worker processes on
127.0.0.1 and closes it on shutdown.

Tasks are submitted with ``pure=False`` (no hashing of their arguments; every call runs) and
their results are consumed in submission order by :func:`builder.executors.submit_ordered`, so
the output is the same bytes as a local build. A task lost with its worker is rerun by the
scheduler on another worker; shard tasks are idempotent (each shard is written under a
per-process temporary name and renamed into place), so the rerun gives the same bytes. A task
that keeps killing its workers (``distributed.scheduler.allowed-failures``, default 3) ends the
build with an :class:`~builder.errors.ExecutorError` naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from builder.errors import ExecutorError


class DaskFuture:
    """A ``distributed.Future`` whose ``result()`` turns a lost-worker failure into ExecutorError."""

    def __init__(self, future: Any):
        self._future = future

    def result(self, timeout: float | None = None) -> Any:
        from distributed import KilledWorker

        try:
            return self._future.result(timeout=timeout)
        except KilledWorker as exc:
            raise ExecutorError(
                f"Dask gave up on a task whose workers kept dying ({exc}); see the worker logs "
                "(out of memory? give the workers more memory or run fewer per node)"
            ) from None

    def cancel(self) -> bool:
        self._future.cancel()
        return True

    def done(self) -> bool:
        return self._future.done()


class DaskExecutor(Executor):
    """``submit``/``result`` on a Dask cluster; use as a context manager or call ``shutdown``.

    Parameters
    ----------
    workers : int
        Worker processes of the LocalCluster started when ``scheduler`` is None (ignored
        otherwise: the cluster has what it has).
    scheduler : str, optional
        Address of a running scheduler, e.g. ``tcp://10.0.0.5:8786`` or the path of a
        scheduler file (``--scheduler-file`` of ``dask scheduler``; a name ending in ``.json``).
    """

    def __init__(self, workers: int = 1, scheduler: str | None = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - dask is a dependency
            raise ExecutorError(f"--executor dask needs dask.distributed ({exc})") from None
        self.cluster = None
        try:
            if scheduler is None:
                self.cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                )
                self.client = Client(self.cluster)
            elif scheduler.endswith(".json"):
                self.client = Client(scheduler_file=scheduler, timeout="60s")
            else:
                self.client = Client(scheduler, timeout="60s")
        except OSError as exc:
            if self.cluster is not None:
                self.cluster.close()
            where = scheduler or "a LocalCluster"
            raise ExecutorError(f"cannot connect to the Dask scheduler at {where}: {exc}") from None

    @property
    def scheduler_address(self) -> str:
        return self.client.scheduler.address

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> DaskFuture:  # type: ignore[override]
        return DaskFuture(self.client.submit(fn, *args, pure=False, **kwargs))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
