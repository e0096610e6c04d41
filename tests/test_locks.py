"""One writer per output directory, temp sweeps that spare live writers, no orphaned workers.

Issue 16 items 10, 11 and 12, with real processes: a real build or training run in a
subprocess holds the directory while a second one is started in this process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builder.cli import main as builder_main
from common.atomic import remove_stale_tmp
from common.lock import LOCK_NAME, DirLock, LockError, pid_alive
from tests.runs import TINY_RUN_FLAGS, write_dataset
from train.cli import main as train_main

REPO = Path(__file__).resolve().parents[1]


def python(*code_or_args: str) -> list[str]:
    return [sys.executable, *code_or_args]


def wait_for(predicate, timeout_s: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def hold_lock(directory: Path, seconds: float) -> subprocess.Popen:
    """A real other process holding ``directory``'s lock for ``seconds``."""
    code = (
        "import sys, time; from common.lock import DirLock\n"
        f"with DirLock({str(directory)!r}, 'build'):\n"
        "    print('locked', flush=True); time.sleep(float(sys.argv[1]))\n"
    )
    proc = subprocess.Popen(
        python("-c", code, str(seconds)), cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def dead_pid() -> int:
    proc = subprocess.Popen(python("-c", "pass"))
    proc.wait()
    return proc.pid


# ----------------------------------------------------------------------------- the lock
def test_lock_refuses_a_second_owner_and_names_the_first(tmp_path: Path) -> None:
    holder = hold_lock(tmp_path, 30)
    try:
        with pytest.raises(LockError, match=rf"in use by another build: pid {holder.pid} on host"):
            DirLock(tmp_path, "build").acquire()
        info = json.loads((tmp_path / LOCK_NAME).read_text())
        assert info["pid"] == holder.pid and info["started_utc"].endswith("Z")
    finally:
        holder.kill()
        holder.wait()
    # the kernel dropped the flock of the SIGKILLed owner: the lock is free (its file is stale)
    assert (tmp_path / LOCK_NAME).exists()
    with DirLock(tmp_path, "build") as lock:
        assert lock.held and json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_NAME).exists()


def test_wait_waits_for_the_owner_to_finish(tmp_path: Path) -> None:
    holder = hold_lock(tmp_path, 1.5)
    t0 = time.monotonic()
    with DirLock(tmp_path, "build", wait=True, poll_s=0.05):
        assert holder.poll() is not None, "acquired while the other process still held it"
    assert time.monotonic() - t0 > 0.5
    holder.wait()


def test_without_flock_a_dead_owners_lock_is_stale_and_replaced(tmp_path: Path) -> None:
    """The O_EXCL fallback (file systems without flock): pid liveness decides."""
    import socket

    lock = DirLock(tmp_path, "build")
    info = {"pid": dead_pid(), "host": socket.gethostname(), "started_utc": "x"}
    lock.path.write_text(json.dumps(info))
    assert lock._try_exclusive_file()  # stale: replaced
    assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    lock.release()
    info["pid"] = os.getppid()  # alive
    lock.path.write_text(json.dumps(info))
    with pytest.raises(LockError, match=f"pid {os.getppid()}"):
        other = DirLock(tmp_path, "build")
        if not other._try_exclusive_file():
            raise other._refusal()


def test_sweep_removes_only_temporaries_of_dead_writers(tmp_path: Path) -> None:
    live = subprocess.Popen(python("-c", "import time; time.sleep(30)"))
    try:
        (tmp_path / "train").mkdir()
        mine_dead = tmp_path / "train" / f".a.tar.tmp-{dead_pid()}"
        theirs_live = tmp_path / "train" / f".b.tar.tmp-{live.pid}"
        no_pid = tmp_path / ".c.tmp-notapid"
        for p in (mine_dead, theirs_live, no_pid):
            p.write_bytes(b"partial")
        assert remove_stale_tmp(tmp_path) == [mine_dead]
        assert theirs_live.exists() and no_pid.exists()
        assert pid_alive(live.pid) and not pid_alive(dead_pid())
    finally:
        live.kill()
        live.wait()


# ------------------------------------------------------------------ builds (item 10)
def start_build(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        python("-m", "builder.cli", "make-shards", "--out", str(out), "--quiet", *extra),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_second_build_is_refused_and_the_first_is_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    first = start_build(out, "--n", "240", "--samples-per-shard", "20")
    try:
        # past its own start-up sweep once the manifest (status 'building') is written
        wait_for(lambda: (out / "manifest.json").exists(), what="the first build's manifest")
        assert (out / LOCK_NAME).exists()
        # a temporary of the running build (live pid): the second build must not delete it
        (out / "train").mkdir(parents=True, exist_ok=True)
        canary = out / "train" / f".canary.tar.tmp-{first.pid}"
        canary.write_bytes(b"in progress")
        for extra in ([], ["--seed", "7"], ["--parents", str(tmp_path / "missing.parquet")]):
            rc = builder_main(["make-shards", "--out", str(out), "--n", "240", "--quiet", *extra])
            err = capsys.readouterr().err
            assert rc == 2 and err.count("\n") == 1, err
            if "--parents" not in extra:  # (a missing input may be refused even earlier)
                assert err.startswith(f"builder: error: {out} is in use by another build: pid ")
                assert f"pid {first.pid}" in err
            assert canary.exists(), "the refused build deleted the running build's temporary"
    finally:
        _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    canary.unlink(missing_ok=True)  # the first build sweeps its own temporaries when done
    assert builder_main(["verify", str(out)]) == 0
    assert not (out / LOCK_NAME).exists()


def test_a_build_with_wait_runs_after_the_owner(tmp_path: Path) -> None:
    out = tmp_path / "out"
    holder = hold_lock(out, 1.0)
    assert builder_main(["make-shards", "--out", str(out), "--n", "20", "--quiet", "--wait"]) == 0
    assert holder.wait() == 0
    assert (out / "manifest.json").is_file()


# -------------------------------------------------------------- orphans (item 11)
def children_of(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_pool_workers_exit_when_the_main_process_is_killed(tmp_path: Path) -> None:
    build = start_build(tmp_path / "out", "--n", "400", "--workers", "2")
    try:
        wait_for(lambda: len(children_of(build.pid)) >= 2, 120, "two pool workers")
        workers = children_of(build.pid)
        os.kill(build.pid, signal.SIGKILL)
        build.wait()
        deadline = time.monotonic() + 10
        while any(pid_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        alive = [w for w in workers if pid_alive(w)]
    finally:
        for w in children_of(build.pid):
            os.kill(w, signal.SIGKILL)
    assert not alive, f"orphaned workers still running 10 s after the main process died: {alive}"


# ------------------------------------------------------------ training runs (item 12)
TINY = TINY_RUN_FLAGS


def test_a_second_training_run_into_the_same_out_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    first = subprocess.Popen(
        python("-m", "train.cli", "run", "--shards", str(data), "--out", str(out), *TINY)
        + ["--epochs", "2"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: (out / LOCK_NAME).exists(), 120, "the first run's lock")
        rc = train_main(["run", "--shards", str(data), "--out", str(out), *TINY, "--epochs", "1"])
        err = capsys.readouterr().err
        assert rc == 2
        assert err.startswith(f"train: config error: out: {out} is in use by another training run")
        assert f"pid {first.pid}" in err and err.count("\n") == 1
    finally:
        _, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    history = json.loads((out / "history.json").read_text())
    assert [r["epoch"] for r in history] == [0, 1]  # the first run's, not replaced
    assert not (out / LOCK_NAME).exists()
