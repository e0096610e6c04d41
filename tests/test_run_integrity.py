"""A run trusts only its own checkpoints and its own dataset (issue 16 items 4 and 5).

* Every checkpoint has a sha256 sidecar written with it; a flipped bit anywhere is refused on
  load (eval, resume) with the file named, and a stopped run never calls a corrupt file "the
  last good checkpoint".
* A run records its dataset's fingerprint; ``--resume`` on another dataset is refused with both
  fingerprints shown, or continues with ``--allow-dataset-change`` and says so in history.json.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.runs import TINY_RUN_FLAGS, TINY_SIZES, tiny_config, write_dataset
from train.checkpoint import (
    copy_checkpoint,
    digest_path,
    load_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from train.cli import main
from train.errors import CheckpointError
from train.rundir import HISTORY_KEY, dataset_fingerprint, last_checkpoint_note
from train.trainer import run

TINY_FLAGS = TINY_RUN_FLAGS


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def stopped_run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of 3 epochs stopped after 1 (resumable), trained on ``data``."""
    run_dir = tmp_path_factory.mktemp("run")
    cfg = tiny_config(epochs=3, stop_after_epochs=1, max_steps_per_epoch=2)
    assert run(cfg, data, run_dir).status == "interrupted"
    return run_dir


def flip_bit(path: Path, offset_fraction: float = 0.6, bit: int = 3) -> None:
    """Flip one bit inside the tensor data (not a header: the file still loads without the digest)."""
    raw = bytearray(path.read_bytes())
    i = int(len(raw) * offset_fraction)
    raw[i] ^= 1 << bit
    path.write_bytes(bytes(raw))


# ------------------------------------------------------------------------ checkpoints
def test_every_checkpoint_has_a_matching_digest(stopped_run: Path) -> None:
    for name in ("best.pt", "last.pt"):
        path = stopped_run / "checkpoints" / name
        record = json.loads(digest_path(path).read_text())
        assert record == {
            "file": name,
            "sha256": verify_checkpoint(path),
            "bytes": path.stat().st_size,
        }


def test_a_flipped_bit_is_refused_on_load_naming_the_file(
    stopped_run: Path, tmp_path: Path
) -> None:
    src = stopped_run / "checkpoints" / "best.pt"
    bad = copy_checkpoint(src, tmp_path / "best.pt")
    load_checkpoint(bad)  # intact copy loads
    flip_bit(bad)
    with pytest.raises(CheckpointError, match=rf"{bad} is corrupt: its sha256 .* does not match"):
        load_checkpoint(bad)
    digest_path(bad).unlink()
    with pytest.raises(CheckpointError, match="no readable digest sidecar best.pt.sha256"):
        load_checkpoint(bad)


def test_copy_refuses_a_corrupt_source(stopped_run: Path, tmp_path: Path) -> None:
    src = copy_checkpoint(stopped_run / "checkpoints" / "best.pt", tmp_path / "a.pt")
    flip_bit(src, 0.3)
    with pytest.raises(CheckpointError, match="is corrupt"):
        copy_checkpoint(src, tmp_path / "b.pt")
    assert not (tmp_path / "b.pt").exists()


def test_a_crash_between_checkpoint_and_sidecar_leaves_a_loadable_pair(
    stopped_run: Path, tmp_path: Path
) -> None:
    """While a checkpoint is replaced, its sidecar accepts the old and the new digest."""
    path = copy_checkpoint(stopped_run / "checkpoints" / "last.pt", tmp_path / "last.pt")
    old_bytes, old_digest = path.read_bytes(), verify_checkpoint(path)
    state = load_checkpoint(path)
    state["step"] += 1
    save_checkpoint(state, path)
    new_digest = verify_checkpoint(path)
    assert new_digest != old_digest
    # the files as a crash after the sidecar's first write, before the rename, leaves them
    transitional = {"file": "last.pt", "sha256": new_digest, "bytes": 0}
    transitional["also_accepted_while_replacing"] = [old_digest]
    digest_path(path).write_text(json.dumps(transitional))
    path.write_bytes(old_bytes)
    assert load_checkpoint(path)["step"] == state["step"] - 1
    # once the sidecar names the new digest only, the old bytes are refused
    digest_path(path).write_text(json.dumps({"file": "last.pt", "sha256": new_digest}))
    with pytest.raises(CheckpointError, match="is corrupt"):
        load_checkpoint(path)


def test_eval_and_resume_refuse_a_corrupt_checkpoint(
    stopped_run: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_run, run_dir)
    flip_bit(run_dir / "checkpoints" / "best.pt")
    flip_bit(run_dir / "checkpoints" / "last.pt")
    argv = ["eval", "--checkpoint", str(run_dir / "checkpoints" / "best.pt"), "--shards", str(data)]
    assert main([*argv, "--out", str(tmp_path / "ev"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"train: error: {run_dir / 'checkpoints' / 'best.pt'} is corrupt")
    assert err.count("\n") == 1
    argv = ["run", "--shards", str(data), "--out", str(run_dir), "--resume", "--no-progress"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"train: error: {run_dir / 'checkpoints' / 'last.pt'} is corrupt")


def test_a_stopped_run_never_calls_a_corrupt_checkpoint_good(
    stopped_run: Path, tmp_path: Path
) -> None:
    last = copy_checkpoint(stopped_run / "checkpoints" / "last.pt", tmp_path / "last.pt")
    history = [{"epoch": 0}]
    assert last_checkpoint_note(last, history).startswith("the last good checkpoint")
    flip_bit(last)
    note = last_checkpoint_note(last, history)
    assert "good" not in note and "is corrupt" in note and str(last) in note


# ------------------------------------------------------------------- dataset fingerprint
def test_resume_on_another_dataset_is_refused_showing_both_fingerprints(
    stopped_run: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_run, run_dir)
    # same layout, different contents (another seed): sizes alike, fingerprint not
    other = tmp_path / "other"
    sizes = {**TINY_SIZES, "val": (9, 8, 6)}
    write_dataset(other, sizes)
    before = (run_dir / "checkpoints" / "last.pt").read_bytes()
    argv = ["run", "--shards", str(other), "--out", str(run_dir), "--resume", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    recorded = dataset_fingerprint(data)["manifest_sha256"][:16]
    now = dataset_fingerprint(other)["manifest_sha256"][:16]
    assert err.startswith("train: config error: shards: not the dataset this run was trained on")
    assert recorded in err and now in err and "val 23" in err and "val 24" in err
    assert "--allow-dataset-change" in err and err.count("\n") == 1
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == before

    assert main([*argv, "--allow-dataset-change", "--set", "stop_after_epochs=1"]) == 0
    history = json.loads((run_dir / "history.json").read_text())
    assert [r["epoch"] for r in history] == [0, 1]
    change = history[0][HISTORY_KEY]
    assert change["from"]["manifest_sha256"] == dataset_fingerprint(data)["manifest_sha256"]
    assert change["to"]["manifest_sha256"] == dataset_fingerprint(other)["manifest_sha256"]
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["dataset"] == change["to"]


def test_resume_on_the_same_dataset_records_nothing(
    stopped_run: Path, data: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_run, run_dir)
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert ckpt["dataset"] == dataset_fingerprint(data)
    argv = ["run", "--shards", str(data), "--out", str(run_dir), "--resume", "--no-progress"]
    assert main([*argv, "--set", "stop_after_epochs=1"]) == 0
    history = json.loads((run_dir / "history.json").read_text())
    assert [r["epoch"] for r in history] == [0, 1]
    assert not any(HISTORY_KEY in r for r in history)
