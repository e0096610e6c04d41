"""``builder verify DIR``: check a dataset against its manifest, sample by sample.

Checks, each reported separately:

* every shard in the manifest exists, its sha256 and byte size match, and it parses as a tar;
* sample counts, n_pos and n_neg match the manifest (and per-split totals add up);
* every sample has the required members of the member table (:data:`shards.schema.MEMBERS`),
  no member without a row, every member decodes safely with its row's shape and dtype, and
  array members whose row asks for it hold only finite values;
* keys are unique across the whole dataset;
* no galaxy id appears in two splits, or in two roles (except the paired-controls ablation);
* metadata agrees with the label and the shard: ``label``, ``role``, ``split``, ``key``;
* every shard's offset index matches its tar exactly: the index's ``tar_sha256`` is the shard's,
  and every member's header offset, data offset, size and CRC32 are what the tar holds;
* every shard path of the manifest stays inside the dataset root;
* array members hold no pixel beyond the plausible bound (``rejects.max_abs_pixel_nmgy`` of the
  build config, default :data:`shards.schema.MAX_ABS_PIXEL_NMGY`);
* with ``split_scheme.scheme: healpix`` in the manifest, no HEALPix pixel holds samples of two
  splits (:func:`shards.spatial.split_scheme_problems`);
* no stray ``.tar`` files outside the manifest.
"""

from __future__ import annotations

import tarfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.checksum import file_sha256
from shards.errors import ManifestError, ShardFormatError
from shards.manifest import Manifest
from shards.paths import shard_path
from shards.reader import iter_tar_samples, load_index
from shards.schema import MAX_ABS_PIXEL_NMGY, MEMBERS, SPLITS, MemberTable
from shards.spatial import split_scheme_problems
from shards.writer import build_index


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_dataset`."""

    root: str
    n_shards: int = 0
    n_samples: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def format(self) -> str:
        lines = [
            f"verify {self.root}: {self.n_shards} shard(s), {self.n_samples} sample(s) checked"
        ]
        if self.ok:
            lines.append("OK: every check passed")
        else:
            lines.append(f"FAILED: {len(self.errors)} problem(s)")
            lines.extend(f"  - {e}" for e in self.errors[:200])
            if len(self.errors) > 200:
                lines.append(f"  ... and {len(self.errors) - 200} more")
        return "\n".join(lines)


def index_problems(path: str | Path, sha256: str, table: MemberTable | None = None) -> list[str]:
    """Differences between the offset index beside ``path`` and the tar itself (sha ``sha256``).

    Empty when the index is exactly what :func:`shards.writer.build_index` computes from the
    tar (every member's offsets, size and CRC32, the tar's size, sample count and sha256).
    Used by ``builder verify`` and by resume, which rebuilds a shard whose index is wrong.
    """
    path = Path(path)
    table = MEMBERS if table is None else table
    try:
        index = load_index(path, table.schema_version)
    except ShardFormatError as exc:
        return [str(exc)]
    if index.get("tar_sha256") != sha256:
        return ["offset index records another tar (its tar_sha256 is not the shard's)"]
    try:
        want = build_index(path, sha256, table.schema_version)
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        return [f"cannot index the tar ({type(exc).__name__}: {exc})"]
    problems = []
    for what in ("tar_bytes", "n_samples"):
        if index.get(what) != want[what]:
            problems.append(f"offset index {what} {index.get(what)} != {want[what]} in the tar")
    got_samples, want_samples = index["samples"], want["samples"]
    if [s["key"] for s in got_samples] != [s["key"] for s in want_samples]:
        problems.append("offset index lists other sample keys than the tar holds")
        return problems
    for got, ref in zip(got_samples, want_samples, strict=True):
        for suffix in sorted(set(got["members"]) | set(ref["members"])):
            g: Any = got["members"].get(suffix)
            r: Any = ref["members"].get(suffix)
            if g is not None and r is not None:
                r = r[: len(g)]  # an index version 1 entry has no CRC32
            if g != r:
                problems.append(
                    f"offset index entry of {got['key']}.{suffix} is {g}, the tar has {r} "
                    "([header offset, data offset, size, crc32])"
                )
    return problems


def _pixel_bound(manifest: Manifest, override: float | None) -> float:
    """The |pixel| bound: the argument, else the build config's, else the default."""
    if override is not None:
        return float(override)
    rejects = manifest.config.get("rejects") if isinstance(manifest.config, dict) else None
    value = rejects.get("max_abs_pixel_nmgy") if isinstance(rejects, dict) else None
    return float(value) if isinstance(value, int | float) else MAX_ABS_PIXEL_NMGY


def verify_dataset(
    root: str | Path,
    members: MemberTable | None = None,
    max_abs_pixel_nmgy: float | None = None,
) -> VerifyReport:
    """Run every check on the dataset at ``root``; never raises for data problems.

    Parameters
    ----------
    root : str or Path
        Dataset directory (holds ``manifest.json``).
    members : MemberTable, optional
        Member table the dataset was written with (default :data:`shards.schema.MEMBERS`).
    max_abs_pixel_nmgy : float, optional
        Largest plausible |pixel| in nanomaggies (default: the build config's
        ``rejects.max_abs_pixel_nmgy``, else :data:`shards.schema.MAX_ABS_PIXEL_NMGY`).
    """
    root = Path(root)
    table = MEMBERS if members is None else members
    finite_rows = [row for row in table.rows() if row.finite]
    report = VerifyReport(str(root))
    try:
        manifest = Manifest.load(root, table.schema_version)
    except ManifestError as exc:
        report.errors.append(str(exc))
        return report
    if manifest.status != "complete":
        report.errors.append(
            f"manifest status is {manifest.status!r}, not 'complete' (build unfinished)"
        )
    paired = manifest.controls == "paired"
    bound = _pixel_bound(manifest, max_abs_pixel_nmgy)
    key_where: dict[str, str] = {}
    galaxy_splits: dict[str, set[str]] = defaultdict(set)
    galaxy_roles: dict[str, list[str]] = defaultdict(list)
    positions: list[tuple[object, object, str, str]] = []  # (ra, dec, split, where): healpix check
    listed = set()
    for entry in sorted(manifest.shards, key=lambda s: (s.split, s.index)):
        report.n_shards += 1
        name = entry.path
        try:
            path = shard_path(root, entry.path)
        except ManifestError as exc:
            report.errors.append(str(exc))
            continue
        listed.add(path.resolve())
        if not path.is_file():
            report.errors.append(f"{name}: listed in the manifest but missing")
            continue
        size = path.stat().st_size
        if size != entry.bytes:
            report.errors.append(f"{name}: {size} bytes, manifest says {entry.bytes}")
        sha256 = file_sha256(path)
        if sha256 != entry.sha256:
            report.errors.append(
                f"{name}: sha256 differs from the manifest (corrupted or replaced)"
            )
        report.errors.extend(f"{name}: {p}" for p in index_problems(path, sha256, table))
        n = n_pos = n_neg = 0
        try:
            for s in iter_tar_samples(str(path), table):
                n += 1
                key, meta, label = s["__key__"], s["meta"], s["label"]
                n_pos += label == 1
                n_neg += label == 0
                if key in key_where:
                    report.errors.append(f"{name}: duplicate key {key} (also in {key_where[key]})")
                key_where[key] = name
                for row in finite_rows:
                    if row.field not in s:
                        continue
                    values = s[row.field]
                    if not np.isfinite(values).all():
                        report.errors.append(f"{name}: {key}.{row.suffix} has non-finite values")
                    elif values.size and float(np.abs(values).max()) > bound:
                        report.errors.append(
                            f"{name}: {key}.{row.suffix} has |pixel| "
                            f"{float(np.abs(values).max()):.3g} "
                            f"nmgy, above the plausible {bound:g} (rejects.max_abs_pixel_nmgy)"
                        )
                if meta.get("label") != label:
                    report.errors.append(
                        f"{name}: {key}.json label {meta.get('label')} != .cls {label}"
                    )
                role = meta.get("role")
                if (role, label) not in (("host", 1), ("control", 0)):
                    report.errors.append(
                        f"{name}: {key} role {role!r} inconsistent with label {label}"
                    )
                if meta.get("split") != entry.split:
                    report.errors.append(
                        f"{name}: {key} metadata split {meta.get('split')!r} != {entry.split}"
                    )
                if meta.get("key", key) != key:
                    report.errors.append(f"{name}: {key} metadata key {meta.get('key')!r} differs")
                real = meta.get("kind") == "real"  # a known lens: no injection metadata
                if label == 1 and "injection" not in meta and not real:
                    report.errors.append(f"{name}: {key} is a positive without injection metadata")
                if real and (label != 1 or "injection" in meta):
                    report.errors.append(f"{name}: {key} is kind 'real' but not a plain positive")
                positions.append((meta.get("ra"), meta.get("dec"), entry.split, f"{name}: {key}"))
                if label == 0 and "injection" in meta:
                    report.errors.append(f"{name}: {key} is a control with injection metadata")
                gid = meta.get("galaxy_id")
                if gid is None:
                    report.errors.append(f"{name}: {key} has no galaxy_id")
                else:
                    galaxy_splits[gid].add(entry.split)
                    galaxy_roles[gid].append(role)
        except ShardFormatError as exc:
            report.errors.append(f"{name}: {exc}")
        report.n_samples += n
        for what, got, want in (
            ("n_samples", n, entry.n_samples),
            ("n_pos", n_pos, entry.n_pos),
            ("n_neg", n_neg, entry.n_neg),
        ):
            if got != want:
                report.errors.append(f"{name}: {what} is {got}, manifest says {want}")
    report.errors.extend(split_scheme_problems(manifest.split_scheme, positions))
    for gid, splits in galaxy_splits.items():
        if len(splits) > 1:
            report.errors.append(f"galaxy {gid} appears in several splits: {sorted(splits)}")
    for gid, roles in galaxy_roles.items():
        ok = sorted(roles) == ["control", "host"] if paired else len(roles) == 1
        if not ok:
            report.errors.append(f"galaxy {gid} appears {len(roles)} time(s) with roles {roles}")
    totals = {sp: sum(s.n_samples for s in manifest.shards if s.split == sp) for sp in SPLITS}
    for sp in SPLITS:
        recorded = manifest.splits.get(sp, {}).get("n_samples")
        if recorded is not None and recorded != totals[sp]:
            report.errors.append(
                f"split {sp}: totals say {recorded} samples, shards add up to {totals[sp]}"
            )
    for split in SPLITS:
        for tar in sorted((root / split).glob("*.tar")) if (root / split).is_dir() else []:
            if tar.resolve() not in listed:
                report.errors.append(
                    f"{tar.relative_to(root)}: shard on disk but not in the manifest"
                )
    return report
