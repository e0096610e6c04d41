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
from common.remote_dir import fetch_dir, publish_dir
from train.score import SUMMARY_NAME
from train.score_chunks import PARTS_DIR, PROGRESS_NAME

__all__ = ["LOCAL_ONLY", "fetch_score_progress", "publish_score_output"]

#: Top-level folders of the staging directory that stay local: the downloaded parent input
#: (``inputs/``) and a rendered synthetic sky (``parents/``).
LOCAL_ONLY = (INPUTS_DIR, "parents")


def fetch_score_progress(url: str, local: Path) -> int:
    """Copy ``progress.json`` and the chunk parts at ``url`` into ``local``; return the parts.

    Nothing is fetched when ``local`` already has a ``progress.json`` (a local pass to resume).
    ``progress.json`` comes last, and a chunk's scores part (its commit record) after its
    rejections.
    """
    if (local / PROGRESS_NAME).is_file() or not storage.exists(storage.join(url, PROGRESS_NAME)):
        return 0
    parts_url, parts = storage.join(url, PARTS_DIR), local / PARTS_DIR
    fetch_dir(parts_url, parts, lambda r: "/" not in r and not r.endswith(".parquet"))
    n = fetch_dir(parts_url, parts, lambda r: "/" not in r and r.endswith(".parquet"))
    fetch_dir(url, local, lambda r: r == PROGRESS_NAME)
    return n


def publish_score_output(local: Path, url: str) -> list[str]:
    """Upload the finished pass in ``local`` to ``url``, ``summary.json`` last (the order)."""
    return publish_dir(local, url, SUMMARY_NAME, LOCAL_ONLY)
