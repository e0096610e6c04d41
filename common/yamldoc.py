"""Commented YAML of a config dataclass tree: every key with its documented meaning and units.

``builder dump-config`` and ``train dump-config`` print the full resolved configuration with
this, so the file a user edits explains itself::

    injection:
      # Range of the SIE Einstein radius, arcsec. ...
      theta_e_arcsec: [0.5, 3.0]

The comment of a key is its entry in the ``Attributes`` section of its dataclass's numpydoc
docstring (``name : type`` then an indented description), or the one-line form some configs use
(``name : description; default``). The YAML is the same data as :func:`common.configio.to_dict`
(so ``yaml.safe_load`` of the output equals it); only comments are added.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from typing import Any

import yaml

from common.configio import SECTIONS_FIELD, _sections, to_dict

_ENTRY = re.compile(
    r"^(?P<indent>\s*)(?P<names>[A-Za-z_][\w]*(?:\s*,\s*[A-Za-z_][\w]*)*)\s*:\s*(?P<rest>.*)$"
)
_WIDTH = 96


def field_docs(cls: type) -> dict[str, str]:
    """``{field name: description}`` from the ``Attributes`` section of ``cls.__doc__``."""
    doc = textwrap.dedent("\n".join((cls.__doc__ or "").splitlines()[1:]))
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes") + 2
    except StopIteration:
        return {}
    out: dict[str, str] = {}
    i = start
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"} and line.strip():
            break  # the next numpydoc section
        m = _ENTRY.match(line)
        if m is None or m.group("indent"):
            i += 1
            continue
        names = [n.strip() for n in m.group("names").split(",")]
        body: list[str] = []
        j = i + 1
        while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
            body.append(lines[j].strip())
            j += 1
        # numpydoc: "name : type" then the description; one-line form: "name : description"
        text = " ".join(b for b in body if b) if body and any(body) else m.group("rest")
        if body and any(body) and m.group("rest") and not _looks_like_type(m.group("rest")):
            text = f"{m.group('rest')} {text}"
        for name in names:
            out[name] = " ".join(text.split())
        i = j
    return out


def _looks_like_type(text: str) -> bool:
    return bool(re.fullmatch(r"[\w\[\], .|{}\"'-]*(optional)?", text.strip())) and len(text) < 60


def _scalar_yaml(value: Any) -> str:
    dumped = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False)
    dumped = dumped.strip()
    return dumped[:-4].strip() if dumped.endswith("\n...") or dumped.endswith(" ...") else dumped


def _comment(text: str, indent: str) -> list[str]:
    if not text:
        return []
    return [f"{indent}# {line}" for line in textwrap.wrap(text, _WIDTH - len(indent) - 2)]


def _emit(obj: Any, indent: str, out: list[str]) -> None:
    docs = field_docs(type(obj))
    sections = _sections(type(obj))
    items: list[tuple[str, Any]] = [
        (f.name, getattr(obj, f.name))
        for f in dataclasses.fields(obj)
        if not (sections and f.name == SECTIONS_FIELD)
    ]
    if sections:
        items += list(getattr(obj, SECTIONS_FIELD).items())
    for name, value in items:
        out += _comment(docs.get(name, ""), indent)
        if dataclasses.is_dataclass(value):
            out.append(f"{indent}{name}:")
            _emit(value, indent + "  ", out)
        elif isinstance(value, dict) and value:
            out.append(f"{indent}{name}:")
            block = yaml.safe_dump(to_dict(value), sort_keys=False, default_flow_style=False)
            out += [f"{indent}  {line}" for line in block.splitlines()]
        else:
            out.append(f"{indent}{name}: {_scalar_yaml(to_dict(value))}")


def commented_yaml(cfg: Any, header: str = "") -> str:
    """YAML of dataclass ``cfg`` with each key preceded by its documented description."""
    out = [f"# {line}" if line else "#" for line in header.splitlines()]
    _emit(cfg, "", out)
    return "\n".join(out) + "\n"
