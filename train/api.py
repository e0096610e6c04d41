"""Python API: build a dataset, train, evaluate, score a parent sample and probe realism.

Each function calls the same code as its command (``builder make-shards``, ``train run``,
``train eval``, ``train score``, ``train probe``) with the same configuration layers, so a
notebook and a shell give the same bytes. Errors are the same exceptions the commands turn into
one-line messages (:class:`common.configio.ConfigError` for a bad key or value, naming it;
:class:`train.errors.TrainError` / :class:`builder.errors.BuilderError` for a failed run).

Example::

    from train import api

    api.build("out/shards", n_synthetic=2000, workers=2)
    api.train("out/shards", "out/run", preset="cpu", overrides=["epochs=4"])
    summary = api.score("out/run/checkpoints/best.pt", "out/scores",
                        parents="my_cutouts.parquet", threshold="fpr1e-3",
                        known_lenses="known.csv")
    table = api.load_scores("out/scores")            # pyarrow.Table, one row per galaxy
    realism = api.probe("out/run/checkpoints/best.pt", "out/shards")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["build", "evaluate", "load_scores", "probe", "score", "train"]

Overrides = Mapping[str, Any] | Sequence[str] | None


def _overrides(overrides: Overrides) -> dict[str, Any]:
    """Nested overrides from a mapping or from ``["a.b=1", ...]`` pairs (as ``--set``)."""
    from common.configio import parse_overrides

    if overrides is None:
        return {}
    if isinstance(overrides, Mapping):
        return dict(overrides)
    return parse_overrides(list(overrides))


def build(
    out_dir: str | Path,
    *,
    parents: str | Path | None = None,
    parents_format: str | None = None,
    n_synthetic: int | None = None,
    config: str | Path | None = None,
    overrides: Overrides = None,
    workers: int = 1,
    executor: str = "local",
    overwrite: bool = False,
    progress: bool = False,
) -> Any:
    """Build (or resume) a shard dataset, as ``builder make-shards``; returns its manifest.

    Parameters
    ----------
    out_dir : path
        Dataset root.
    parents : path, optional
        Parent Parquet file or FITS directory; default: the synthetic sky.
    parents_format : str, optional
        Registered parent kind (detected from ``parents`` otherwise).
    n_synthetic : int, optional
        Synthetic sky: galaxies to render (ignored with ``parents``).
    config : path, optional
        Build YAML.
    overrides : mapping or list of "KEY=VALUE", optional
        Build-config overrides, applied last.
    workers, executor, overwrite, progress
        As the command's flags.
    """
    from builder.build import BuildOptions, make_shards
    from builder.config import load_build_config
    from builder.parents.registry import detect_kind
    from common.configio import merge

    o: dict[str, Any] = {}
    if parents is not None:
        o["input"] = {"kind": parents_format or detect_kind(parents), "path": str(parents)}
    elif n_synthetic is not None:
        o["input"] = {"synthetic": {"n_parents": int(n_synthetic)}}
    cfg = load_build_config(config, merge(o, _overrides(overrides)))
    options = BuildOptions(
        workers=workers, executor=executor, overwrite=overwrite, progress=progress
    )
    return make_shards(cfg, out_dir, options)


def train(
    shards_dir: str | Path,
    run_dir: str | Path,
    *,
    preset: str | None = None,
    config: str | Path | None = None,
    overrides: Overrides = None,
    resume: bool = False,
) -> Any:
    """Train (or resume) a run, as ``train run``; returns its :class:`~train.history.RunSummary`.

    ``overrides`` are config keys (``{"epochs": 4}`` or ``["optim.lr=1e-3"]``); a resume without
    ``preset``/``config`` continues with the run's stored config.
    """
    from train.config import CONFIG_NAME, load_run_config, resolve_config
    from train.trainer import run

    base = None
    if resume and preset is None and config is None and (Path(run_dir) / CONFIG_NAME).is_file():
        base = load_run_config(run_dir)
    cfg = resolve_config(
        base=base, preset=preset, config_file=config, overrides=_overrides(overrides)
    )
    return run(cfg, shards_dir, run_dir, resume=resume)


def evaluate(
    checkpoint: str | Path,
    shards_dir: str | Path,
    out_dir: str | Path,
    *,
    split: str = "test",
    device: str = "auto",
    batch_size: int | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Metrics of a checkpoint on a labelled split, as ``train eval``; returns the report."""
    from train.evaluate import evaluate_checkpoint

    return evaluate_checkpoint(
        checkpoint,
        shards_dir,
        out_dir,
        split=split,
        device=device,
        batch_size=batch_size,
        num_workers=workers,
    )


def score(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    parents: str | Path | None = None,
    synthetic: int | None = None,
    parents_format: str | None = None,
    build_config: str | Path | None = None,
    overrides: Overrides = None,
    threshold: str | float | None = None,
    top_n: int = 100,
    gallery_n: int = 64,
    known_lenses: str | Path | None = None,
    match_radius_arcsec: float = 2.0,
    batch_size: int | None = None,
    workers: int = 0,
    device: str = "auto",
    progress: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Score every galaxy of a parent sample, as ``train score``; returns ``summary.json``.

    Calling it again with the same arguments resumes an interrupted pass (finished chunks are
    not rescored). See :func:`train.score.score_parents` for the outputs and parameters;
    ``threshold`` is a stored validation operating point name (``"fpr1e-3"``) or a logit.
    """
    from train.score import ScoreOptions, resolve_parents, score_parents

    spec = resolve_parents(
        parents,
        out_dir,
        parents_format=parents_format,
        synthetic_n=synthetic,
        build_config=build_config,
        overrides=_overrides(overrides),
    )
    options = ScoreOptions(
        batch_size=batch_size,
        workers=workers,
        device=device,
        progress=progress,
        overwrite=overwrite,
    )
    return score_parents(
        checkpoint,
        spec,
        out_dir,
        options,
        threshold=None if threshold is None else str(threshold),
        top_n=top_n,
        gallery_n=gallery_n,
        known_lenses=known_lenses,
        match_radius_arcsec=match_radius_arcsec,
    )


def load_scores(out_dir: str | Path) -> Any:
    """``scores.parquet`` of a finished scoring pass as a :class:`pyarrow.Table`."""
    import pyarrow.parquet as pq

    from train.score_outputs import SCORES_NAME

    return pq.read_table(Path(out_dir) / SCORES_NAME)


def probe(checkpoint: str | Path, shards_dir: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Realism probe, as ``train probe``; keyword arguments of :func:`train.probe.run_probe`."""
    from train.probe import run_probe

    return run_probe(checkpoint, shards_dir, **kwargs)
