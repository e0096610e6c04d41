"""Builds whose parent input or output is a URL (``s3://``, ``gs://``, ``file://``).

Object stores have no rename, so a build to a URL runs as a local build in a staging directory
and is then published (:func:`shards.remote.publish_dataset`): every shard is written complete
in the staging directory and uploaded, and the manifest, the commit point, is uploaded last. A
rerun into the same URL first mirrors what the remote manifest lists (only copies whose sha256
matches), so the local resume logic keeps those shards and the result is byte-identical to an
uninterrupted build. The staging directory is ``--staging`` or
``$LENSFINDER_STAGING/<hash of the URL>`` (default under the system temporary directory); it
needs room for the dataset and, with a remote cluster, must be on a file system the workers
share.

A remote parent input (a Parquet file or a directory of FITS cutouts) is downloaded once into
``OUT/inputs/<hash>/<name>`` (kept while the remote size and ETag do not change); the config
keeps the URL, and the shards are the same bytes as a build from a local copy of the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from common import storage
from common.atomic import atomic_write_text
from common.remote_dir import STAGING_ENV, staging_dir, url_hash  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from builder.build import BuildOptions
    from builder.config import BuildConfig
    from builder.executors import SubmitExecutor
    from shards.manifest import Manifest

INPUTS_DIR = "inputs"


def localise_input(url: str, out_dir: Path) -> Path:
    """A local copy of the remote parent input ``url`` (file or directory) under ``out_dir``.

    Downloaded again only when the remote listing (names, sizes, ETags) changed.
    """
    fs, path = storage.filesystem(url)
    path = path.rstrip("/")
    name = path.rsplit("/", 1)[-1]
    dest = out_dir / INPUTS_DIR / url_hash(url) / name
    stamp = dest.parent / f".{name}.source.json"
    if fs.isdir(path):
        rels = storage.list_files(url)
    elif fs.isfile(path):
        rels = [""]
    else:
        raise FileNotFoundError(f"parent input not found: {url}")
    listing = []
    for rel in rels:
        info = fs.info(f"{path}/{rel}" if rel else path)
        listing.append([rel, info.get("size"), str(info.get("ETag", info.get("mtime", "")))])
    want = json.dumps(listing)
    if stamp.is_file() and stamp.read_text() == want and dest.exists():
        return dest
    for rel, _, _ in listing:
        storage.get_file(storage.join(url, rel) if rel else url, dest / rel if rel else dest)
    atomic_write_text(stamp, want)
    return dest


def make_shards_remote(
    cfg: BuildConfig,
    out_url: str,
    options: BuildOptions,
    executor: SubmitExecutor | None = None,
    staging: str | Path | None = None,
) -> Manifest:
    """:func:`builder.build.make_shards` into ``out_url``: stage, build, publish (manifest last)."""
    from builder.build import make_shards
    from shards.remote import load_remote_manifest, mirror_dataset, publish_dataset

    local = staging_dir(out_url, staging)
    local.mkdir(parents=True, exist_ok=True)
    fetched: set[tuple[str, str]] = set()
    if not (local / "manifest.json").is_file() and load_remote_manifest(out_url) is not None:
        if options.progress:
            print(f"builder: resuming from {out_url}: fetching the shards its manifest lists")
        mirror_dataset(out_url, local, with_tasks=True, strict=False, fetched=fetched)
    manifest = make_shards(cfg, local, options, executor=executor)
    if options.progress:
        print(f"builder: uploading to {out_url} (manifest last)")
    publish_dataset(local, out_url, verified=fetched)
    return manifest


def url_kind(url: str) -> str:
    """The parent kind of a remote input named without ``--parents-format``: ``*.parquet`` only."""
    from builder.errors import SourceError

    if str(url).rstrip("/").lower().endswith((".parquet", ".pq")):
        return "parquet"
    raise SourceError(f"cannot tell the format of {url} from its name; give --parents-format")
