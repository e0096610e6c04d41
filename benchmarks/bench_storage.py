"""Storage benchmark: bytes per sample of float32 vs float16 shards, and what float16 loses.

Writes the same synthetic-sky samples (hosts with injected arcs and controls) both ways and
reports bytes per sample and the float16 rounding error relative to each stamp's sky noise
(robust sigma of the outer annulus): the precision float16 storage loses.

    python benchmarks/bench_storage.py --n 400 --json out.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import write_json  # noqa: E402

from builder.build import BuildOptions, make_shards  # noqa: E402
from builder.config import load_build_config  # noqa: E402
from shards.manifest import Manifest  # noqa: E402
from shards.reader import IndexedShard  # noqa: E402


def build(out: Path, n: int, dtype: str, parents: Path | None) -> Manifest:
    overrides = {"output": {"dtype": dtype, "samples_per_shard": 1000},
                 "input": {"synthetic": {"n_parents": n}}}
    if parents is not None:
        overrides["input"] = {"kind": "parquet", "path": str(parents)}
    return make_shards(load_build_config(None, overrides), out, BuildOptions(progress=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        m32 = build(tmp / "f32", args.n, "float32", None)
        m16 = build(tmp / "f16", args.n, "float16", tmp / "f32" / "parents" / "synthetic.parquet")
        yy, xx = np.mgrid[:64, :64] - 31.5
        annulus = np.hypot(xx, yy) >= 20
        err_sky, err_rel = [], []
        for e32, e16 in zip(m32.shards, m16.shards, strict=True):
            a = IndexedShard(tmp / "f32" / e32.path)
            b = IndexedShard(tmp / "f16" / e16.path)
            for s32, s16 in zip(a.iter_samples(), b.iter_samples(), strict=True):
                x32 = s32["image"].astype(np.float64)
                diff = np.abs(s16["image"].astype(np.float64) - x32)
                ann = x32[:, annulus]
                sigma = 1.4826 * np.median(np.abs(ann - np.median(ann, axis=1, keepdims=True)), axis=1)
                err_sky.append(float((diff.max(axis=(1, 2)) / sigma).max()))
                bright = np.abs(x32) > 1e-3
                err_rel.append(float((diff[bright] / np.abs(x32[bright])).max()))
        per = lambda m: sum(s.bytes for s in m.shards) / sum(s.n_samples for s in m.shards)  # noqa: E731
        b32, b16 = per(m32), per(m16)
        write_json(args.json, {
            "benchmark": "storage", "n_samples": sum(s.n_samples for s in m32.shards),
            "bytes_per_sample_float32": round(b32), "bytes_per_sample_float16": round(b16),
            "ratio_float16_to_float32": round(b16 / b32, 3),
            "bytes_for_1.3M_float32_GB": round(b32 * 1.3e6 / 1e9, 1),
            "bytes_for_1.3M_float16_GB": round(b16 * 1.3e6 / 1e9, 1),
            "float16_max_abs_error_over_sky_sigma_max": max(err_sky),
            "float16_max_abs_error_over_sky_sigma_median": float(np.median(err_sky)),
            "float16_max_relative_error": max(err_rel),
            "note": "bytes include the .json metadata and the tar headers",
        })


if __name__ == "__main__":
    main()
