"""Datasets at a URL (``s3://``, ``gs://``, ``file://``): publish, mirror, verify.

An object store has no rename, so a dataset is published in the order that keeps every reader
safe: each shard (with its offset index and task summary) is uploaded complete, and the manifest
(the commit point) is uploaded last. A reader or a resumed build trusts only the shards the
remote manifest lists, and only a copy whose sha256 matches the manifest. Shards the manifest
does not list (left by an interrupted upload or an overwritten build) are deleted after the new
manifest is in place.

Reading is by whole objects: :func:`mirror_dataset` downloads the manifest and the listed
shards into a local directory (verified against the manifest's sha256), which the trainer, the
evaluator and ``builder verify`` then read like any local dataset. Credentials come from the
environment (:mod:`common.storage`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from common import storage
from common.checksum import file_sha256
from shards.errors import ManifestError
from shards.manifest import MANIFEST_NAME, REJECTS_NAME, Manifest
from shards.schema import SPLITS, index_name

TASKS_DIR = "tasks"  # the builder's per-shard summaries (builder/tasks.py)
CACHE_ENV = "LENSFINDER_CACHE"


def cache_dir(url: str) -> Path:
    """Default local directory for a mirror of ``url``: ``$LENSFINDER_CACHE/datasets/<hash>``.

    ``LENSFINDER_CACHE`` defaults to ``~/.cache/lensfinder``.
    """
    base = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "lensfinder"
    return Path(base) / "datasets" / hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]


def load_remote_manifest(url: str) -> Manifest | None:
    """The manifest at ``url/manifest.json``, None if there is none."""
    murl = storage.join(url, MANIFEST_NAME)
    if not storage.exists(murl):
        return None
    with tempfile.TemporaryDirectory(prefix="lensfinder-manifest-") as tmp:
        Path(tmp, MANIFEST_NAME).write_bytes(storage.read_bytes(murl))
        try:
            return Manifest.load(tmp)
        except ManifestError as exc:
            raise ManifestError(str(exc).replace(tmp, url.rstrip("/"))) from None


def _members(rel: str, with_tasks: bool) -> list[str]:
    """The files that travel with shard ``rel``: the tar, its index, its task summary."""
    out = [rel, index_name(rel)]
    if with_tasks:
        out.append(f"{TASKS_DIR}/{Path(rel).stem}.json")
    return out


def mirror_dataset(
    url: str,
    dest: str | Path | None = None,
    with_tasks: bool = False,
    strict: bool = True,
    fetched: set[tuple[str, str]] | None = None,
) -> Path:
    """Download the dataset at ``url`` into ``dest`` (default :func:`cache_dir`); return ``dest``.

    Only the shards the remote manifest lists are fetched, each verified against its sha256; a
    local copy that already matches is kept. With ``strict`` a mismatch raises
    :class:`~common.storage.StorageError`; otherwise the shard (and its summary) is left out, so
    a resumed build rebuilds it. The manifest is written last. ``fetched``, if given, receives
    ``(path, sha256)`` of every shard downloaded and verified here.

    Raises
    ------
    ManifestError
        No (readable) manifest at ``url``.
    """
    dest = Path(dest) if dest is not None else cache_dir(url)
    manifest = load_remote_manifest(url)
    if manifest is None:
        raise ManifestError(f"no manifest at {storage.join(url, MANIFEST_NAME)}")
    dest.mkdir(parents=True, exist_ok=True)
    for entry in manifest.shards:
        local = dest / entry.path
        if not (local.is_file() and file_sha256(local) == entry.sha256):
            try:
                storage.get_file(storage.join(url, entry.path), local, expect_sha256=entry.sha256)
            except (storage.StorageError, FileNotFoundError):
                if strict:
                    raise
                continue
            if fetched is not None:
                fetched.add((entry.path, entry.sha256))
        for rel in _members(entry.path, with_tasks)[1:]:
            if not (dest / rel).is_file() and storage.exists(storage.join(url, rel)):
                storage.get_file(storage.join(url, rel), dest / rel)
    if storage.exists(storage.join(url, REJECTS_NAME)):
        storage.get_file(storage.join(url, REJECTS_NAME), dest / REJECTS_NAME)
    storage.get_file(storage.join(url, MANIFEST_NAME), dest / MANIFEST_NAME)
    return dest


def publish_dataset(
    local: str | Path, url: str, verified: set[tuple[str, str]] | frozenset = frozenset()
) -> Manifest:
    """Upload the local dataset ``local`` to ``url``: shards first, the manifest last.

    A shard is not uploaded again if its remote copy is known good: listed in ``verified``
    (``(path, sha256)`` pairs just checked, e.g. by :func:`mirror_dataset`), or listed by the
    remote manifest with the same sha256 and found, by reading it back, to have that sha256.
    Returns the published manifest.
    """
    local = Path(local)
    manifest = Manifest.load(local)
    old = load_remote_manifest(url)
    listed = {(e.path, e.sha256) for e in old.shards} if old is not None else set()
    for entry in manifest.shards:
        key = (entry.path, entry.sha256)
        if key in verified or (key in listed and _remote_sha256(url, entry.path) == entry.sha256):
            continue
        for rel in _members(entry.path, with_tasks=True):
            if (local / rel).is_file():
                storage.put_file(local / rel, storage.join(url, rel))
    if (local / REJECTS_NAME).is_file():
        storage.put_file(local / REJECTS_NAME, storage.join(url, REJECTS_NAME))
    storage.put_file(local / MANIFEST_NAME, storage.join(url, MANIFEST_NAME))  # commit point
    _delete_unlisted(url, manifest)
    return manifest


def _remote_sha256(url: str, rel: str) -> str | None:
    try:
        return storage.sha256(storage.join(url, rel))
    except FileNotFoundError:
        return None


def _delete_unlisted(url: str, manifest: Manifest) -> None:
    """Remove remote shards (and their companions) that the manifest does not list."""
    keep = {rel for e in manifest.shards for rel in _members(e.path, with_tasks=True)}
    fs, root = storage.filesystem(url)
    for split in SPLITS:
        for rel in storage.list_files(storage.join(url, split)):
            full = f"{split}/{rel}"
            if full not in keep:
                fs.rm_file(f"{root.rstrip('/')}/{full}")


def verify_remote(url: str):
    """``builder verify URL``: mirror the dataset (without trusting it) and verify the copy.

    Every listed shard and every stray ``.tar`` under the split prefixes is downloaded as is
    (no sha256 check on the way: verify reports mismatches itself) into a temporary directory.
    """
    from shards.verify import verify_dataset

    if not storage.exists(storage.join(url, MANIFEST_NAME)):
        raise ManifestError(f"no manifest at {storage.join(url, MANIFEST_NAME)}")
    with tempfile.TemporaryDirectory(prefix="lensfinder-verify-") as tmp:
        root = Path(tmp)
        storage.get_file(storage.join(url, MANIFEST_NAME), root / MANIFEST_NAME)
        names = {
            f"{split}/{rel}"
            for split in SPLITS
            for rel in storage.list_files(storage.join(url, split))
        }
        for rel in sorted(names):
            if rel.endswith((".tar", ".idx.json")):
                storage.get_file(storage.join(url, rel), root / rel)
        report = verify_dataset(root)
        report.root = url
        report.errors = [e.replace(str(root), url.rstrip("/")) for e in report.errors]
    return report


def dataset_root(path: str | Path) -> Path:
    """A local dataset root for ``path``: itself if local, else a verified mirror of the URL."""
    if storage.is_remote(path):
        return mirror_dataset(str(path))
    return storage.local_path(path)
