"""The parent-input table: kind name -> (config class, reader, detector), read by every stage.

Config loading (``input.<kind>`` sections and the valid ``input.kind`` values), opening a
source (:func:`builder.parents.open.open_source`), the build (:mod:`builder.build`) and the CLI
(``--parents`` format detection and ``--parents-format`` choices) all read :data:`PARENT_KINDS`;
none of them names a format.

Adding a parent format is one new module with a config dataclass and a reader class (the
:class:`~builder.parents.base.ParentSource` protocol, constructed as
``Reader(path, cfg, context)``), plus either a decorator on the reader::

    @register_parent_kind("npydir", config_cls=NpyDirConfig, detect=looks_like_npydir)
    class NpyDirSource: ...

or one :class:`ParentKind` entry in :data:`PARENT_KINDS` below (entries name their reader as
``"module:Class"`` so that no reader module is imported before it is used). The module must be
imported before the config is loaded and in every worker process (the built-in ones are
imported lazily; with fork-started workers the registration is inherited).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.errors import SourceError
from builder.parents.config import FitsConfig, ParquetConfig, SynthConfig


def _resolve(ref: Any) -> Any:
    """An object, or ``"module:attr"`` imported on first use."""
    if isinstance(ref, str):
        module, _, attr = ref.partition(":")
        return getattr(importlib.import_module(module), attr)
    return ref


@dataclass(frozen=True)
class ParentKind:
    """One kind of parent input.

    Attributes
    ----------
    name : str
        Value of ``input.kind``, and the name of its config section ``input.<name>``.
    config_cls : type
        Dataclass of the ``input.<name>`` section (built and validated once, at config load).
    reader : type or str or None
        Reader class (or ``"module:Class"``) constructed as ``reader(path, cfg, context)``; None
        for a generated input, which is rendered by ``render`` and read by ``read_as``.
    detect : callable or None
        ``detect(path) -> bool``: whether ``path`` looks like this kind (CLI ``--parents``).
    render : callable or str or None
        For generated inputs: ``render(cfg, path, seed=, moffat_beta=, executor=, window=)``
        writes the input to ``path``.
    read_as : str or None
        For generated inputs: the kind whose reader reads what ``render`` wrote.
    file_name : str
        For generated inputs: file name under ``OUT/parents/``.
    """

    name: str
    config_cls: type
    reader: type | str | None = None
    detect: Callable[[Path], bool] | None = None
    render: Callable[..., Path] | str | None = None
    read_as: str | None = None
    file_name: str = ""

    @property
    def generated(self) -> bool:
        """True for an input the build renders itself (no ``input.path``)."""
        return self.render is not None

    def open(self, path: Path, cfg: Any, context: Any) -> Any:
        """Construct the reader of this kind."""
        if self.reader is None:
            raise SourceError(f"parent kind {self.name!r} has no reader (read as {self.read_as})")
        return _resolve(self.reader)(path, cfg, context)

    def render_to(self, cfg: Any, path: Path, **kwargs: Any) -> Path:
        """Render a generated input to ``path`` (see ``render``)."""
        return _resolve(self.render)(cfg, path, **kwargs)


def _is_parquet(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        return fh.read(4) == b"PAR1"


def _is_fits_dir(path: Path) -> bool:
    return path.is_dir() and any(p.is_file() for p in path.glob("*.fits"))


def _render_synthetic(cfg: SynthConfig, path: Path, **kwargs: Any) -> Path:
    from builder.parents.synthetic import write_synthetic_parquet

    # the synthetic sky draws its PSF indices (input.synthetic.moffat_beta_range); the build's
    # psf.moffat_beta is the model of inputs without a PSF and does not act on it
    kwargs.pop("moffat_beta", None)

    return write_synthetic_parquet(
        path, cfg.n_parents, cfg=cfg, row_group_size=cfg.row_group_size, **kwargs
    )


PARENT_KINDS: dict[str, ParentKind] = {
    k.name: k
    for k in (
        ParentKind(
            "synthetic",
            SynthConfig,
            render=_render_synthetic,
            read_as="parquet",
            file_name="synthetic.parquet",
        ),
        ParentKind("parquet", ParquetConfig, "builder.parents.parquet:ParquetSource", _is_parquet),
        ParentKind("fits", FitsConfig, "builder.parents.fits:FitsSource", _is_fits_dir),
    )
}
"""Kind name -> :class:`ParentKind`; iteration order is the detection order."""


def add_parent_kind(kind: ParentKind) -> ParentKind:
    """Register ``kind``; a name already taken raises :class:`SourceError`."""
    if kind.name in PARENT_KINDS:
        raise SourceError(f"parent kind {kind.name!r} is already registered")
    PARENT_KINDS[kind.name] = kind
    return kind


def register_parent_kind(
    name: str, *, config_cls: type, detect: Callable[[Path], bool] | None = None
) -> Callable[[type], type]:
    """Class decorator: register the decorated reader class as parent kind ``name``."""

    def deco(reader: type) -> type:
        add_parent_kind(ParentKind(name, config_cls, reader, detect))
        return reader

    return deco


def get_parent_kind(name: str) -> ParentKind:
    """The registered kind ``name``; an unknown name raises :class:`SourceError` listing all."""
    try:
        return PARENT_KINDS[name]
    except KeyError:
        raise SourceError(
            f"unknown parent kind {name!r} (registered: {', '.join(PARENT_KINDS)})"
        ) from None


def readable_kinds() -> list[str]:
    """Kinds read from a user-supplied path (``--parents-format`` choices)."""
    return [k.name for k in PARENT_KINDS.values() if k.reader is not None]


def detect_kind(path: str | Path) -> str:
    """The first registered kind whose detector accepts ``path``.

    Raises
    ------
    SourceError
        The path does not exist or no detector accepts it.
    """
    p = Path(path)
    if not p.exists():
        raise SourceError(f"parent input not found: {p}")
    for kind in PARENT_KINDS.values():
        if kind.detect is not None and kind.detect(p):
            return kind.name
    raise SourceError(
        f"cannot tell the format of {p}; give --parents-format (one of {', '.join(readable_kinds())})"
    )
