"""Files by URL through fsspec: local paths, ``file://``, ``s3://``, ``gs://``, ... alike.

The builder and the trainer work on local files; this module moves whole files between a local
directory and an object store and answers the few questions asked of a remote location
(exists, list, sha256). Object stores have no rename, but they publish every object whole: an
upload is visible complete or not at all. So a file is always written complete somewhere local
first and then uploaded in one call; readers of a dataset trust the manifest, which is uploaded
last (the commit point).

Credentials and endpoints come only from the standard environment of the backend
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, ...)
or from fsspec storage options passed by the caller, or as JSON in the environment variable
``LENSFINDER_STORAGE_OPTIONS`` (e.g. ``{"client_kwargs": {"region_name": "us-west-2"}}``).
They are never printed: errors name the URL only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from common.atomic import atomic_open, tmp_path_for

__all__ = [
    "StorageError",
    "exists",
    "filesystem",
    "get_file",
    "is_remote",
    "is_url",
    "join",
    "list_files",
    "local_path",
    "put_file",
    "read_bytes",
    "sha256",
    "write_bytes",
]

OPTIONS_ENV = "LENSFINDER_STORAGE_OPTIONS"
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")


class StorageError(OSError):
    """A remote location could not be read or written (the message names the URL only)."""


def is_url(path: str | os.PathLike) -> bool:
    """True for ``scheme://...`` (including ``file://``)."""
    return bool(_SCHEME.match(str(path)))


def is_remote(path: str | os.PathLike) -> bool:
    """True for a URL whose scheme is not ``file`` (an object store or other remote)."""
    m = _SCHEME.match(str(path))
    return bool(m) and m.group(1).lower() not in ("file", "local")


def local_path(path: str | os.PathLike) -> Path:
    """The local path of a plain path or a ``file://`` URL; StorageError for a remote URL."""
    s = str(path)
    if is_remote(s):
        raise StorageError(f"{s} is not a local path")
    return Path(s[len("file://") :]) if s.lower().startswith("file://") else Path(s)


def join(base: str | os.PathLike, *parts: str) -> str:
    """``base/part/...`` with POSIX separators (URLs) or the OS's (local paths)."""
    if not is_url(base):
        return str(Path(base, *parts))
    return "/".join([str(base).rstrip("/"), *(p.strip("/") for p in parts)])


def _options(storage_options: dict[str, Any] | None) -> dict[str, Any]:
    if storage_options is not None:
        return dict(storage_options)
    raw = os.environ.get(OPTIONS_ENV)
    if not raw:
        return {}
    try:
        opts = json.loads(raw)
    except json.JSONDecodeError:
        raise StorageError(f"{OPTIONS_ENV} is not valid JSON") from None  # value not echoed
    if not isinstance(opts, dict):
        raise StorageError(f"{OPTIONS_ENV} must be a JSON object")
    return opts


def filesystem(url: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """``(fsspec filesystem, path within it)`` for ``url`` (a local path gives the local fs)."""
    import fsspec

    if not is_url(url):
        return fsspec.filesystem("file"), str(Path(url).absolute())
    try:
        return fsspec.core.url_to_fs(url, **_options(storage_options))
    except (ImportError, ValueError) as exc:
        raise StorageError(f"{url}: no usable fsspec backend ({type(exc).__name__})") from None


@contextlib.contextmanager
def _named(url: str, what: str):
    """Re-raise backend errors as StorageError naming only the URL and the operation."""
    try:
        yield
    except FileNotFoundError:
        raise
    except StorageError:
        raise
    except (OSError, ValueError, RuntimeError) as exc:
        raise StorageError(f"{url}: cannot {what} ({type(exc).__name__}: {exc})") from None


def exists(url: str, storage_options: dict[str, Any] | None = None) -> bool:
    """Whether a file (object) exists at ``url``."""
    fs, path = filesystem(url, storage_options)
    with _named(url, "check"):
        return bool(fs.isfile(path))


def read_bytes(url: str, storage_options: dict[str, Any] | None = None) -> bytes:
    """The whole content of ``url``; FileNotFoundError naming it if there is none."""
    fs, path = filesystem(url, storage_options)
    with _named(url, "read"):
        if not fs.isfile(path):
            raise FileNotFoundError(f"not found: {url}")
        return fs.cat_file(path)


def write_bytes(url: str, data: bytes, storage_options: dict[str, Any] | None = None) -> None:
    """Replace ``url`` with ``data`` at once: atomic rename locally, one PUT on an object store."""
    if not is_remote(url):
        with atomic_open(local_path(url), "wb") as fh:
            fh.write(data)
        return
    fs, path = filesystem(url, storage_options)
    with _named(url, "write"):
        fs.pipe_file(path, data)


def put_file(local: str | Path, url: str, storage_options: dict[str, Any] | None = None) -> None:
    """Upload the complete local file ``local`` to ``url`` (a local target is written atomically)."""
    if not is_remote(url):
        target = local_path(url)
        with open(local, "rb") as src, atomic_open(target, "wb") as dst:
            while chunk := src.read(1 << 22):
                dst.write(chunk)
        return
    fs, path = filesystem(url, storage_options)
    with _named(url, "upload to"):
        fs.put_file(str(local), path)


def get_file(
    url: str,
    local: str | Path,
    expect_sha256: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Download ``url`` to ``local`` (temporary name, renamed when complete); return its sha256.

    With ``expect_sha256`` a mismatching download is deleted and StorageError raised, so
    ``local`` only ever holds a verified copy.
    """
    local = Path(local)
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(local)
    fs, path = filesystem(url, storage_options)
    h = hashlib.sha256()
    try:
        with _named(url, "download"), fs.open(path, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 22):
                h.update(chunk)
                dst.write(chunk)
        digest = h.hexdigest()
        if expect_sha256 is not None and digest != expect_sha256:
            raise StorageError(
                f"{url}: sha256 {digest[:12]}... does not match the manifest's "
                f"{expect_sha256[:12]}..."
            )
        os.replace(tmp, local)
        return digest
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def sha256(url: str, storage_options: dict[str, Any] | None = None) -> str:
    """Hex sha256 of the file at ``url``, streamed."""
    fs, path = filesystem(url, storage_options)
    h = hashlib.sha256()
    with _named(url, "read"), fs.open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def list_files(url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Paths relative to ``url`` of every file below it (sorted; empty if there is nothing)."""
    fs, path = filesystem(url, storage_options)
    root = path.rstrip("/")
    with _named(url, "list"):
        if not fs.isdir(root):
            return []
        found = fs.find(root)
    return sorted(p[len(root) :].lstrip("/") for p in found)
