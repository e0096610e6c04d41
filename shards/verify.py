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
* no stray ``.tar`` files outside the manifest.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.checksum import file_sha256
from shards.errors import ManifestError, ShardFormatError
from shards.manifest import Manifest
from shards.reader import iter_tar_samples
from shards.schema import MEMBERS, SPLITS, MemberTable


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


def verify_dataset(root: str | Path, members: MemberTable | None = None) -> VerifyReport:
    """Run every check on the dataset at ``root``; never raises for data problems.

    Parameters
    ----------
    root : str or Path
        Dataset directory (holds ``manifest.json``).
    members : MemberTable, optional
        Member table the dataset was written with (default :data:`shards.schema.MEMBERS`).
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
    key_where: dict[str, str] = {}
    galaxy_splits: dict[str, set[str]] = defaultdict(set)
    galaxy_roles: dict[str, list[str]] = defaultdict(list)
    listed = set()
    for entry in sorted(manifest.shards, key=lambda s: (s.split, s.index)):
        report.n_shards += 1
        path = root / entry.path
        listed.add(path.resolve())
        name = entry.path
        if not path.is_file():
            report.errors.append(f"{name}: listed in the manifest but missing")
            continue
        size = path.stat().st_size
        if size != entry.bytes:
            report.errors.append(f"{name}: {size} bytes, manifest says {entry.bytes}")
        if file_sha256(path) != entry.sha256:
            report.errors.append(
                f"{name}: sha256 differs from the manifest (corrupted or replaced)"
            )
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
                    if row.field in s and not np.isfinite(s[row.field]).all():
                        report.errors.append(f"{name}: {key}.{row.suffix} has non-finite values")
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
                if label == 1 and "injection" not in meta:
                    report.errors.append(f"{name}: {key} is a positive without injection metadata")
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
