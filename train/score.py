"""``train score``: apply a checkpoint to every galaxy of a parent sample, resumably, chunk by chunk.

The parent input is any registered parent kind (:mod:`builder.parents.registry`: a Parquet file,
a directory of FITS cutouts, the synthetic sky), opened through the build configuration exactly
as ``builder make-shards`` opens it, so the same rows are accepted and the same bad rows are
rejected with the same reasons (:mod:`builder.validate`). Stamps go through the training
collation and normalisation stage itself (:func:`train.stages.make_batches` with augmentation
off, i.e. what ``train eval`` sees), and through the checkpoint's validated weights.

Streaming and resumption: the source is read one chunk (row group, batch of FITS files) at a time
by ``--workers`` DataLoader processes; the main process runs the model. When a chunk is done its
rows are written atomically to ``parts/chunk-NNNNNN.parquet`` (after its rejections, to
``parts/chunk-NNNNNN.rejects.jsonl``); a part file is the commit record of its chunk. A killed run
started again with the same arguments skips every chunk that has a part and rescores only the
rest; ``progress.json`` records what the output was made from (checkpoint sha256, the input, the
preprocessing) and refuses to mix runs. Memory is one chunk per worker plus the small per-galaxy
columns of the final assembly (:mod:`train.score_outputs`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from builder.parents.open import SourceSpec, open_source
from common.configio import ConfigError
from train.score_chunks import ScoreOptions, part_path, score_chunks

__all__ = ["SUMMARY_NAME", "ScoreOptions", "resolve_parents", "score_parents"]

SUMMARY_NAME = "summary.json"


# ------------------------------------------------------------------------- the whole pass
def resolve_parents(
    parents: str | Path | None,
    out_dir: str | Path,
    *,
    parents_format: str | None = None,
    synthetic_n: int | None = None,
    build_config: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> SourceSpec:
    """The parent input as the builder would open it (same config keys, limits and rejections).

    Parameters
    ----------
    parents : path or URL, optional
        Parquet file or FITS directory (kind detected unless ``parents_format``); a URL
        (``s3://...``) is downloaded once into ``out_dir/inputs/`` (:mod:`builder.remote`).
    out_dir : path
        A generated input (``synthetic_n``) is rendered to ``out_dir/parents/``.
    parents_format : str, optional
        A registered readable parent kind.
    synthetic_n : int, optional
        Score ``synthetic_n`` galaxies of the synthetic sky instead of a file.
    build_config : path, optional
        Build YAML whose ``input.*`` and ``rejects.*`` sections apply (column maps, limits).
    overrides : dict, optional
        Nested build-config overrides (``--set``), applied last.

    Raises
    ------
    ConfigError
        No input given, an undetectable or unknown format, or an invalid build-config key.
    """
    from builder.build import BuildOptions, ensure_generated_parents, prepare_source
    from builder.config import load_build_config
    from builder.errors import BuilderError
    from builder.executors import make_executor
    from builder.parents.registry import detect_kind, get_parent_kind
    from builder.remote import url_kind
    from common.configio import merge
    from common.storage import is_url

    try:
        if parents is not None:
            kind = parents_format or (
                url_kind(parents) if is_url(parents) else detect_kind(parents)
            )
            o: dict[str, Any] = {"input": {"kind": kind, "path": str(parents)}}
        elif synthetic_n is not None:
            o = {"input": {"kind": "synthetic", "synthetic": {"n_parents": int(synthetic_n)}}}
        else:
            raise ConfigError("parents", "give a parent input (--parents PATH or --synthetic N)")
        cfg = load_build_config(build_config, merge(o, overrides or {}))
        spec = prepare_source(cfg, Path(out_dir))
        if get_parent_kind(cfg.input.kind).generated:
            with make_executor("local", 1) as executor:
                ensure_generated_parents(cfg, spec, executor, BuildOptions(progress=False))
        elif not Path(spec.path).exists():
            raise ConfigError("parents", f"not found: {spec.path}")
        open_source(spec)  # a file the reader refuses is a one-line error here
    except BuilderError as exc:
        raise ConfigError("parents", str(exc)) from None
    return spec


def score_parents(
    checkpoint: str | Path,
    spec: SourceSpec,
    out_dir: str | Path,
    options: ScoreOptions | None = None,
    *,
    threshold: str | None = None,
    top_n: int = 100,
    gallery_n: int = 64,
    known_lenses: str | Path | None = None,
    match_radius_arcsec: float = 2.0,
) -> dict[str, Any]:
    """Score ``spec`` (resumably), then write scores, rejects, candidates, gallery and summary.

    Parameters
    ----------
    checkpoint : path
        A training checkpoint (``checkpoints/best.pt``).
    spec : SourceSpec
        The parent input (:func:`resolve_parents`).
    out_dir : path
        Output directory (see the module docstring and :mod:`train.score_outputs`).
    options : ScoreOptions, optional
        Batch size, workers, device, progress, overwrite.
    threshold : str, optional
        Candidate cut: a validation operating point stored with the checkpoint (``fpr1e-3``,
        ``tpr0.85``, ``nfp10``, ...) or a logit. Without it the candidates are the top ``top_n``.
    top_n : int
        Candidates without a threshold.
    gallery_n : int
        Candidates shown in the gallery (the best ``gallery_n``).
    known_lenses : path, optional
        Known-lens CSV (ra, dec[, name, grade]); recovery at every stored operating point and at
        ``threshold`` goes into the summary and ``known_lenses.csv``.
    match_radius_arcsec : float
        Known-lens match radius.

    Returns
    -------
    dict
        The summary, also written to ``summary.json``.
    """
    from common.crossmatch import KnownLensError, read_known_lenses
    from train.evaluate import write_json
    from train.gallery import GalleryEntry, write_gallery
    from train.recovery import KNOWN_LENSES_NAME, known_lens_recovery
    from train.score_outputs import (
        CANDIDATES_NAME,
        assemble,
        display_probability,
        write_candidates,
    )
    from train.thresholds import (
        checkpoint_thresholds,
        checkpoint_val_record,
        resolve_threshold,
        threshold_metric_key,
    )

    options = options or ScoreOptions()
    out = Path(out_dir)
    known = None
    if known_lenses is not None:
        try:
            known = read_known_lenses(known_lenses)
        except KnownLensError as exc:
            raise ConfigError("known_lenses", str(exc)) from None
    run = score_chunks(checkpoint, spec, out, options)
    ckpt = run.pop("_ckpt")
    parts = [(part_path(out, c), part_path(out, c, True)) for c in range(run["n_chunks"])]
    scores = assemble(parts, out)
    stored = checkpoint_thresholds(ckpt)
    points = {k: float("inf") if v is None else float(v) for k, v in stored.items()}
    chosen = None
    if threshold is not None:
        try:
            chosen, value = resolve_threshold(threshold, stored)
        except ValueError as exc:
            raise ConfigError("threshold", str(exc)) from None
        points.setdefault(chosen, value)
        idx = np.flatnonzero(scores.logit >= points[chosen])
        idx = idx[np.argsort(scores.rank[idx], kind="stable")]
    else:
        idx = scores.top(top_n)
    write_candidates(scores, idx, out / CANDIDATES_NAME)
    show = [
        GalleryEntry(int(scores.rank[i]), scores.galaxy_id[i], float(scores.ra[i]),
                     float(scores.dec[i]), float(scores.logit[i]),
                     float(display_probability(scores.logit[i])),
                     int(scores.chunk[i]), int(scores.row[i]))
        for i in idx[:gallery_n]
    ]  # fmt: skip
    cut = f"logit >= {points[chosen]:.3f} ({chosen})" if chosen else f"top {top_n}"
    gallery = write_gallery(spec, show, out, f"top {len(show)} candidates, {cut}")
    val = checkpoint_val_record(ckpt)
    summary: dict[str, Any] = {
        **run,
        "parents": {"kind": spec.kind, "path": str(spec.path)},
        "n_scored": len(scores),
        "n_rejected": sum(scores.rejects_by_reason.values()),
        "rejected_by_reason": scores.rejects_by_reason,
        "threshold": chosen,
        "n_candidates": int(len(idx)),
        "operating_points": {
            name: {
                "logit": t if np.isfinite(t) else None,
                "n_selected": scores.n_above(t),
                "val_metric": threshold_metric_key(name),
                "val_value": val.get(threshold_metric_key(name) or ""),
            }
            for name, t in points.items()
        },
        "gallery": gallery,
    }
    if known is not None:
        summary["known_lenses"] = known_lens_recovery(
            known, scores, points, match_radius_arcsec, out / KNOWN_LENSES_NAME
        )
    write_json(summary, out / SUMMARY_NAME)
    return summary
