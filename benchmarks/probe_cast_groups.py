"""Probe: INT4 asymmetric group casts through the one-group-per-thread kernel (``_kernel_groups``) against the row
kernel (``_kernel.quant_rows_kernel``), beside a device copy, on one CUDA GPU.

Each variant's output is first compared byte for byte with breccia-torch's eager cast of the same input; then the
kernels and ``x.clone()`` are timed as GPU time (CUDA-graph replays) in the same interleaved rounds, and each
kernel's bandwidth (bytes read + written) is reported as a multiple of the copy's. ``ROUNDS`` (default 3)."""

from __future__ import annotations

import os
import sys
from functools import partial

import torch

sys.path.insert(0, os.path.dirname(__file__))
import bench_triton_cast as btc
from bench_gpu import eager, fresh_input, gpu_time

import breccia
from breccia.triton import _cast as tc

CASES = [
    ("INT4 g128 asymmetric (uint4, fp16 scale)", breccia.INT4Scaling(group_size=128, symmetric=False, signed=False)),
    ("INT4 g128 asymmetric (int4, fp16 scale)", breccia.INT4Scaling(group_size=128, symmetric=False)),
    ("INT4 g64 asymmetric (bf16 scale)", breccia.INT4Scaling(group_size=64, symmetric=False, scale_dtype="bf16")),
    ("INT4 g32 asymmetric (fp32 scale)", breccia.INT4Scaling(group_size=32, symmetric=False, scale_dtype="fp32")),
]


def _kernel(x2: torch.Tensor, recipe: breccia.Recipe, plan: object, groups: bool) -> tuple[torch.Tensor, ...]:
    saved = tc.GROUP_KERNEL
    tc.GROUP_KERNEL = groups
    try:
        return tc._launch(x2, recipe, plan, None, int(x2.shape[0]))
    finally:
        tc.GROUP_KERNEL = saved


def _cell(ms: float, moved: int, copy_gbs: float, mismatch: str) -> str:
    """µs and bandwidth as a multiple of the copy's, or the mismatch that kept the variant from being timed."""
    return mismatch or f"{ms * 1e3:.1f} ({moved / ms / 1e6 / copy_gbs:.2f}×)"


def main() -> None:
    rounds = int(os.environ.get("ROUNDS", "3"))
    print(f"card: {torch.cuda.get_device_name()} · torch {torch.__version__}\n")
    print("| recipe | input | bytes moved | copy GB/s | row kernel µs (× copy) | group kernel µs (× copy) "
          "| group / row |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|")
    for i, (name, recipe) in enumerate(CASES):
        for dtype in (torch.bfloat16, torch.float16):
            x = fresh_input(8192, 8192, 7 + i).to(dtype)
            ref = eager(x, recipe, recipe.default_layout(-1))
            cells = {}
            for groups in (False, True):
                tc.GROUP_KERNEL = groups
                st = tc.cast(x, recipe)
                tc.GROUP_KERNEL = True
                cells[groups] = "" if st is not None and btc.same(st, ref) else f"MISMATCH {btc.diff(st, ref)}"
            moved = btc.moved(x, ref)
            plan = tc._plan(x, recipe, recipe.default_layout(-1))
            x2 = x.reshape(-1, 8192)
            t = gpu_time({"copy": x.clone, "row": partial(_kernel, x2, recipe, plan, False),
                          "group": partial(_kernel, x2, recipe, plan, True)}, rounds)  # fmt: skip
            copy_gbs = 2 * btc.nbytes(x) / t["copy"] / 1e6
            row, grp = (_cell(t[v], moved, copy_gbs, cells[v == "group"]) for v in ("row", "group"))
            print(f"| {name} | {str(dtype)[6:]} | {moved / 1e6:.1f} MB | {copy_gbs:.0f} | {row} | {grp} | "
                  f"{t['row'] / t['group']:.2f}× |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
