"""``train score --out URL``: score into a local staging directory, publish with the summary last.

Object stores have no rename, so a scoring pass to ``s3://...`` (any fsspec URL) runs as a local
pass in a staging directory (``--staging``, default ``$LENSFINDER_STAGING/<hash of the URL>``,
as for builds: :func:`builder.remote.staging_dir`) and is then uploaded: every file complete,
``summary.json`` (the commit point: a reader trusts an output only when it is there) last.

The downloaded parent input (``inputs/``) and a rendered synthetic sky (``parents/``) stay in
the staging directory. Resumption works across machines: before scoring, the committed chunk parts and
``progress.json`` already at the URL are fetched into an empty staging directory, so the local
resume logic (:mod:`train.score_chunks`) skips those chunks; and after each pass the parts are
uploaded with the rest, so a pass killed before its upload loses at most what the staging
directory held.
"""

from __future__ import annotations

from pathlib import Path

from builder.remote import INPUTS_DIR
from common import storage
from common.atomic import tmp_owner_pid
from train.score import SUMMARY_NAME
from train.score_chunks import PARTS_DIR, PROGRESS_NAME

__all__ = ["LOCAL_ONLY", "fetch_score_progress", "publish_score_output"]

#: Top-level folders of the staging directory that stay local: the downloaded parent input
#: (``inputs/``) and a rendered synthetic sky (``parents/``).
LOCAL_ONLY = (INPUTS_DIR, "parents")


def fetch_score_progress(url: str, local: Path) -> int:
    """Copy ``progress.json`` and the chunk parts at ``url`` into ``local``; return the count.

    Nothing is fetched when ``local`` already has a ``progress.json`` (a local pass to resume).
    """
    if (local / PROGRESS_NAME).is_file() or not storage.exists(storage.join(url, PROGRESS_NAME)):
        return 0
    names = [r for r in storage.list_files(storage.join(url, PARTS_DIR)) if "/" not in r]
    n = 0
    # a scores part is its chunk's commit record: fetch the rejects first, each part's scores last
    for rel in sorted(names, key=lambda r: (r.split(".", 1)[0], r.endswith(".parquet"))):
        storage.get_file(storage.join(url, PARTS_DIR, rel), local / PARTS_DIR / rel)
        n += rel.endswith(".parquet")
    storage.get_file(storage.join(url, PROGRESS_NAME), local / PROGRESS_NAME)
    return n


def publish_score_output(local: Path, url: str) -> list[str]:
    """Upload every file of the finished pass in ``local`` to ``url``, ``summary.json`` last.

    Returns the relative paths uploaded, in upload order. A summary already at ``url`` is removed
    first, so an interrupted upload never leaves an old summary beside new files.
    """
    if not (local / SUMMARY_NAME).is_file():
        raise FileNotFoundError(f"{local} has no {SUMMARY_NAME}: the scoring pass did not finish")
    summary_url = storage.join(url, SUMMARY_NAME)
    if storage.exists(summary_url):
        fs, path = storage.filesystem(summary_url)
        fs.rm_file(path)
    rels = sorted(
        rel
        for p in local.rglob("*")
        if p.is_file() and tmp_owner_pid(p) is None
        and (rel := p.relative_to(local).as_posix()) != SUMMARY_NAME
        and rel.split("/", 1)[0] not in LOCAL_ONLY
    )  # fmt: skip
    for rel in [*rels, SUMMARY_NAME]:
        storage.put_file(local / rel, storage.join(url, rel))
    return [*rels, SUMMARY_NAME]
