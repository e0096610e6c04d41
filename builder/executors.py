"""The executor seam: every parallel stage of the build runs on one ``Executor``-like object.

The scan (:mod:`builder.scan`), the shard tasks (:mod:`builder.build`) and the synthetic-sky
render (:mod:`builder.parents.synthetic`) only call ``executor.submit(fn, *args)`` and then
``future.result()`` on what it returns, with module-level functions and picklable arguments, so
any :class:`concurrent.futures.Executor` works, and so does anything offering the same two calls
(a Dask ``distributed.Client``, for instance).

Executors are made by name from :data:`EXECUTORS` (name -> factory taking the worker count and
an optional scheduler address):

* ``local``: a :class:`~concurrent.futures.ProcessPoolExecutor` with ``workers`` processes
  (in-process when ``workers == 1``);
* ``serial``: everything in the calling process, in submission order;
* ``dask``: a Dask ``distributed`` cluster (:mod:`builder.executors_dask`, imported only when
  used): the scheduler at ``scheduler`` if given, else a ``LocalCluster`` of ``workers``
  single-threaded worker processes.

Adding one is one factory plus ``@register_executor("name")``. The output bytes never depend on
the executor or the worker count: results are always consumed in submission order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any, Protocol, TypeVar

from builder.errors import ExecutorError
from common.parentdeath import exit_with_parent

R = TypeVar("R")


class SubmitExecutor(Protocol):
    """What the build needs of an executor: ``submit`` returning a future with ``result()``."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future: ...


ExecutorFactory = Callable[[int, "str | None"], Executor]

EXECUTORS: dict[str, ExecutorFactory] = {}
"""Executor name -> factory ``f(workers, scheduler) -> Executor``."""


def register_executor(name: str) -> Callable[[ExecutorFactory], ExecutorFactory]:
    """Decorator registering ``factory(workers, scheduler) -> Executor`` under ``name``.

    ``scheduler`` is the address given with ``--scheduler`` (``None`` if none); a factory
    without a use for it raises :class:`~builder.errors.ExecutorError` when it is set.
    """

    def deco(factory: ExecutorFactory) -> ExecutorFactory:
        if name in EXECUTORS:
            raise ExecutorError(f"executor {name!r} is already registered")
        EXECUTORS[name] = factory
        return factory

    return deco


class SerialExecutor(Executor):
    """Runs each submitted call at once in the calling process; the future holds its outcome."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered by future.result(), like a pool would
            future.set_exception(exc)
        return future


def _no_scheduler(name: str, scheduler: str | None) -> None:
    if scheduler is not None:
        raise ExecutorError(f"--scheduler applies to --executor dask, not {name!r}")


@register_executor("serial")
def _serial(workers: int, scheduler: str | None = None) -> Executor:
    _no_scheduler("serial", scheduler)
    return SerialExecutor()


@register_executor("local")
def _local(workers: int, scheduler: str | None = None) -> Executor:
    _no_scheduler("local", scheduler)
    if workers == 1:
        return SerialExecutor()
    # Workers exit when this process dies, even by SIGKILL (common/parentdeath.py).
    return ProcessPoolExecutor(workers, initializer=exit_with_parent, initargs=(os.getpid(),))


@register_executor("dask")
def _dask(workers: int, scheduler: str | None = None) -> Executor:
    from builder.executors_dask import DaskExecutor  # dask is imported only when used

    return DaskExecutor(workers, scheduler)


def make_executor(name: str = "local", workers: int = 1, scheduler: str | None = None) -> Executor:
    """A new executor from :data:`EXECUTORS`; the caller shuts it down.

    Parameters
    ----------
    name : str
        Registered executor name.
    workers : int
        Worker processes (for ``dask`` without ``scheduler``: LocalCluster workers).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); only for ``dask``.

    Raises
    ------
    ExecutorError
        Unknown ``name``, ``workers < 1``, or a ``scheduler`` for an executor without one.
    """
    if name not in EXECUTORS:
        raise ExecutorError(f"unknown executor {name!r} (registered: {', '.join(EXECUTORS)})")
    if workers < 1:
        raise ExecutorError(f"workers must be >= 1 (got {workers})")
    return EXECUTORS[name](workers, scheduler)


def submit_ordered(
    executor: SubmitExecutor,
    fn: Callable[..., R],
    arg_tuples: Iterable[tuple],
    window: int | None = None,
) -> Iterator[R]:
    """Submit ``fn(*args)`` for every tuple and yield the results in submission order.

    With ``window`` set, at most that many calls are outstanding (submitted, result not yet
    yielded), which bounds the memory held by finished results; otherwise everything is
    submitted up front. An exception of a call is raised when its turn comes; on early exit the
    calls not yet started are cancelled.
    """
    if window is not None and window < 1:
        raise ExecutorError(f"window must be >= 1 (got {window})")
    pending: deque[Future] = deque()
    args_iter = iter(arg_tuples)
    try:
        while True:
            while window is None or len(pending) < window:
                args = next(args_iter, None)
                if args is None:
                    break
                pending.append(executor.submit(fn, *args))
            if not pending:
                return
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
