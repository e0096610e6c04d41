"""Plan stage: de-duplicate ids, assign split and role, and cut each split into shard tasks.

A task is one output shard: ``(split, index)`` and the ordered list of planned samples it holds.
Samples within a split keep source order (so a task touches few chunks); every shard holds
``samples_per_shard`` planned samples except the last of its split.

The plan is computed on columns (:mod:`builder.columns`) and kept as columns
(:class:`~builder.plan_tasks.PlanColumns`: an int32 row index and an int8 role per sample);
:attr:`Plan.tasks` materialises a task's :class:`~builder.plan_tasks.PlannedSample` list when
it is accessed. The outcome is that of taking the inputs one at a time, real positives first,
then the parents in source order: a repeated id is a duplicate of its first occurrence (even if
that one was later excluded or refused), a sample whose key equals the key of a sample already
planned is refused (with ``controls: paired`` the control of a refused host is not tried).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from builder.columns import (
    CHUNK_ROWS,
    PrefixedStrings,
    concat_strings,
    first_occurrence,
    take_strings,
)
from builder.config import BuildConfig
from builder.parents.base import Rejection
from builder.plan_tasks import (
    CONTROL,
    HOST,
    PAIRED_TAGS,
    ROLES,
    PlanColumns,
    PlannedSample,
    PlannedTasks,
    ShardTask,
    TaskSlot,
    catalog_dict,
)
from builder.positives import (
    EXCLUDE_STAGE,
    NEAR_KNOWN,
    NEAR_REAL,
    RealPositives,
    exclusion_reasons,
    hybrid_host_cap,
    positives_summary,
)
from builder.scan import ScanResult
from builder.splits import assign_many, scheme_record
from shards.schema import SPLITS, make_key

__all__ = ["Plan", "PlannedSample", "ShardTask", "TaskSlot", "catalog_dict", "plan_build"]

SPLIT_CODE = {s: i for i, s in enumerate(SPLITS)}
OK, REFUSED, NOT_TRIED = 0, 1, 2  # outcome of adding a sample under its key


@dataclass
class Plan:
    """The full build plan; ``tasks`` materialises each task when accessed."""

    tasks: Sequence[ShardTask]
    rejections: list[Rejection]
    n_parents: int
    assignment: dict[str, dict[str, int]]
    split_scheme: dict = field(default_factory=dict)
    positives: dict = field(default_factory=dict)
    columns: PlanColumns | None = None

    @property
    def slots(self) -> list[TaskSlot]:
        """The shard tasks without their samples (split, index, sample range)."""
        return self.columns.slots if self.columns is not None else []

    def task(self, slot: TaskSlot) -> ShardTask:
        """The shard task of ``slot`` with its planned samples."""
        assert self.columns is not None
        return self.columns.task(slot)


def assign_columns(
    ids: pa.Array, ra_deg: np.ndarray, dec_deg: np.ndarray, split_cfg: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """:func:`builder.splits.assign_many` in chunks: split codes (int8), role uniforms, pixels."""
    codes, uniforms, pixels = [], [], []
    has_pixels = False
    for start in range(0, max(len(ids), 1), CHUNK_ROWS):
        stop = start + CHUNK_ROWS
        splits, u_role, pix = assign_many(
            ids.slice(start, CHUNK_ROWS).to_pylist(), ra_deg[start:stop], dec_deg[start:stop],
            split_cfg,
        )  # fmt: skip
        codes.append(np.fromiter((SPLIT_CODE[s] for s in splits), np.int8, len(splits)))
        uniforms.append(np.asarray(u_role, dtype=np.float64))
        has_pixels = pix is not None
        if pix is not None:
            pixels.append(np.asarray(pix, dtype=np.int64))
    return (
        np.concatenate(codes),
        np.concatenate(uniforms),
        np.concatenate(pixels) if has_pixels else None,
    )


def _keys(ids: pa.Array, items: np.ndarray, tags: list[str]) -> pa.Array:
    """Sample keys (:func:`make_key`) of ``items`` of ``ids``, with their tags."""
    parts = []
    for start in range(0, len(items), CHUNK_ROWS):
        chunk = take_strings(ids, items[start : start + CHUNK_ROWS])
        parts.append(
            pa.array(
                [
                    make_key(g, t)
                    for g, t in zip(chunk, tags[start : start + CHUNK_ROWS], strict=True)
                ],
                type=pa.string(),
            )
        )
    return concat_strings(parts)


def _add_outcomes(keys: pa.Array, owner: np.ndarray) -> np.ndarray:
    """Outcome of adding each sample in order: OK, REFUSED (key taken) or NOT_TRIED.

    A sample is refused when an earlier sample with the same key was added; after a refusal, the
    owner's (the input's) later samples are not tried. Only inputs with a shared key are walked
    one by one.
    """
    out = np.full(len(keys), OK, dtype=np.int8)
    if len(keys) == 0:
        return out
    codes = keys.dictionary_encode().indices.to_numpy(zero_copy_only=False)
    shared = np.bincount(codes)[codes] > 1
    if not shared.any():
        return out
    taken: set[int] = set()
    broken: set[int] = set()
    for a in np.flatnonzero(np.isin(owner, owner[shared])).tolist():
        if owner[a] in broken:
            out[a] = NOT_TRIED
        elif codes[a] in taken:
            out[a] = REFUSED
            broken.add(owner[a])
        else:
            taken.add(codes[a])
    return out


def _first_ordered_counts(labels: np.ndarray, names: Sequence[str]) -> dict[str, int]:
    """Counts of each label code, keyed by name in the order each first occurs."""
    if labels.size == 0:
        return {}
    values, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = np.argsort(first)
    return {names[int(values[i])]: int(counts[i]) for i in order}


def plan_build(scan: ScanResult, cfg: BuildConfig, real: RealPositives | None = None) -> Plan:
    """Turn scan results into shard tasks (pure function of the scans and the config).

    ``real`` (optional) holds the scanned real positives and the known lenses: real positives are
    planned first (so a parent with the same id is the duplicate), then the parents, minus the
    exclusions of :mod:`builder.positives`.
    """
    scan = scan.columnar()
    pos = real.scan.columnar() if real is not None and real.scan is not None else None
    n_p, n_s = (len(pos) if pos is not None else 0), len(scan)
    rejections: list[Rejection] = list(pos.rejections) if pos is not None else []
    n_inputs = n_s + len(scan.rejections) + (n_p + len(pos.rejections) if pos is not None else 0)
    ids = concat_strings([pos.galaxy_id, scan.galaxy_id]) if pos is not None else scan.galaxy_id
    locations = (
        PrefixedStrings.concat([pos.location, scan.location]) if pos is not None else scan.location
    )
    first = first_occurrence(ids)
    dup = first != np.arange(n_p + n_s)
    late: list[tuple[int, Rejection]] = []  # (input, rejection), sorted by input at the end

    # Real positives: split, key; each needs only the positives before it.
    p_split = np.zeros(0, np.int8)
    p_pix = None
    if n_p:
        p_split, _, p_pix = assign_columns(pos.galaxy_id, *pos.ra_dec_deg(), cfg.splits)
    p_items = np.flatnonzero(~dup[:n_p])
    p_keys = _keys(ids, p_items, [""] * len(p_items))
    p_ok = _add_outcomes(p_keys, p_items) == OK
    n_real = Counter(_first_ordered_counts(p_split[p_items[p_ok]], SPLITS))

    # Parents: split and role from the hash (and the sky), hybrid ratio, exclusions.
    ra, dec = scan.ra_dec_deg()
    split_of, u_role, pixels = assign_columns(scan.galaxy_id, ra, dec, cfg.splits)
    is_host = u_role < np.array([cfg.splits.pos_fraction[s] for s in SPLITS])[split_of]
    if real is not None:
        _apply_hybrid_ratio(is_host, split_of, u_role, n_real, cfg)
    s_dup = dup[n_p:]
    excluded: Counter = Counter()
    eligible = ~s_dup
    if real is not None:
        near_known, near_real, sep_known, sep_real = exclusion_reasons(
            ra, dec, real, cfg.known_lenses.radius_arcsec
        )
        out = ~s_dup & (near_real | (near_known & ~is_host))
        eligible &= ~out
        gone = np.flatnonzero(out)
        gone_loc = locations.take(gone + n_p)
        for i, gid, loc in zip(gone.tolist(), take_strings(ids, gone + n_p), gone_loc, strict=True):
            reason, sep = (NEAR_REAL, sep_real[i]) if near_real[i] else (NEAR_KNOWN, sep_known[i])
            excluded[reason] += 1
            detail = f"{ROLES[HOST if is_host[i] else CONTROL]} at {sep:.2f} arcsec"
            late.append((n_p + i, Rejection(gid, loc, reason, EXCLUDE_STAGE, detail)))

    # Every sample in input order (positives, then parents; paired: host then control), keyed.
    elig = np.flatnonzero(eligible)
    paired = cfg.splits.controls == "paired"
    if paired:
        s_items = np.repeat(elig, 2) + n_p
        s_roles = np.tile(np.array([HOST, CONTROL], np.int8), len(elig))
        s_tags = [PAIRED_TAGS[r] for r in s_roles.tolist()]
    else:
        s_items = elig + n_p
        s_roles = np.where(is_host[elig], HOST, CONTROL).astype(np.int8)
        s_tags = [""] * len(elig)
    keys = concat_strings([p_keys, _keys(ids, s_items, s_tags)])
    items = np.concatenate([p_items, s_items]).astype(np.int32)
    roles = np.concatenate([np.full(len(p_items), HOST, np.int8), s_roles])
    outcome = _add_outcomes(keys, items)
    for a in np.flatnonzero(outcome == REFUSED).tolist():
        i = int(items[a])
        gid, loc = ids[i].as_py(), locations.get(i)
        detail = f"key {keys[a].as_py()} collides with another galaxy id"
        late.append((i, Rejection(gid, loc, "bad_galaxy_id", "plan", detail)))
    for i in np.flatnonzero(dup).tolist():
        gid, loc = ids[i].as_py(), locations.get(i)
        detail = f"first seen at {locations.get(int(first[i]))}"
        late.append((i, Rejection(gid, loc, "duplicate_galaxy_id", "plan", detail)))
    rejections.extend(r for _, r in sorted(late, key=lambda t: t[0]))

    added = outcome == OK
    items, roles = items[added], roles[added]
    is_real = items < n_p
    split = np.empty(len(items), np.int8)
    split[is_real] = p_split[items[is_real]]
    split[~is_real] = split_of[items[~is_real] - n_p]
    tag = np.where(is_real, 0, 1 + roles)  # 0 real, 1 host, 2 control
    assignment = {
        s: _first_ordered_counts(tag[split == c], ("real", "host", "control"))
        for c, s in enumerate(SPLITS)
    }
    order = np.argsort(split, kind="stable")
    items, roles, split = items[order], roles[order], split[order]
    slots = _slots(split, cfg.output.samples_per_shard)
    columns = PlanColumns(
        parents=scan,
        positives=pos,
        item=items,
        role=roles,
        paired=paired,
        grades=list(real.grades) if real is not None else [],
        weights=list(real.weights) if real is not None else [],
        slots=slots,
    )
    n_injected = {s: assignment[s].get("host", 0) for s in SPLITS}
    pix_of_split = None
    if pixels is not None:
        p_keep = p_items[p_ok]
        cells = [(p_split[p_keep], p_pix[p_keep] if p_pix is not None else p_keep[:0])]
        cells.append((split_of[elig], pixels[elig]))
        sp = np.concatenate([c[0] for c in cells])
        px = np.concatenate([c[1] for c in cells]).astype(np.int64)
        pix_of_split = {s: int(np.unique(px[sp == c]).size) for c, s in enumerate(SPLITS)}
    return Plan(
        tasks=PlannedTasks(columns),
        rejections=rejections,
        n_parents=n_inputs,
        assignment=assignment,
        split_scheme=_scheme_summary(cfg, pix_of_split),
        positives=(
            positives_summary(real, cfg.positives, cfg.known_lenses, n_real, n_injected, excluded)
            if real is not None
            else {}
        ),
        columns=columns,
    )


def _slots(split: np.ndarray, per_shard: int) -> list[TaskSlot]:
    """Cut each split's run of samples (``split`` sorted by code) into shards of ``per_shard``."""
    slots = []
    for c, name in enumerate(SPLITS):
        lo, hi = np.searchsorted(split, c, "left"), np.searchsorted(split, c, "right")
        for index, start in enumerate(range(int(lo), int(hi), per_shard)):
            slots.append(TaskSlot(name, index, start, min(start + per_shard, int(hi))))
    return slots


def _apply_hybrid_ratio(
    is_host: np.ndarray, split_of: np.ndarray, u_role: np.ndarray, n_real: Counter, cfg: BuildConfig
) -> None:
    """Turn surplus injected hosts into controls so each split meets ``positives.real_fraction``.

    The hosts kept are those with the smallest role uniforms (ties: source order), so the choice
    is per galaxy.
    """
    if cfg.positives.real_fraction is None:
        return
    for c, split in enumerate(SPLITS):
        cap = hybrid_host_cap(n_real[split], cfg.positives.real_fraction)
        hosts = np.flatnonzero(is_host & (split_of == c))
        hosts = hosts[np.argsort(u_role[hosts], kind="stable")]
        is_host[hosts[cap:]] = False


def _scheme_summary(cfg: BuildConfig, n_pixels: dict[str, int] | None) -> dict:
    """The manifest's ``split_scheme``: scheme, nside and pixels per split (healpix)."""
    rec = scheme_record(cfg.splits)
    if n_pixels is not None:
        rec["n_pixels"] = n_pixels
    return rec
