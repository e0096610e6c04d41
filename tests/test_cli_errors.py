"""Every hostile input of issue 16 item 14 ends in ONE line on stderr and the right exit status.

Table-driven: each case prepares its input under ``tmp_path`` and runs the real CLI entry point
(``builder.cli.main`` / ``train.cli.main``) in this process, capturing stderr. Exit status 2: the
command cannot run as given (config, paths, inputs); 1: a valid command failed (data, invariant,
disk full). The disk-full and file-size cases use a real small tmpfs (when this process may
mount one) and a real ``RLIMIT_FSIZE`` in a subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder.cli import main as builder_main
from tests.runs import TINY_RUN_FLAGS, tiny_config, write_dataset
from train.checkpoint import load_checkpoint, save_checkpoint
from train.cli import main as train_main
from train.trainer import run

REPO = Path(__file__).resolve().parents[1]

#: Flags of a tiny CPU model for ``train run`` (so the cases fail fast, not after building a
#: large network).
TINY_RUN = [*TINY_RUN_FLAGS, "--epochs", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def checkpoint(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    run(tiny_config(epochs=1, max_steps_per_epoch=1), data, run_dir)
    return run_dir / "checkpoints" / "best.pt"


@dataclass
class Env:
    """What a case may use: a scratch dir, the tiny dataset and a trained checkpoint."""

    tmp: Path
    data: Path
    checkpoint: Path

    def copy_data(self) -> Path:
        dst = self.tmp / "data_copy"
        shutil.copytree(self.data, dst)
        return dst

    def edit_manifest(self, edit: Callable[[dict], object]) -> Path:
        root = self.copy_data()
        manifest = json.loads((root / "manifest.json").read_text())
        replaced = edit(manifest)
        (root / "manifest.json").write_text(json.dumps(manifest if replaced is None else replaced))
        return root


def _non_utf8(env: Env) -> str:
    p = env.tmp / "latin1.yaml"
    p.write_bytes("seed: 1  # caf\xe9\n".encode("latin-1"))
    return str(p)


def _a_file(env: Env) -> str:
    p = env.tmp / "a_file"
    p.write_text("x")
    return str(p)


def _building(env: Env) -> str:
    return str(env.edit_manifest(lambda m: m.update(status="building")))


def _json_list(env: Env) -> str:
    return str(env.edit_manifest(lambda m: [m]))


def _n_samples_string(env: Env) -> str:
    def edit(m: dict) -> None:
        m["shards"][0]["n_samples"] = str(m["shards"][0]["n_samples"])

    return str(env.edit_manifest(edit))


def _non_tar_path(env: Env) -> str:
    def edit(m: dict) -> None:
        m["shards"][0]["path"] = m["shards"][0]["path"][: -len(".tar")] + ".idx.json"

    return str(env.edit_manifest(edit))


def _mismatched_checkpoint(env: Env) -> str:
    ckpt = load_checkpoint(env.checkpoint)
    ckpt["config"]["model"]["dims"] = [24, 48, 96, 192]  # weights are for [16, 32, 64, 128]
    return str(save_checkpoint(ckpt, env.tmp / "mismatch.pt"))


def _garbage(env: Env) -> str:
    p = env.tmp / "garbage.tar"
    p.write_bytes(os.urandom(3000))
    return str(p)


def _empty(env: Env) -> str:
    p = env.tmp / "empty.tar"
    p.write_bytes(b"")
    return str(p)


def _fifo(env: Env) -> str:
    p = env.tmp / "fifo.tar"
    os.mkfifo(p)
    return str(p)


def _index_file(env: Env) -> str:
    return str(next(env.data.glob("train/*.idx.json")))


def _a_shard(env: Env) -> str:
    return str(next(env.data.glob("train/*.tar")))


def _worker_error(env: Env) -> str:
    """A dataset whose first train shard is truncated: the DataLoader worker raises."""
    root = env.copy_data()
    shard = sorted(root.glob("train/*.tar"))[0]
    with open(shard, "r+b") as fh:
        fh.truncate(shard.stat().st_size // 2)
    return str(root)


@dataclass
class Case:
    """``argv`` with ``{name}`` placeholders filled by ``prepare[name](env)``."""

    id: str
    cli: str  # "builder" or "train"
    argv: list[str]
    status: int
    message: str  # the one stderr line must start with this ...
    contains: str = ""  # ... and contain this
    prepare: dict[str, Callable[[Env], str]] | None = None


CASES = [
    Case(
        "builder-yaml-not-utf8",
        "builder",
        ["make-shards", "--config", "{cfg}", "--out", "{tmp}/out"],
        2,
        "builder: config error: config file",
        "is not UTF-8 text",
        {"cfg": _non_utf8},
    ),
    Case(
        "train-yaml-not-utf8",
        "train",
        ["run", "--shards", "{data}", "--out", "{tmp}/run", "--config", "{cfg}"],
        2,
        "train: config error: config file",
        "is not UTF-8 text",
        {"cfg": _non_utf8},
    ),
    Case(
        "builder-config-tuple-length",
        "builder",
        ["make-shards", "--out", "{tmp}/out", "--set", "rejects.psfsize_arcsec=[0.5]"],
        2,
        "builder: config error: rejects.psfsize_arcsec: expected a list of 2 values",
    ),
    Case(
        "builder-out-is-a-file",
        "builder",
        ["make-shards", "--n", "10", "--out", "{f}", "--quiet"],
        2,
        "builder: error: ",
        "exists and is not a directory",
        {"f": _a_file},
    ),
    Case(
        "builder-out-under-a-file",
        "builder",
        ["make-shards", "--n", "10", "--out", "{f}/sub", "--quiet"],
        2,
        "builder: error: ",
        "is a file, not a directory",
        {"f": _a_file},
    ),
    Case(
        "train-out-is-a-file",
        "train",
        ["run", "--shards", "{data}", "--out", "{f}", *TINY_RUN],
        2,
        "train: config error: out: cannot use",
        "exists and is not a directory",
        {"f": _a_file},
    ),
    Case(
        "train-out-under-a-file",
        "train",
        ["run", "--shards", "{data}", "--out", "{f}/sub", *TINY_RUN],
        2,
        "train: config error: out: cannot use",
        "is a file, not a directory",
        {"f": _a_file},
    ),
    Case(
        "eval-out-is-a-file",
        "train",
        ["eval", "--checkpoint", "{ckpt}", "--shards", "{data}", "--out", "{f}", "--no-progress"],
        2,
        "train: error: ",
        "exists and is not a directory",
        {"f": _a_file},
    ),
    Case(
        "eval-out-under-a-file",
        "train",
        [
            "eval",
            "--checkpoint",
            "{ckpt}",
            "--shards",
            "{data}",
            "--out",
            "{f}/sub",
            "--no-progress",
        ],
        2,
        "train: error: ",
        "is a file, not a directory",
        {"f": _a_file},
    ),
    Case(
        "train-manifest-building",
        "train",
        ["run", "--shards", "{d}", "--out", "{tmp}/run", *TINY_RUN],
        1,
        "train: error: ",
        "not 'complete'",
        {"d": _building},
    ),
    Case(
        "eval-manifest-building",
        "train",
        ["eval", "--checkpoint", "{ckpt}", "--shards", "{d}", "--out", "{tmp}/ev"],
        1,
        "train: error: ",
        "not 'complete'",
        {"d": _building},
    ),
    Case(
        "train-manifest-json-list",
        "train",
        ["run", "--shards", "{d}", "--out", "{tmp}/run", *TINY_RUN],
        2,
        "train: config error: shards: ",
        "manifest",
        {"d": _json_list},
    ),
    Case(
        "train-manifest-n-samples-string",
        "train",
        ["run", "--shards", "{d}", "--out", "{tmp}/run", *TINY_RUN],
        2,
        "train: config error: shards: ",
        "n_samples",
        {"d": _n_samples_string},
    ),
    Case(
        "eval-manifest-non-tar-path",
        "train",
        ["eval", "--checkpoint", "{ckpt}", "--shards", "{d}", "--out", "{tmp}/ev"],
        1,
        "train: error: ",
        "is not a relative .tar path",
        {"d": _non_tar_path},
    ),
    Case(
        "inspect-garbage",
        "builder",
        ["inspect", "{f}"],
        2,
        "builder: error: ",
        "not a readable shard tar",
        {"f": _garbage},
    ),
    Case(
        "inspect-empty",
        "builder",
        ["inspect", "{f}"],
        2,
        "builder: error: ",
        "an empty file",
        {"f": _empty},
    ),
    Case(
        "inspect-directory",
        "builder",
        ["inspect", "{tmp}"],
        2,
        "builder: error: shard ",
        "is a directory, not a regular file",
    ),
    Case(
        "inspect-fifo",
        "builder",
        ["inspect", "{f}"],
        2,
        "builder: error: shard ",
        "is a FIFO (named pipe), not a regular file",
        {"f": _fifo},
    ),
    Case(
        "inspect-index",
        "builder",
        ["inspect", "{f}"],
        2,
        "builder: error: ",
        "is a shard's offset index; inspect the shard",
        {"f": _index_file},
    ),
    Case(
        "inspect-n-0",
        "builder",
        ["inspect", "{f}", "--png", "{tmp}/g.png", "--n", "0"],
        2,
        "builder: config error: n: samples in the PNG grid must be >= 1",
        prepare={"f": _a_shard},
    ),
    Case(
        "eval-checkpoint-config-mismatch",
        "train",
        ["eval", "--checkpoint", "{c}", "--shards", "{data}", "--out", "{tmp}/ev"],
        1,
        "train: error: ",
        "the weights do not fit the model described by its stored config",
        {"c": _mismatched_checkpoint},
    ),
    Case(
        "synth-parents-out-directory",
        "builder",
        ["synth-parents", "--n", "3", "--out", "{tmp}"],
        2,
        "builder: error: ",
        "is a directory",
    ),
    Case(
        "eval-dataloader-worker-error",
        "train",
        [
            "eval",
            "--checkpoint",
            "{ckpt}",
            "--shards",
            "{d}",
            "--split",
            "train",
            "--out",
            "{tmp}/ev",
            "--workers",
            "1",
            "--no-progress",
        ],
        1,
        "train: error: ",
        "(raised in DataLoader worker 0)",
        {"d": _worker_error},
    ),
]


def run_case(case: Case, env: Env, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    values = {"tmp": str(env.tmp), "data": str(env.data), "ckpt": str(env.checkpoint)}
    for name, prepare in (case.prepare or {}).items():
        values[name] = prepare(env)
    argv = [a.format(**values) for a in case.argv]
    main = builder_main if case.cli == "builder" else train_main
    capsys.readouterr()
    status = main(argv)
    return status, capsys.readouterr().err


def assert_one_line(err: str, message: str, contains: str = "") -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err
    assert lines[0].startswith(message), lines[0]
    assert contains in lines[0], lines[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_with_the_right_status(
    case: Case,
    data: Path,
    checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    status, err = run_case(case, Env(tmp_path, data, checkpoint), capsys)
    assert_one_line(err, case.message, case.contains)
    assert status == case.status, err


@pytest.mark.parametrize(
    ("prepare", "problem"),
    [(_json_list, "schema version None unsupported"), (_n_samples_string, "n_samples must be")],
)
def test_verify_reports_a_malformed_manifest(
    prepare: Callable[[Env], str],
    problem: str,
    data: Path,
    checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    root = prepare(Env(tmp_path, data, checkpoint))
    capsys.readouterr()
    assert builder_main(["verify", root]) == 1
    out, err = capsys.readouterr()
    assert err == "" and problem in out and "FAILED" in out


# ------------------------------------------------------------------ real file-system limits
def _can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None


@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A real tmpfs mounted at ``path`` (skips the test where this process may not mount)."""
    path.mkdir(parents=True, exist_ok=True)
    if not _can_mount():
        pytest.skip("needs root to mount a tmpfs")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def read_only_dir(tmp_path: Path) -> contextlib.AbstractContextManager[Path]:
    """A directory nobody (this process included) can write: a read-only tmpfs, or mode 0555."""
    if _can_mount():
        return tmpfs(tmp_path / "ro", "ro,size=64k")

    @contextlib.contextmanager
    def chmod_dir() -> Iterator[Path]:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o555)
        try:
            yield d
        finally:
            d.chmod(0o755)

    return chmod_dir()


@pytest.mark.parametrize("cli", ["builder", "train", "eval"])
def test_read_only_out_is_one_line_exit_2(
    cli: str, data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with read_only_dir(tmp_path) as ro:
        out = str(ro / "out")
        if cli == "builder":
            status = builder_main(["make-shards", "--n", "10", "--out", out, "--quiet"])
            prefix = "builder: error: "
        elif cli == "train":
            status = train_main(["run", "--shards", str(data), "--out", out, *TINY_RUN])
            prefix = "train: config error: out: cannot use"
        else:
            argv = ["eval", "--checkpoint", str(checkpoint), "--shards", str(data), "--out", out]
            status = train_main([*argv, "--no-progress"])
            prefix = "train: error: "
        err = capsys.readouterr().err
    assert_one_line(err, prefix)
    assert any(w in err for w in ("read-only", "Read-only", "permission denied")), err
    assert status == 2


def test_disk_full_is_one_line_exit_1(
    data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with tmpfs(tmp_path / "full", "size=256k") as small:
        status = builder_main(["make-shards", "--n", "40", "--out", str(small / "b"), "--quiet"])
        err = capsys.readouterr().err
        assert_one_line(err, "builder: error: ", "no space left on device")
        assert status == 1
        shutil.rmtree(small / "b", ignore_errors=True)
        argv = ["eval", "--checkpoint", str(checkpoint), "--shards", str(data)]
        (small / "filler").write_bytes(b"\0" * (250 * 1024))
        status = train_main([*argv, "--out", str(small / "ev"), "--no-progress"])
        err = capsys.readouterr().err
    assert_one_line(err, "train: error: ", "no space left on device")
    assert status == 1


def test_file_size_limit_is_one_line_exit_1(tmp_path: Path) -> None:
    """EFBIG: a real RLIMIT_FSIZE (Python ignores SIGXFSZ, so the write fails with EFBIG)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    done = subprocess.run(
        [sys.executable, "-m", "builder.cli", "make-shards", "--n", "40", "--quiet"]
        + ["--out", str(tmp_path / "b")],
        cwd=REPO,
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=300,
    )
    assert_one_line(done.stderr, "builder: error: ", "file too large")
    assert done.returncode == 1
