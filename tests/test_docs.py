"""The documentation cannot rot: its Python runs, its YAML loads, its commands parse.

As MosaicML streaming does for its docs: every ```python block of README.md and docs/*.md is
executed (blocks of one file in order, in one namespace, in a temporary directory); every
```yaml block parses (and one that looks like a build config is accepted by the build config
loader); every ``builder ...`` / ``train ...`` command, in ```bash blocks and in inline code, is
parsed by the real argument parser, so a renamed flag or subcommand fails here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
_BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.M | re.S)
#: Fence info marking a block not to run here (a long workflow tested elsewhere, e.g. the slow
#: end-to-end API test): ```python no-test
NO_TEST = "no-test"
_INLINE = re.compile(r"`((?:builder|train) [^`]+)`")


def blocks(path: Path, lang: str, runnable: bool = False) -> list[str]:
    return [
        body
        for kind, info, body in _BLOCK.findall(path.read_text())
        if kind == lang and not (runnable and NO_TEST in info)
    ]


def commands(path: Path, prose: bool = True) -> list[str]:
    """``builder``/``train`` command lines of ``path`` (bash blocks, and inline code)."""
    text = path.read_text()
    found = []
    for body in blocks(path, "bash"):
        for line in body.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            for part in re.split(r"\s*(?:&&|;|\|)\s*", line):
                found.append(part.strip())
    if prose:
        found += [m.replace("\n", " ") for m in _INLINE.findall(_BLOCK.sub("", text))]
    out = []
    for cmd in found:
        if cmd.startswith(("builder ", "train ")):
            out.append(cmd)
        elif cmd.startswith("torchrun") and "-m train.cli" in cmd:
            out.append("train " + cmd.split("-m train.cli", 1)[1].strip())
    return out


def _subparsers(parser) -> dict:
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _check(command: str, full: bool) -> None:
    """Parse ``command`` (``full``) or check its subcommand and ``--flags`` exist (a mention)."""
    from builder.cli import build_parser as builder_parser
    from train.cli import build_parser as train_parser

    command = re.split(r"\s[>|]\s?", command)[0]  # shell redirection / pipes
    argv = shlex.split(command)
    parser = {"builder": builder_parser, "train": train_parser}[argv[0]]()
    if len(argv) < 2 or argv[1].startswith("-"):
        return  # a bare `builder` / `train` mention
    sub = _subparsers(parser)
    assert argv[1] in sub, f"documented subcommand does not exist: {command}"
    if not full:
        known = {o for a in sub[argv[1]]._actions for o in a.option_strings}
        unknown = [t.split("=")[0] for t in argv[2:] if t.startswith("--")]
        assert set(unknown) <= known, f"documented flag(s) {set(unknown) - known}: {command}"
        return
    try:
        parser.parse_args(argv[1:])
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise AssertionError(f"documented command does not parse: {command}") from None


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_documented_commands_parse(path: Path, capsys) -> None:
    bash = {c for c in commands(path, prose=False)}
    for command in commands(path):
        if "..." in command or "<" in command:
            continue  # an elided example, not a command
        _check(command, full=command in bash)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_documented_yaml_loads(path: Path) -> None:
    from builder.config import BuildConfig, load_build_config

    build_keys = set(BuildConfig().to_dict())
    for body in blocks(path, "yaml"):
        data = yaml.safe_load(body)
        if isinstance(data, dict) and data and set(data) <= build_keys and "input" in data:
            load_build_config(None, data)


@pytest.mark.parametrize("path", [p for p in DOCS if blocks(p, "python")], ids=lambda p: p.name)
def test_documented_python_runs(path: Path, tmp_path, monkeypatch) -> None:
    from tests.datasets import make_tiny_dataset

    monkeypatch.chdir(tmp_path)
    make_tiny_dataset(tmp_path / "out" / "shards")  # what "out/shards" stands for in examples
    namespace: dict = {"__name__": "__docs__"}
    for i, body in enumerate(blocks(path, "python", runnable=True)):
        code = compile(body, f"{path.name}[python block {i}]", "exec")
        exec(code, namespace)  # noqa: S102 - our own documentation


def test_inputs_examples_are_read_without_rejections(tmp_path, monkeypatch) -> None:
    """The worked examples of docs/inputs.md make inputs the real readers accept, row by row."""
    from builder.parents.base import Rejection
    from builder.parents.config import FitsConfig, ParquetConfig
    from builder.parents.open import SourceSpec, open_source

    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for body in blocks(ROOT / "docs" / "inputs.md", "python"):
        exec(compile(body, "inputs.md", "exec"), namespace)  # noqa: S102
    specs = [
        (SourceSpec("parquet", "my_parents.parquet", ParquetConfig()), 40),
        (SourceSpec("fits", "my_cutouts", FitsConfig(side_table="my_cutouts_catalog.csv")), 10),
    ]
    for spec, n in specs:
        source = open_source(spec)
        records = [r for c in range(source.info().n_chunks) for r in source.read_chunk(c)]
        assert len(records) == n
        assert not [r for r in records if isinstance(r, Rejection)]
        assert all(r.stamp_nmgy.shape == (3, 64, 64) for r in records)
    fits_records = list(open_source(specs[1][0]).read_chunk(0))
    assert fits_records[0].catalog["psfsize_r"] == pytest.approx(1.25)
