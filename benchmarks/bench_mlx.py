"""breccia-mlx on the MLX CPU backend: fused ``mx.quantized_matmul`` path vs dequantize + matmul, and cast throughput.

Run: ``python benchmarks/bench_mlx.py [--k 2048 --n 2048 --reps 5]``. Prints two tables (median wall time, and
ratios against the obvious baseline). MLX is lazy: every timed call ends in ``mx.eval`` so the work is counted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import mlx.core as mx
import numpy as np

import breccia
from breccia.mlx import BACKEND, MLXQuantized
from breccia.mlx._backend import fused_weight


def timeit(fn: Callable[[], Any], reps: int) -> float:
    """Median seconds of ``reps`` calls after one warm-up; each call is forced with ``mx.eval``."""
    mx.eval(fn())
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        mx.eval(out) if not isinstance(out, breccia.ScaledTensor) else mx.eval(out.data, out.scale)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


RECIPES: list[tuple[str, breccia.Recipe]] = [
    ("mxfp8", breccia.MXFP8BlockScaling()),
    ("mxfp4", breccia.MXFP4BlockScaling()),
    ("nvfp4", breccia.NVFP4BlockScaling()),
    ("int4 g64 (affine)", breccia.INT4Scaling(group_size=64)),
]


def bench_matmul(k: int, n: int, reps: int) -> None:
    w = mx.random.normal((k, n), key=mx.random.key(0)) / np.sqrt(k)
    print(f"\nmatmul x[M, {k}] @ W[{k}, {n}] (W cast along K), fp32 out, median ms")
    print(
        f"{'recipe':<18} {'M':>4} {'fused':>8} {'dequant+mm':>11} {'breccia':>8} {'fp32 mm':>8} {'dequant/fused':>14}"
    )
    for name, recipe in RECIPES:
        st = breccia.cast(w, recipe, axis=0)
        q = fused_weight(st)
        assert q is not None
        scales = q.scales if q.biases is None else q.scales.astype(mx.float32)
        wq = BACKEND.dequantize(st, None)
        mx.eval(wq)
        for m in (1, 4, 16, 64):
            x = mx.random.normal((m, k), key=mx.random.key(1))
            row = _matmul_row(x, st, q, scales, wq, reps)
            cells = f"{row[0]:>8.2f} {row[1]:>11.2f} {row[2]:>8.2f} {row[3]:>8.2f}"
            print(f"{name:<18} {m:>4} {cells} {row[1] / row[0]:>13.1f}x")


def _matmul_row(
    x: mx.array, st: breccia.ScaledTensor, q: MLXQuantized, scales: mx.array, wq: mx.array, reps: int
) -> list[float]:
    """ms of: MLX's fused kernel on the converted weight, dequantize + matmul, breccia.matmul, dense fp32."""
    glob = mx.array(1.0) if st.global_scale is None else st.global_scale
    fns: list[Callable[[], Any]] = [
        lambda: mx.quantized_matmul(x, q.w_q, scales, q.biases, transpose=True, **q.kwargs) * glob,
        lambda: mx.matmul(x, BACKEND.dequantize(st, None)),
        lambda: breccia.matmul(x, st),
        lambda: mx.matmul(x, wq),
    ]
    return [timeit(f, reps) * 1e3 for f in fns]


def bench_cast(rows: int, cols: int, reps: int) -> None:
    x = mx.random.normal((rows, cols), key=mx.random.key(2)) * 3
    xn = np.array(x)
    mib = x.nbytes / 2**20
    print(f"\ncast of a {rows}x{cols} fp32 tensor ({mib:.0f} MiB), median ms (GB/s of fp32 input)")
    rows_out: list[tuple[str, float]] = [
        ("mx.to_fp8 (bare E4M3, no scaling)", timeit(lambda: mx.to_fp8(x), reps)),
        ("mx.quantize mode=mxfp8", timeit(lambda: mx.quantize(x, mode="mxfp8")[0], reps)),
        ("breccia.cast mlx MXFP8", timeit(lambda: breccia.cast(x, breccia.MXFP8BlockScaling()), reps)),
        ("breccia.cast numpy MXFP8 (reference)", timeit(lambda: breccia.cast(xn, breccia.MXFP8BlockScaling()), reps)),
        ("mx.quantize mode=nvfp4", timeit(lambda: mx.quantize(x, mode="nvfp4")[0], reps)),
        (
            "breccia.cast mlx NVFP4 (one-level)",
            timeit(lambda: breccia.cast(x, breccia.NVFP4BlockScaling(per_tensor_scale=False)), reps),
        ),
        (
            "breccia.cast mlx Float8CurrentScaling",
            timeit(lambda: breccia.cast(x, breccia.Float8CurrentScaling()), reps),
        ),
    ]
    base = rows_out[0][1]
    print(f"{'operation':<40} {'ms':>8} {'GB/s':>7} {'vs to_fp8':>10}")
    for name, t in rows_out:
        print(f"{name:<40} {t * 1e3:>8.1f} {x.nbytes / t / 1e9:>7.2f} {t / base:>9.1f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--k", type=int, default=2048)
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    print(f"mlx {mx.__version__}, device {mx.default_device()}")
    bench_matmul(a.k, a.n, a.reps)
    bench_cast(a.k, a.n * 2, a.reps)


if __name__ == "__main__":
    main()
