"""benchmarks/bench_gpu.py: refuses cleanly without CUDA; its measurement code runs (on CPU here)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.datasets import make_tiny_dataset
from train.config import resolve_config

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_gpu.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_refuses_without_cuda_with_one_line_and_exit_code_2(tmp_path):
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", str(tmp_path / "out.json"),
         "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "CUDA" in lines[0] and lines[0].startswith("bench_gpu:")
    assert r.stdout == ""
    assert not (tmp_path / "out.json").exists() and not (tmp_path / "work").exists()


def test_measurement_functions_run_on_cpu(tmp_path):
    """The same functions the GPU run calls, with the CPU preset's small model on CPU: they
    produce positive throughputs, and the feed loop sees every training sample once."""
    bench = _module()
    cfg = resolve_config(preset="cpu")
    cpu = torch.device("cpu")
    train = bench.train_throughput(cfg, cpu, compile_model=False, batch_size=4, steps=1,
                                   repeats=2, warmup=1)  # fmt: skip
    assert train["samples_per_s"] > 0 and len(train["runs"]) == 2
    kernel = bench.score_kernel(cfg, cpu, compile_model=False, batch_size=4, steps=1, repeats=2)
    assert kernel["samples_per_s"] > 0
    manifest = make_tiny_dataset(tmp_path / "ds")
    fed = bench.feed(resolve_config(preset="cpu"), cpu, tmp_path / "ds", 0, batch_size=2,
                     max_steps=None, skip=1)  # fmt: skip
    n_train = manifest.expected("train")
    assert fed["samples"] == n_train - 2  # the first (skipped) batch of 2 is not timed
    assert 0.0 <= fed["gpu_idle_fraction"] < 1.0
