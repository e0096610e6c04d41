"""Fixtures shared by several test modules (helpers without fixtures live in tests/*.py modules
that are not test files: :mod:`tests.datasets`, :mod:`tests.runs`, :mod:`tests.gen2_reference`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runs import write_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny learnable shard dataset (:func:`tests.runs.write_dataset`), one per test module."""
    return write_dataset(tmp_path_factory.mktemp("data"))
