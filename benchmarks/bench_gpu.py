"""GPU benchmark: training samples/s, whether N loader workers keep the GPU fed, scoring throughput.

One command on a CUDA machine (it refuses, exit code 2, anywhere else)::

    python benchmarks/bench_gpu.py --json bench-out/bench_gpu.json
        [--n 20000] [--workers 0 2 4 8 12] [--repeats 5] [--steps 30] [--batch-size 256]

What it measures (``--only`` picks a subset of ``train,feed,score``), all with the GPU preset's
model (``train/presets/gpu.yaml``: convnext_tiny with the 64x64 stride-2 stem, AdamW, BCE):

train
    Optimiser steps on device-resident random batches of 64x64x3 stamps (no loader): forward
    with the backbone under bfloat16 autocast, channels_last, loss, backward, gradient clipping,
    AdamW step, exactly as ``train run`` does. Eager and ``torch.compile``; median of
    ``--repeats`` timed blocks of ``--steps`` steps after warm-up (compilation not timed).
feed
    The same step (eager) fed by the real loader (``train.data.make_loader``: indexed shard
    reads, decode, shuffle, annulus normalisation, dihedral augmentation, collate) with
    ``N`` DataLoader workers, on a dataset built with ``builder make-shards --n N``. The GPU
    idle fraction is 1 - (sum of per-step GPU time between CUDA events) / (GPU time from the
    first to the last step): the share of the GPU timeline spent waiting for batches.
score
    ``train score`` end to end (subprocess: start-up, model load, reading and preprocessing the
    parents, forward, outputs) on the build's parent Parquet with a checkpoint from a 3-step
    ``train run``; and the scoring kernel alone (eval forward of device-resident batches, eager
    and compiled), the ceiling of ``train score`` on this GPU.

Nothing is downloaded; only what the project installs is used.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

NO_CUDA = 2  # exit code on a machine without CUDA


def require_cuda() -> None:
    """Exit with a one-line message and code 2 when there is no CUDA device."""
    import torch

    if not torch.cuda.is_available():
        print(
            "bench_gpu: no CUDA device here (torch.cuda.is_available() is False); run it on a "
            "CUDA machine",
            file=sys.stderr,
        )
        raise SystemExit(NO_CUDA)


# --------------------------------------------------------------------------- timing


class StepTimer:
    """Per-step device time: CUDA events on a GPU, wall clock after a sync elsewhere."""

    def __init__(self, device):
        import torch

        self.torch = torch
        self.cuda = device.type == "cuda"
        self.marks: list[tuple[Any, Any]] = []

    def _now(self):
        if self.cuda:
            ev = self.torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def start(self):
        return self._now()

    def stop(self, start) -> None:
        self.marks.append((start, self._now()))

    def busy_and_span_ms(self, skip: int = 0) -> tuple[float, float]:
        """Sum of step times and the span from the first step's start to the last step's end."""
        marks = self.marks[skip:]
        if not marks:
            return 0.0, 0.0
        if self.cuda:
            self.torch.cuda.synchronize()
            busy = sum(a.elapsed_time(b) for a, b in marks)
            span = marks[0][0].elapsed_time(marks[-1][1])
        else:
            busy = sum(b - a for a, b in marks) * 1e3
            span = (marks[-1][1] - marks[0][0]) * 1e3
        return busy, span


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


# --------------------------------------------------------------------------- model pieces


def gpu_train_config(overrides: dict[str, Any] | None = None):
    """The GPU preset's TrainConfig (plus dotted-key overrides as a nested mapping)."""
    from train.config import resolve_config

    return resolve_config(preset="gpu", overrides=overrides or {})


def make_step(cfg, device, compile_model: bool):
    """(model, step function) doing what the trainer's training step does."""
    import torch

    from train.losses import build_loss
    from train.model import build_model
    from train.optim import build_optimizer, clip_gradients

    torch.manual_seed(0)
    model = build_model(cfg.model).place(device, cfg.precision, cfg.channels_last)
    model.train()
    forward = torch.compile(model) if compile_model else model
    loss_fn = build_loss(cfg.loss)
    opt = build_optimizer(model, cfg.optim)

    def step(image, meta, label, weight):
        logits = forward(image, meta)
        loss = loss_fn(logits, label, weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(model.parameters(), cfg.optim.grad_clip_norm)
        opt.step()
        return loss

    return model, step


def random_batch(batch_size: int, device, channels_last: bool):
    import torch

    g = torch.Generator(device="cpu").manual_seed(1)
    image = torch.randn(batch_size, 3, 64, 64, generator=g)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    image = image.to(device, memory_format=fmt)
    meta = torch.rand(batch_size, 6, generator=g).to(device)
    label = (torch.rand(batch_size, generator=g) < 0.5).float().to(device)
    weight = torch.ones(batch_size, device=device)
    return image, meta, label, weight


def train_throughput(
    cfg, device, *, compile_model: bool, batch_size: int, steps: int, repeats: int, warmup: int = 5
) -> dict[str, Any]:
    """Training samples/s on device-resident batches (median of ``repeats`` blocks)."""
    model, step = make_step(cfg, device, compile_model)
    batch = random_batch(batch_size, device, model.channels_last)
    t0 = time.perf_counter()
    for _ in range(warmup):
        step(*batch)
    sync(device)
    warmup_s = time.perf_counter() - t0
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step(*batch)
        sync(device)
        rates.append(batch_size * steps / (time.perf_counter() - t0))
    return {
        "samples_per_s": statistics.median(rates),
        "runs": rates,
        "warmup_s": warmup_s,
        "batch_size": batch_size,
        "compile": compile_model,
        "amp_dtype": str(model.amp_dtype),
        "channels_last": model.channels_last,
    }


def score_kernel(
    cfg, device, *, compile_model: bool, batch_size: int, steps: int, repeats: int
) -> dict[str, Any]:
    """Eval forward of device-resident batches: the scoring kernel's samples/s."""
    import torch

    from train.model import build_model

    model = build_model(cfg.model).place(device, cfg.precision, cfg.channels_last).eval()
    forward = torch.compile(model) if compile_model else model
    image, meta, _, _ = random_batch(batch_size, device, model.channels_last)
    with torch.no_grad():
        for _ in range(3):
            forward(image, meta)
        sync(device)
        rates = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(steps):
                forward(image, meta)
            sync(device)
            rates.append(batch_size * steps / (time.perf_counter() - t0))
    return {
        "samples_per_s": statistics.median(rates),
        "runs": rates,
        "batch_size": batch_size,
        "compile": compile_model,
    }


def feed(
    cfg,
    device,
    shards: Path,
    workers: int,
    *,
    batch_size: int,
    max_steps: int | None,
    skip: int = 5,
) -> dict[str, Any]:
    """One training epoch from the real loader with ``workers`` workers; GPU idle fraction."""
    from train.data import make_loader
    from train.evaluate import move_batch
    from train.runtime import apply_thread_plan, plan_threads

    apply_thread_plan(plan_threads(workers))  # as `train run` does: workers + intra-op <= cores
    cfg.data.num_workers = workers
    cfg.data.batch_size = batch_size
    model, step = make_step(cfg, device, compile_model=False)
    loader = make_loader(shards, "train", cfg.data, epoch=0, rank=0, world_size=1, training=True)
    timer = StepTimer(device)
    n = 0
    t_first = None
    for i, batch in enumerate(loader):
        if max_steps is not None and i >= max_steps:
            break
        if i == skip:
            t_first = time.perf_counter()
        image, meta, label, weight = move_batch(batch, device, model.channels_last)
        start = timer.start()
        step(image, meta, label, weight)
        timer.stop(start)
        if i >= skip:
            n += int(batch["weight"].sum())
    sync(device)
    wall = time.perf_counter() - t_first if t_first is not None else float("nan")
    busy, span = timer.busy_and_span_ms(skip)
    return {
        "workers": workers,
        "samples": n,
        "samples_per_s": n / wall if wall else None,
        "gpu_busy_ms": busy,
        "gpu_span_ms": span,
        "gpu_idle_fraction": 1.0 - busy / span if span else None,
    }


# --------------------------------------------------------------------------- subprocess steps


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, cwd=ROOT, **kw)


def build_dataset(work: Path, n: int, workers: int) -> Path:
    shards = work / f"shards-{n}"
    if not (shards / "manifest.json").exists():
        run(
            [
                str(BIN / "builder"),
                "make-shards",
                "--out",
                str(shards),
                "--n",
                str(n),
                "--workers",
                str(workers),
                "--samples-per-shard",
                "1000",
                "--seed",
                "7",
                "--quiet",
            ]
        )
    return shards


def make_checkpoint(work: Path, shards: Path) -> Path:
    ckpt = work / "run" / "checkpoints" / "best.pt"
    if not ckpt.exists():
        shutil.rmtree(work / "run", ignore_errors=True)
        run(
            [
                str(BIN / "train"),
                "run",
                "--shards",
                str(shards),
                "--out",
                str(work / "run"),
                "--preset",
                "gpu",
                "--epochs",
                "1",
                "--max-steps-per-epoch",
                "3",
                "--no-progress",
            ]
        )
    return ckpt


def train_score(
    work: Path, shards: Path, ckpt: Path, *, workers: int, batch_size: int, repeats: int
) -> dict[str, Any]:
    """``train score`` end to end on the build's parent Parquet (median wall time)."""
    parents = shards / "parents" / "synthetic.parquet"
    times, n = [], None
    for r in range(repeats):
        out = work / f"score-{r}"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        run(
            [
                str(BIN / "train"),
                "score",
                "--checkpoint",
                str(ckpt),
                "--parents",
                str(parents),
                "--out",
                str(out),
                "--workers",
                str(workers),
                "--batch-size",
                str(batch_size),
                "--device",
                "cuda",
                "--no-progress",
            ],
            capture_output=True,
        )
        times.append(time.perf_counter() - t0)
        n = json.loads((out / "summary.json").read_text()).get("n_scored")
        shutil.rmtree(out, ignore_errors=True)
    sec = statistics.median(times)
    return {
        "n_scored": n,
        "median_s": sec,
        "runs_s": times,
        "samples_per_s": (n / sec) if n else None,
        "workers": workers,
        "batch_size": batch_size,
    }


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="galaxies in the feed/score dataset")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4, 8, 12])
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--score-batch-size", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=30, help="steps per timed block")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", default="train,feed,score")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile runs")
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench-out" / "gpu-work")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    require_cuda()  # before anything slow

    import torch

    from train.runtime import available_cores

    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    only = set(args.only.split(","))
    cores = available_cores()
    report: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cores": cores,
        "load_1min_start": os.getloadavg()[0],
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    compiles = [False] if args.no_compile else [False, True]
    cfg = gpu_train_config()
    if "train" in only:
        report["train"] = {}
        for c in compiles:
            name = "compile" if c else "eager"
            res = train_throughput(
                cfg,
                device,
                compile_model=c,
                batch_size=args.batch_size,
                steps=args.steps,
                repeats=args.repeats,
            )
            report["train"][name] = res
            print(f"train {name}: {res['samples_per_s']:.0f} samples/s", file=sys.stderr)
    if {"feed", "score"} & only:
        args.workdir.mkdir(parents=True, exist_ok=True)
        shards = build_dataset(args.workdir, args.n, min(cores, 16))
    if "feed" in only:
        report["feed"] = []
        for w in args.workers:
            res = feed(
                gpu_train_config(), device, shards, w, batch_size=args.batch_size, max_steps=None
            )
            report["feed"].append(res)
            print(
                f"feed workers={w}: {res['samples_per_s']:.0f} samples/s, GPU idle "
                f"{res['gpu_idle_fraction']:.2f}",
                file=sys.stderr,
            )
    if "score" in only:
        report["score_kernel"] = {}
        for c in compiles:
            name = "compile" if c else "eager"
            res = score_kernel(
                cfg,
                device,
                compile_model=c,
                batch_size=args.score_batch_size,
                steps=args.steps,
                repeats=args.repeats,
            )
            report["score_kernel"][name] = res
            print(f"score kernel {name}: {res['samples_per_s']:.0f} samples/s", file=sys.stderr)
        ckpt = make_checkpoint(args.workdir, shards)
        report["train_score"] = train_score(
            args.workdir,
            shards,
            ckpt,
            workers=min(8, max(cores - 1, 0)),
            batch_size=args.score_batch_size,
            repeats=args.repeats,
        )
        print(f"train score: {report['train_score']['samples_per_s']} samples/s", file=sys.stderr)
    report["load_1min_end"] = os.getloadavg()[0]
    text = json.dumps(report, indent=1, default=str)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
