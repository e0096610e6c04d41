"""benchmarks/loader_peers.py: peers get our exact samples; a missing peer is skipped, named."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import loader_peers  # noqa: E402

from shards.reader import iter_tar_samples  # noqa: E402
from tests.datasets import make_tiny_dataset  # noqa: E402


def test_missing_peer_is_skipped_with_a_message(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(loader_peers, "PEERS", {"mosaicml_streaming": "no_such_module_xyz",
                                                "litdata": "no_such_module_xyz"})  # fmt: skip
    assert loader_peers.peer_methods([], tmp_path) == {}
    err = capsys.readouterr().err
    assert "skipping peer mosaicml_streaming not usable" in err
    assert "skipping peer litdata" in err and "pip install -e .[bench]" in err


@pytest.mark.parametrize(
    ("name", "convert", "iterate"),
    [
        ("mosaicml_streaming", "convert_mds", "iter_mds"),
        ("litdata", "convert_litdata", "iter_litdata"),
    ],
)
def test_peer_round_trips_our_samples(tmp_path, name, convert, iterate):
    if loader_peers.available(name) is not None:
        pytest.skip(loader_peers.available(name))
    manifest = make_tiny_dataset(tmp_path / "ds", sizes={"train": (5, 4)})
    urls = [str(tmp_path / "ds" / e.path) for e in manifest.shards_for("train")]
    ours = {s["__key__"]: s for s in iter_tar_samples(urls)}
    getattr(loader_peers, convert)(urls, tmp_path / name)
    got = list(getattr(loader_peers, iterate)(tmp_path / name))
    assert sorted(g["__key__"] for g in got) == sorted(ours)
    for g in got:
        o = ours[g["__key__"]]
        assert np.array_equal(g["image"], o["image"]) and g["label"] == o["label"]
        assert g["meta"] == o["meta"]
    assert loader_peers.batches(iter(got)) == len(ours)
