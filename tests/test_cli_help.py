"""Every flag of both commands has help text, and ``--help`` shows the defaults."""

from __future__ import annotations

import pytest

from common.clihelp import undocumented


@pytest.mark.parametrize("module", ["builder.cli", "train.cli"])
def test_every_flag_has_help_text(module: str) -> None:
    import importlib

    parser = importlib.import_module(module).build_parser()
    assert undocumented(parser) == []


def test_help_shows_defaults(capsys) -> None:
    from builder.cli import main

    with pytest.raises(SystemExit):
        main(["make-shards", "--help"])
    out = capsys.readouterr().out
    assert "(default: 1)" in out  # --workers
    assert "--side-table" in out
