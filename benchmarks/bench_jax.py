"""Jitted breccia-jax cast throughput per recipe on CPU vs a bare jitted ``x.astype(jnp.float8_e4m3fn)``.

Prints a markdown table: time per cast and the ratio to the bare FP8 conversion (which does no scaling, no
clamping and no block reduction, so it is a floor, not a competitor). ``--shape`` and ``--reps`` adjust the size.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

import breccia
from breccia._testing import make_x

RECIPES = [
    breccia.Float8CurrentScaling(),
    breccia.Float8BlockScaling(),
    breccia.Float8BlockScaling(block_m=128),
    breccia.MXFP8BlockScaling(),
    breccia.MXFP4BlockScaling(),
    breccia.MXFP6BlockScaling(element="E2M3"),
    breccia.NVFP4BlockScaling(),
    breccia.INT4Scaling(),
    breccia.INT8Scaling(),
]


def best_of(fn: Callable[[Any], Any], x: Any, reps: int) -> float:
    jax.block_until_ready(fn(x))  # compile
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn(x))
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--shape", type=int, nargs=2, default=(2048, 2048))
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    x = jnp.asarray(make_x(tuple(a.shape), seed=0))
    base = best_of(jax.jit(lambda v: v.astype(jnp.float8_e4m3fn)), x, a.reps)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, input fp32 {tuple(a.shape)}\n")
    print("| recipe | ms per cast | GB/s (input) | ratio vs bare astype |")
    print("|---|---:|---:|---:|")
    print(f"| bare `astype(float8_e4m3fn)` | {base * 1e3:.2f} | {x.nbytes / base / 1e9:.2f} | 1.0 |")
    for r in RECIPES:
        t = best_of(jax.jit(lambda v, r=r: breccia.cast(v, r)), x, a.reps)
        print(f"| `{breccia._testing.recipe_id(r)[:60]}` | {t * 1e3:.2f} | {x.nbytes / t / 1e9:.2f} | {t / base:.1f} |")


if __name__ == "__main__":
    main()
