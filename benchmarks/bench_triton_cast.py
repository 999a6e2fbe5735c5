"""Triton quantize vs a device copy vs torch.compile'd breccia-torch cast, per recipe, on one CUDA card.

For each recipe the input is an ``--m × --k`` bf16 CUDA tensor. Timings are ``triton.testing.do_bench`` medians
(CUDA events, L2 flushed between runs) of the whole public call, host work and the non-finite flag check
included. GB/s counts the bytes the cast must move: the input read plus data, scales (and zero points) written.
The copy baseline is ``x.clone()`` (bytes read + written). Every Triton result is checked byte-for-byte against
breccia-torch's eager cast before it is timed, so a fast wrong kernel cannot enter the table.

    PYTHONPATH=packages/breccia-core/src:packages/breccia-torch/src:packages/breccia-triton/src \\
        python benchmarks/bench_triton_cast.py [--m 8192 --k 8192] [--no-compile] \\
            [--only NAME,NAME] [--out table.md]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import triton
from triton.testing import do_bench

import breccia
import breccia.triton as bt
from breccia.triton import _cast as tc

# Every recipe gets the compiled column by default (2–11 s of compile each on the H200 machine): issue 5 asks each
# block recipe to beat torch.compile, and a default of six left seven of them unmeasured from the third session on.
RECIPES: list[tuple[str, breccia.Recipe]] = [
    ("Float8Block 1x128", breccia.Float8BlockScaling()),
    ("Float8Block 128x128", breccia.Float8BlockScaling(block_m=128)),
    ("Float8Current per-tensor", breccia.Float8CurrentScaling()),
    ("MXFP8 E4M3 rceil", breccia.MXFP8BlockScaling()),
    ("MXFP8 E5M2 floor", breccia.MXFP8BlockScaling(fp8_format="E5M2", scale_rounding="floor")),
    ("MXFP6 E2M3", breccia.MXFP6BlockScaling()),
    ("MXFP4", breccia.MXFP4BlockScaling()),
    ("NVFP4 two-level", breccia.NVFP4BlockScaling()),
    ("NVFP4 torchao rules", breccia.NVFP4BlockScaling(block_scale_min=2.0**-6, data_scaling="reciprocal")),
    ("NVFP4 one-level", breccia.NVFP4BlockScaling(per_tensor_scale=False)),
    ("NVFP4 16x16", breccia.NVFP4BlockScaling(block_m=16)),
    ("INT4 g128 sym", breccia.INT4Scaling()),
    ("INT4 g128 asym", breccia.INT4Scaling(symmetric=False, signed=False)),
    ("INT8 per-channel", breccia.INT8Scaling()),
]


def nbytes(t: Any) -> int:
    return 0 if t is None else t.numel() * t.element_size()


def moved(x: torch.Tensor, st: breccia.ScaledTensor) -> int:
    """Bytes a cast must move: input read, data + scale + zero point (+ global scale) written."""
    return nbytes(x) + nbytes(st.data) + nbytes(st.scale) + nbytes(st.zero_point) + nbytes(st.global_scale)


def diff(a: breccia.ScaledTensor, b: breccia.ScaledTensor) -> str:
    """'' when byte-identical, else which buffers differ and in how many bytes."""
    out = []
    for name in ("data", "scale", "global_scale", "zero_point"):
        u, v = getattr(a, name), getattr(b, name)
        if (u is None) != (v is None):
            out.append(f"{name} missing")
        elif u is not None:
            n = int((u.reshape(-1).view(torch.uint8) != v.reshape(-1).view(torch.uint8)).sum())
            if n:
                out.append(f"{name}: {n} bytes")
    return ", ".join(out)


def same(a: breccia.ScaledTensor, b: breccia.ScaledTensor) -> bool:
    return not diff(a, b)


CONFIGS = [(8192, 8), (4096, 4), (16384, 8), (16384, 16)]  # (elements per program, warps) for --sweep


def kernel_only(x: torch.Tensor, recipe: breccia.Recipe, sweep: bool) -> tuple[float, str]:
    """The kernel alone (no plan, no flag sync, global amax precomputed): best time and its (tile, warps)."""
    plan = tc._plan(x, recipe, recipe.default_layout(-1))
    assert plan is not None
    x2 = x.reshape(-1, plan.k)
    gamax = None
    if recipe.has_global_scale or plan.per_tensor:
        gamax = x2.abs().amax().float().reshape(1)
    best = (float("inf"), "")
    saved = tc.TILE, tc.NUM_WARPS
    try:
        for tile, warps in CONFIGS if sweep else [saved]:
            tc.TILE, tc.NUM_WARPS = tile, warps
            t = ms(lambda: tc._launch(x2, recipe, plan, gamax, int(x.shape[-2])))
            best = min(best, (t, f"{tile}/{warps}"))
    finally:
        tc.TILE, tc.NUM_WARPS = saved
    return best


def ms(fn: Callable[[], Any]) -> float:
    return float(do_bench(fn, warmup=25, rep=100))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--m", type=int, default=8192)
    p.add_argument("--k", type=int, default=8192)
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile column (compiles are slow)")
    p.add_argument("--compile-all", action="store_true", help="compile every recipe (now the default; a no-op)")
    p.add_argument("--sweep", action="store_true", help=f"time the bare kernel at each (tile, warps) of {CONFIGS}")
    p.add_argument("--only", default=None, help="comma-separated recipe names (as in the table) to run, not all")
    p.add_argument("--out", default=None, help="also write the markdown table here")
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_triton_cast.py needs a CUDA device")
    torch.manual_seed(0)
    x = torch.randn(args.m, args.k, device="cuda", dtype=torch.bfloat16)
    x[::97, ::89] *= 50.0  # outliers, so block scales differ
    t_copy = ms(x.clone)
    copy_gbs = 2 * nbytes(x) / t_copy / 1e6
    head = [
        f"card: {torch.cuda.get_device_name()}; torch {torch.__version__}; triton {triton.__version__}; "
        f"python {platform.python_version()}; input {args.m}x{args.k} bf16",
        f"copy baseline x.clone(): {t_copy * 1e3:.1f} us, {copy_gbs:.0f} GB/s (read + written)",
        "",
        "| recipe | triton us | triton GB/s | vs copy | kernel-only us (tile/warps) | kernel GB/s | kernel vs copy "
        "| eager torch us | compiled torch us | compiled / triton |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(head), flush=True)
    rows = list(head)
    only = None if args.only is None else set(args.only.split(","))
    for name, recipe in RECIPES:
        if only is not None and name not in only:
            continue
        st = bt.cast(x, recipe)
        ref = breccia.cast(x, recipe)
        if st is None or not same(st, ref):
            line = f"| {name} | {'unsupported' if st is None else 'MISMATCH: ' + diff(st, ref)} |" + " |" * 9
            print(line, flush=True)
            rows.append(line)
            continue
        t_tri = ms(lambda r=recipe: bt.cast(x, r))
        t_eager = ms(lambda r=recipe: breccia.cast(x, r))
        comp = "skipped"
        ratio = ""
        if not args.no_compile:
            # a fresh Dynamo cache per recipe: breccia's functions recompile for each recipe type, and past
            # Dynamo's recompile limit (8) it silently runs them eagerly (rows that read "compile 0 s")
            torch._dynamo.reset()
            t0 = time.perf_counter()
            fn = torch.compile(lambda t, r=recipe: breccia.cast(t, r))
            try:
                got = fn(x)
                bad = diff(got, ref)
                t_comp = ms(lambda f=fn: f(x))
                comp = f"{t_comp * 1e3:.1f}" + (f" (differs from eager: {bad})" if bad else "")
                comp += f" (compile {time.perf_counter() - t0:.0f} s)"
                ratio = f"{t_comp / t_tri:.2f}x"
            except Exception as e:  # a compile failure is a result to report, not a reason to stop
                comp = f"failed: {type(e).__name__}"
        gbs = moved(x, st) / t_tri / 1e6
        t_k, cfg = kernel_only(x, recipe, args.sweep)
        kgbs = moved(x, st) / t_k / 1e6
        line = (
            f"| {name} | {t_tri * 1e3:.1f} | {gbs:.0f} | {gbs / copy_gbs:.2f} | {t_k * 1e3:.1f} ({cfg}) | {kgbs:.0f} "
        )
        line += f"| {kgbs / copy_gbs:.2f} | {t_eager * 1e3:.1f} | {comp} | {ratio} |"
        print(line, flush=True)
        rows.append(line)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
