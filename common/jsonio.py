"""Strict JSON files: non-finite floats written as ``null``, atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from common.atomic import atomic_write_text

__all__ = ["json_safe", "write_json"]


def json_safe(obj: Any) -> Any:
    """Non-finite floats -> None (strict JSON), recursively through dicts, lists and tuples."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def write_json(obj: Any, path: str | Path) -> Path:
    """Strict JSON (non-finite floats as null, indented), written atomically."""
    atomic_write_text(path, json.dumps(json_safe(obj), indent=1, allow_nan=False) + "\n")
    return Path(path)
