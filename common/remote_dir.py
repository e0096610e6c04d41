"""Output directories at a URL: work in a local staging directory, publish with a commit file last.

Object stores have no rename, so a command whose output is ``s3://...`` (any fsspec URL) writes a
local staging directory (``--staging``, default ``$LENSFINDER_STAGING/<hash of the URL>``) and
then uploads it: every file complete, the command's commit file (``manifest.json`` of a dataset,
``summary.json`` of a scoring pass, ``history.json`` of a training run, ``metrics.json`` of an
evaluation) last, after any old copy of it was removed, so a reader that finds the commit file
finds the files it describes. Temporaries of crashed writers and lock files stay local, and so
do the folders a command names as local-only (downloaded inputs).

:func:`fetch_dir` copies what is at the URL into an empty staging directory first, so a resumed
command on another machine continues from what was published.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from common import storage
from common.atomic import tmp_owner_pid
from common.lock import LOCK_NAME

__all__ = [
    "STAGING_ENV", "fetch_dir", "publish_dir", "staged_output", "staging_dir", "url_hash",
]  # fmt: skip

STAGING_ENV = "LENSFINDER_STAGING"


def url_hash(url: str) -> str:
    """16 hex digits naming ``url`` (trailing slashes ignored) in local cache paths."""
    return hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]


def staging_dir(out_url: str, staging: str | Path | None = None) -> Path:
    """The local directory an output at ``out_url`` is staged in (``staging`` if given)."""
    if staging is not None:
        return Path(staging)
    base = os.environ.get(STAGING_ENV) or Path(tempfile.gettempdir()) / "lensfinder-staging"
    return Path(base) / url_hash(out_url)


def publish_dir(
    local: Path, url: str, commit_name: str, local_only: tuple[str, ...] = ()
) -> list[str]:
    """Upload every file of ``local`` to ``url``, ``commit_name`` last; return the order.

    Skipped: temporaries (``.NAME.tmp-PID``), lock files, and top-level folders in
    ``local_only``. Raises FileNotFoundError when ``local`` has no ``commit_name``.
    """
    if not (local / commit_name).is_file():
        raise FileNotFoundError(f"{local} has no {commit_name}: nothing finished to publish")
    commit_url = storage.join(url, commit_name)
    if storage.exists(commit_url):
        fs, path = storage.filesystem(commit_url)
        fs.rm_file(path)
    rels = sorted(
        rel
        for p in local.rglob("*")
        if p.is_file() and tmp_owner_pid(p) is None and p.name != LOCK_NAME
        and (rel := p.relative_to(local).as_posix()) != commit_name
        and rel.split("/", 1)[0] not in local_only
    )  # fmt: skip
    for rel in [*rels, commit_name]:
        storage.put_file(local / rel, storage.join(url, rel))
    return [*rels, commit_name]


def fetch_dir(
    url: str, local: Path, keep: Callable[[str], bool] = lambda rel: True, last: str | None = None
) -> int:
    """Download the files below ``url`` that ``keep(rel)`` accepts into ``local``; return the count.

    ``last`` (a relative path) is downloaded after the others, so a crash mid-fetch never
    leaves a local commit record without the files it describes.
    """
    rels = [r for r in storage.list_files(url) if keep(r)]
    rels.sort(key=lambda r: r == last)
    for rel in rels:
        storage.get_file(storage.join(url, rel), local / rel)
    return len(rels)


@contextlib.contextmanager
def staged_output(
    target: str | Path,
    commit_name: str,
    staging: str | Path | None = None,
    fetch: bool = False,
    publish: bool = True,
) -> Iterator[Path]:
    """The local directory to write ``target`` in; a URL target is published on success.

    For a local ``target`` this yields it unchanged (``staging`` is then an error). For a URL it
    yields the staging directory, first filled from the URL when ``fetch`` is set and the
    staging directory is empty, and publishes it with :func:`publish_dir` when the block ends
    without an exception and ``publish`` is set (rank 0 of a distributed run).
    """
    if not storage.is_remote(target):
        if staging is not None:
            raise ValueError("staging applies only to an output URL")
        yield storage.local_path(target)
        return
    url = str(target)
    local = staging_dir(url, staging)
    local.mkdir(parents=True, exist_ok=True)
    if fetch and publish and not any(local.iterdir()):
        fetch_dir(url, local, last=commit_name)
    yield local
    if publish:
        publish_dir(local, url, commit_name)
