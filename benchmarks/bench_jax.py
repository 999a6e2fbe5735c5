"""Jitted breccia-jax cast throughput per recipe vs a bare jitted ``x.astype(jnp.float8_e4m3fn)`` and a device copy.

Prints a markdown table: time per cast, GB/s (bytes read + written), the ratio to a jitted copy's bandwidth, and
throughput relative to the bare FP8 conversion (no scaling, clamping or block reduction: a floor, not a competitor;
issue 6's CPU goal is ≥ 0.5 for FP8 recipes). Runs on JAX's default device. ``--shape`` and ``--reps`` adjust.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import interleaved_min

# isort: split
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
    p.add_argument("--reps", type=int, default=7)
    a = p.parse_args()
    x = jnp.asarray(make_x(tuple(a.shape), seed=0))
    base = best_of(jax.jit(lambda v: v.astype(jnp.float8_e4m3fn)), x, a.reps)
    copy = best_of(jax.jit(lambda v: v + 1.0), x, a.reps)  # reads and writes fp32: the device-copy bandwidth
    copy_bw = 2 * x.nbytes / copy / 1e9
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, input fp32 {tuple(a.shape)}")
    print(f"copy baseline (jitted x + 1): {copy * 1e3:.3f} ms, {copy_bw:.0f} GB/s read + written\n")
    print("| recipe | ms per cast | GB/s read + written | vs copy | throughput vs bare astype |")
    print("|---|---:|---:|---:|---:|")
    bare_bw = (x.nbytes + x.size) / base / 1e9
    print(f"| bare `astype(float8_e4m3fn)` | {base * 1e3:.3f} | {bare_bw:.0f} | {bare_bw / copy_bw:.2f} | 1.00 |")
    bare = jax.jit(lambda v: v.astype(jnp.float8_e4m3fn))
    for r in RECIPES:
        fn = jax.jit(lambda v, r=r: breccia.cast(v, r))
        st = fn(x)
        out = sum(int(b.nbytes) for b in (st.data, st.scale, st.global_scale, st.zero_point) if b is not None)
        # the ratio: this cast and the bare conversion timed in interleaved rounds (same machine state)
        pair = interleaved_min(
            {"bare": lambda: jax.block_until_ready(bare(x)), "cast": lambda fn=fn: jax.block_until_ready(fn(x))},
            a.reps,
        )
        t = pair["cast"]
        bw = (x.nbytes + out) / t / 1e9
        name = breccia._testing.recipe_id(r)[:60]
        print(f"| `{name}` | {t * 1e3:.3f} | {bw:.0f} | {bw / copy_bw:.2f} | {pair['bare'] / t:.2f} |")


if __name__ == "__main__":
    main()
