#!/usr/bin/env python3
"""Project tasks that need nothing but python3: set-up, the demo job, the tests, the benchmarks.

    python3 dev.py demo    # set up, build shards from the synthetic sky, train on CPU, evaluate, report
    python3 dev.py test    # set up, lint, run the test suite (the slow tests too when CI is set)
    python3 dev.py bench   # set up, run the CPU benchmarks (a few minutes)

Set-up creates ``.venv`` and installs this package with its dependencies from pyproject.toml; it is
skipped when pyproject.toml has not changed since the last install.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
DEMO = ROOT / "demo"


def run(*cmd: str | Path, **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kw)


def setup() -> None:
    """Create the virtualenv and install the package (editable) with its dev extras."""
    stamp = VENV / ".installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == want and PY.exists():
        return
    if not PY.exists():
        print(f"creating virtualenv {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PY, "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    stamp.write_text(want)


def tool(name: str) -> Path:
    return VENV / "bin" / name


def demo() -> None:
    """Build from the synthetic sky, audit, train the CPU preset, evaluate, score a new sample,
    write demo/REPORT.md."""
    shards, run_dir, eval_dir = DEMO / "shards", DEMO / "run", DEMO / "eval"
    survey, score_dir = DEMO / "survey.parquet", DEMO / "score"
    workers = str(min(2, os.cpu_count() or 1))
    run(
        tool("builder"),
        "make-shards",
        "--out",
        shards,
        "--n",
        "6000",
        "--workers",
        workers,
        "--samples-per-shard",
        "500",
        "--seed",
        "1",
        "--with-arcs",
    )
    run(tool("builder"), "verify", shards)
    run(
        tool("builder"),
        "inspect",
        shards / "train" / "train-000000.tar",
        "--png",
        DEMO / "inspect-train-000000.png",
        "--limit",
        "1",
    )
    # the shortcut audit: a failed gate is reported, not fatal to the demo
    audit = subprocess.run([str(tool("builder")), "audit", str(shards)], cwd=ROOT)
    print(f"builder audit exit status {audit.returncode} (0: every gate passed)", flush=True)
    resume = ["--resume"] if (run_dir / "checkpoints" / "last.pt").exists() else []
    run(tool("train"), "run", "--shards", shards, "--out", run_dir, "--preset", "cpu", *resume)
    best = run_dir / "checkpoints" / "best.pt"
    run(tool("train"), "eval", "--checkpoint", best, "--shards", shards, "--split", "test",
        "--out", eval_dir)  # fmt: skip
    # a new, unlabelled parent sample (other seed): what a search would look at
    run(tool("builder"), "synth-parents", "--out", survey, "--n", "2000", "--seed", "2",
        "--workers", workers)  # fmt: skip
    run(tool("train"), "score", "--checkpoint", best, "--parents", survey, "--out", score_dir,
        "--threshold", "nfp10", "--workers", "1")  # fmt: skip
    run(tool("train"), "report", "--shards", shards, "--run", run_dir, "--eval", eval_dir,
        "--out", DEMO / "REPORT.md")  # fmt: skip
    print(f"\nDemo finished: see {DEMO / 'REPORT.md'} and {score_dir / 'gallery' / 'index.html'}")


def test() -> None:
    """Lint, run the default suite, then (in CI, or with DEV_SLOW=1) the slow tests.

    The default suite (tests not marked ``slow``) is sized to stay under 5 minutes on 2 idle
    cores; the slow ones (real multi-process runs: torchrun on two "nodes", the end-to-end
    build -> train -> score) run in CI, where the 90-minute limit leaves ample room.
    """
    run(tool("ruff"), "check", ".")
    workers = str(min(2, os.cpu_count() or 1))
    run(PY, "-m", "pytest", "-n", workers, "-q", "--durations=15", "-m", "not slow", "tests")
    if os.environ.get("CI") or os.environ.get("DEV_SLOW"):
        cmd = [
            str(PY),
            "-m",
            "pytest",
            "-n",
            workers,
            "-q",
            "--durations=10",
            "-m",
            "slow",
            "tests",
        ]
        print("+", " ".join(cmd), flush=True)
        code = subprocess.run(cmd, cwd=ROOT).returncode
        if code not in (0, 5):  # 5: no test is marked slow
            raise subprocess.CalledProcessError(code, cmd)


def install_bench_extras() -> None:
    """Install the ``bench`` extra (the loader's peers, MosaicML streaming and litdata) without
    letting it move numpy or huggingface_hub (mosaicml-streaming declares numpy<2.2); if pip
    cannot, say so: bench_loader.py then skips the missing peers with a message."""
    pins = []
    for name in ("numpy", "huggingface_hub"):
        r = subprocess.run([PY, "-c", f"import {name}; print({name}.__version__)"],
                           capture_output=True, text=True)  # fmt: skip
        if r.returncode == 0:
            pins.append(f"{name}=={r.stdout.strip()}")
    constraints = VENV / "bench-constraints.txt"
    constraints.write_text("\n".join(pins) + "\n")
    try:
        run(PY, "-m", "pip", "install", "--quiet", "-e", ".[bench]", "-c", constraints)
    except subprocess.CalledProcessError:
        print(f"dev.py: could not install the bench extra alongside {pins}; peers not "
              "installed are skipped by bench_loader.py", flush=True)  # fmt: skip


def bench() -> None:
    """CPU benchmarks; results are printed and written to bench-out/."""
    out = ROOT / "bench-out"
    out.mkdir(exist_ok=True)
    install_bench_extras()
    for script in (
        "bench_metrics.py",
        "bench_injection.py",
        "bench_loader.py",
        "bench_storage.py",
        "bench_build.py",
    ):
        run(PY, ROOT / "benchmarks" / script, "--json", out / script.replace(".py", ".json"))


def main(argv: list[str]) -> int:
    tasks = {"demo": demo, "test": test, "bench": bench, "setup": lambda: None}
    if len(argv) != 1 or argv[0] not in tasks:
        print(__doc__)
        return 2
    setup()
    try:
        tasks[argv[0]]()
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
