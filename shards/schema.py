"""Schema of a sample: the member table, key rules, metadata fields and label-leaking fields.

Everything that both the builder and the trainer must agree on lives here and nowhere else.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from shards.codecs import BINARY_LABEL, JSON_OBJECT, NPY_ARRAY, Codec
from shards.errors import MemberTableError

SCHEMA_VERSION = 1
# Version of the offset index (``X.idx.json``) layout, independent of the sample schema:
# 1 = member entries [header offset, data offset, size]; 2 adds the member's CRC32.
INDEX_VERSION = 2

BANDS: tuple[str, ...] = ("g", "r", "z")
STAMP_SIZE_PIX = 64
STAMP_SHAPE: tuple[int, int, int] = (len(BANDS), STAMP_SIZE_PIX, STAMP_SIZE_PIX)
PIXEL_SCALE_ARCSEC = 0.262
SPLITS: tuple[str, ...] = ("train", "val", "test")
ROLES: tuple[str, ...] = ("host", "control")  # host: arc injected, label 1; control: label 0

STORAGE_DTYPES: tuple[str, ...] = ("float32", "float16")  # of the stamp-like array members

# Largest plausible |pixel| of a stamp, nanomaggies per 0.262" pixel: 1e5 nmgy is AB 10.0 mag in
# a single pixel, far brighter than a DR10 coadd records without saturating (the cores of
# 12-13 mag stars); larger values are corrupt data (build config key rejects.max_abs_pixel_nmgy).
MAX_ABS_PIXEL_NMGY = 1.0e5


@dataclass(frozen=True)
class MemberSpec:
    """One row of the member table: a member of every sample (``KEY.SUFFIX`` in the tar).

    Attributes
    ----------
    suffix : str
        webdataset suffix, the part of the member name after the first dot (``npy``, ``arc.npy``).
    field : str
        Name of the value in a :class:`shards.writer.Sample` and in the decoded sample dict.
    codec : Codec
        How the value becomes bytes and back (:mod:`shards.codecs`).
    required : bool
        Every sample has it (readers and verify refuse a sample without it); optional members
        are written only when the sample carries a value.
    shape : tuple of int or None
        Exact array shape (array codecs); ``None`` means any shape.
    dtype : str or None
        Fixed array dtype; ``None`` means the build's storage dtype (:data:`STORAGE_DTYPES`).
    finite : bool
        Array values must be finite: the writer refuses others and ``builder verify`` reports them.
    description : str
        One line for docs and error messages.
    """

    suffix: str
    field: str
    codec: Codec
    required: bool
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    finite: bool = False
    description: str = ""

    def allowed_dtypes(self) -> tuple[str, ...]:
        """Array dtypes a reader accepts for this member."""
        return (self.dtype,) if self.dtype else STORAGE_DTYPES

    @property
    def raw_field(self) -> str:
        """Name under which the reader hands out the member's undecoded bytes (``meta_json``)."""
        return f"{self.field}_{self.suffix.replace('.', '_')}"


_SUFFIX_OK = re.compile(r"^[a-z0-9]+(\.[a-z0-9]+)*$")
_FIELD_OK = re.compile(r"^[a-z][a-z0-9_]*$")


class MemberTable(Mapping[str, MemberSpec]):
    """The members of a sample, by suffix, in a fixed order (the decoded dict follows it).

    Read by the writer, the reader's one sample-dict builder and ``builder verify``; none of them
    names a suffix. A table is immutable: :meth:`with_member` returns an extended copy.

    Parameters
    ----------
    rows : iterable of MemberSpec
        The members; suffixes and fields must be unique.
    schema_version : int
        Version written into (and required of) offset indexes and manifests read with this table.
    """

    def __init__(self, rows: Iterable[MemberSpec], schema_version: int):
        self.schema_version = int(schema_version)
        self._rows: dict[str, MemberSpec] = {}
        fields: set[str] = set()
        for row in rows:
            if not _SUFFIX_OK.match(row.suffix) or len(row.suffix) > 16:
                raise MemberTableError(f"member suffix {row.suffix!r}: want [a-z0-9.], <= 16 chars")
            if not _FIELD_OK.match(row.field):
                raise MemberTableError(f"member field {row.field!r}: want a lowercase identifier")
            if row.suffix in self._rows or row.field in fields:
                raise MemberTableError(f"member .{row.suffix} ({row.field}) defined twice")
            self._rows[row.suffix] = row
            fields.add(row.field)

    def __getitem__(self, suffix: str) -> MemberSpec:
        return self._rows[suffix]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self) -> tuple[MemberSpec, ...]:
        """Every row, in table order."""
        return tuple(self._rows.values())

    @property
    def required(self) -> tuple[str, ...]:
        """Suffixes every sample must have."""
        return tuple(s for s, row in self._rows.items() if row.required)

    @property
    def fields(self) -> frozenset[str]:
        """Field names of all members."""
        return frozenset(row.field for row in self._rows.values())

    def by_field(self, field: str) -> MemberSpec:
        """The row whose decoded-dict name is ``field``."""
        for row in self._rows.values():
            if row.field == field:
                return row
        raise KeyError(field)

    def allowed_text(self) -> str:
        """``.arc.npy, .cls, .json, .npy``: the member types this table decodes."""
        return ", ".join(sorted("." + s for s in self._rows))

    def with_member(self, row: MemberSpec, schema_version: int) -> MemberTable:
        """A copy of this table with one more row; the schema version must go up.

        Raises
        ------
        MemberTableError
            If ``schema_version`` does not exceed this table's, or the row clashes.
        """
        if schema_version <= self.schema_version:
            raise MemberTableError(
                f"adding member .{row.suffix} needs a schema version above {self.schema_version}"
            )
        return MemberTable([*self.rows(), row], schema_version)


# The members of one sample. Adding one: a row here plus a SCHEMA_VERSION bump (see
# docs/shard-format.md). Member order inside the tar is sorted by suffix (webdataset's TarWriter).
MEMBERS = MemberTable(
    [
        MemberSpec(
            "npy",
            "image",
            NPY_ARRAY,
            required=True,
            shape=STAMP_SHAPE,
            finite=True,
            description="g, r, z stamp in nanomaggies per pixel",
        ),
        MemberSpec("json", "meta", JSON_OBJECT, required=True, description="metadata object"),
        MemberSpec("cls", "label", BINARY_LABEL, required=True, description="1 host, 0 control"),
        MemberSpec(
            "arc.npy",
            "arc",
            NPY_ARRAY,
            required=False,
            shape=STAMP_SHAPE,
            finite=True,
            description="noiseless PSF-convolved arc model in nanomaggies (--with-arcs)",
        ),
    ],
    SCHEMA_VERSION,
)
META_SUFFIX: str = MEMBERS.by_field("meta").suffix

# Catalog values every sample carries (units: degrees, arcsec FWHM, 1/nanomaggy^2).
CATALOG_FIELDS: tuple[str, ...] = (
    "ra",
    "dec",
    "psfsize_g",
    "psfsize_r",
    "psfsize_z",
    "psfdepth_g",
    "psfdepth_r",
    "psfdepth_z",
)
# Metadata a model may see: observing conditions only, identical in meaning for hosts and controls.
SAFE_MODEL_METADATA: tuple[str, ...] = CATALOG_FIELDS[2:]

# Fields (or prefixes) whose value reveals the label; the trainer refuses them as model inputs.
LABEL_LEAKING_FIELDS: frozenset[str] = frozenset(
    {
        "label",
        "role",
        "injection",
        "magnification",
        "arc_snr",
        "theta_e_arcsec",
        "source_mag",
        "n_draws",
        "injection_seed",
        "arc_flux_nmgy",
        "family",  # hard-negative family of the parent (decoy controls: "decoy")
        "decoy",
        "kind",  # real / injected (positives only)
        "grade",  # grade and loss weight of a real positive
        "weight",
    }
)
LABEL_LEAKING_PREFIXES: tuple[str, ...] = (
    "injection",
    "arc_",
    "lens_",
    "source_",
    "theta_e",
    "magnification",
)

MAX_ID_CHARS = 64
_KEY_OK = re.compile(r"^[A-Za-z0-9_-]+$")


def is_label_leaking(field: str) -> bool:
    """Return True if a metadata field name would leak the label into a model input."""
    name = field.split(".")[0]
    return name in LABEL_LEAKING_FIELDS or name.startswith(LABEL_LEAKING_PREFIXES)


def make_key(galaxy_id: str, suffix: str = "") -> str:
    """Derive a webdataset sample key from a galaxy id.

    Keys contain only ``[A-Za-z0-9_-]`` (never a dot, which webdataset treats as the start of the
    member suffix) and stay short enough for plain ustar member names. Ids that needed sanitising
    or truncating get an 8-hex-digit hash of the raw id appended, so two distinct ids practically
    never map to the same key (the builder still checks key uniqueness).

    Parameters
    ----------
    galaxy_id : str
        Unique identifier of the parent galaxy.
    suffix : str
        Optional extra tag (used only by the paired-controls ablation, ``"h"`` or ``"c"``).
    """
    gid = str(galaxy_id)
    if not gid:
        raise ValueError("empty galaxy id")
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", gid)
    if clean != gid or len(clean) > MAX_ID_CHARS:
        digest = hashlib.blake2b(gid.encode(), digest_size=4).hexdigest()
        clean = f"{clean[:MAX_ID_CHARS]}_{digest}"
    key = f"g{clean}" if not suffix else f"g{clean}-{suffix}"
    assert _KEY_OK.match(key), key
    return key


def is_valid_key(key: str) -> bool:
    """Return True if ``key`` is a well-formed sample key."""
    return bool(_KEY_OK.match(key))


def shard_name(split: str, index: int) -> str:
    """Relative path of shard ``index`` of ``split``: ``{split}/{split}-NNNNNN.tar``."""
    return f"{split}/{split}-{index:06d}.tar"


def index_name(shard_path: str) -> str:
    """Path of the offset index written beside a shard (``X.tar`` -> ``X.idx.json``)."""
    if not shard_path.endswith(".tar"):
        raise ValueError(f"not a .tar shard path: {shard_path}")
    return shard_path[: -len(".tar")] + ".idx.json"
