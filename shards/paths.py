"""Where a manifest's shard path points: always inside the dataset root, never elsewhere.

A manifest is data, so a shard path in it is untrusted: an absolute path, ``..`` or a symlink
leading out of the dataset would make the trainer or ``builder verify`` read files that are not
part of the dataset. :func:`shard_path` is the one place such a path is turned into a location.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from shards.errors import ManifestError

__all__ = ["shard_path"]


def shard_path(root: str | Path, rel: str) -> Path:
    """``root / rel`` for a manifest shard path ``rel``, refused if it leaves ``root``.

    Parameters
    ----------
    root : str or Path
        The dataset root (the directory of ``manifest.json``).
    rel : str
        The shard path as recorded in the manifest (relative, POSIX separators, ``.tar``).

    Raises
    ------
    ManifestError
        ``rel`` is not a relative ``.tar`` path inside ``root`` (absolute, with ``..``, empty,
        or resolving, through symlinks, to a file outside the dataset root).
    """
    pure = PurePosixPath(str(rel))
    if (
        not str(rel)
        or pure.is_absolute()
        or "\\" in str(rel)
        or any(part in ("..", "") for part in str(rel).split("/"))
        or pure.suffix != ".tar"
    ):
        raise ManifestError(
            f"{root}: manifest shard path {rel!r} is not a relative .tar path inside the dataset; "
            "refusing to read it"
        )
    path = Path(root) / pure
    base = Path(root).resolve()
    if not path.resolve().is_relative_to(base):
        raise ManifestError(
            f"{root}: manifest shard path {rel!r} resolves outside the dataset root "
            f"(to {path.resolve()}); refusing to read it"
        )
    return path
