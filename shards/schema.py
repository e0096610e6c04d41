"""Schema of a sample: member names, key rules, metadata fields and label-leaking fields.

Everything that both the builder and the trainer must agree on lives here and nowhere else.
"""

from __future__ import annotations

import hashlib
import re

SCHEMA_VERSION = 1

BANDS: tuple[str, ...] = ("g", "r", "z")
STAMP_SIZE_PIX = 64
STAMP_SHAPE: tuple[int, int, int] = (len(BANDS), STAMP_SIZE_PIX, STAMP_SIZE_PIX)
PIXEL_SCALE_ARCSEC = 0.262
SPLITS: tuple[str, ...] = ("train", "val", "test")
ROLES: tuple[str, ...] = ("host", "control")  # host: arc injected, label 1; control: label 0

# Members of one sample, by webdataset suffix (the part of the member name after the first dot).
IMAGE_SUFFIX = "npy"
META_SUFFIX = "json"
LABEL_SUFFIX = "cls"
ARC_SUFFIX = "arc.npy"  # optional noiseless arc model (``--with-arcs``)
ALLOWED_SUFFIXES: frozenset[str] = frozenset({IMAGE_SUFFIX, META_SUFFIX, LABEL_SUFFIX, ARC_SUFFIX})
REQUIRED_SUFFIXES: tuple[str, ...] = (IMAGE_SUFFIX, META_SUFFIX, LABEL_SUFFIX)

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
