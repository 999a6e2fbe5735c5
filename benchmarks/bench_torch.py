"""breccia-torch benchmarks: CPU casts vs a bare ``.to(float8)``, and on CUDA cast GB/s vs a device copy and vs
``torch.compile`` of the same cast, and matmul TFLOP/s vs ``torch._scaled_mm`` / ``F.scaled_mm`` (cuBLAS).

Every ratio is measured against its peer in the same run. GPU times use CUDA events, median of ``--iters`` after
warm-up, with fresh random inputs; the card is printed with the table (times hold only for that card).

    python benchmarks/bench_torch.py                 # CPU section (and GPU when CUDA is present)
    python benchmarks/bench_torch.py --json out.json --compile
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import interleaved_min, markdown_table  # pins BLAS/OpenMP threads, so it must come before torch

# isort: split
import torch

import breccia
import breccia.torch
from breccia._demo import DEMO_RECIPES

COMPILE_ON_GPU = {
    "FP8 E4M3 per-tensor (current)",
    "FP8 E4M3 1x128 blocks",
    "MXFP8 E4M3 (rceil)",
    "MXFP4 E2M1",
    "NVFP4 1x16 two-level",
    "INT4 g128 symmetric",
}
FP8 = {"FP8 E4M3 per-tensor (current)", "FP8 E4M3 1x128 blocks", "FP8 E4M3 128x128 blocks", "MXFP8 E4M3 (rceil)"}


def table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    return markdown_table(cols, [[str(r.get(c, "")) for c in cols] for r in rows])


def cpu_section(do_compile: bool) -> list[dict[str, Any]]:
    x = torch.randn(4096, 4096)
    rows = []
    for label, recipe in DEMO_RECIPES:
        fns: dict[str, Callable[[], Any]] = {
            "bare": lambda: x.to(torch.float8_e4m3fn),
            "cast": lambda r=recipe: breccia.cast(x, r),
        }
        if do_compile and label in FP8:
            compiled = torch.compile(lambda t, r=recipe: breccia.cast(t, r, nonfinite="propagate"), fullgraph=True)
            fns["compiled"] = lambda c=compiled: c(x)
        t = interleaved_min(fns, repeats=5)
        row = {
            "recipe": label,
            "cast ms": f"{t['cast'] * 1e3:.1f}",
            "bare .to ms": f"{t['bare'] * 1e3:.1f}",
            "ratio": f"{t['bare'] / t['cast']:.2f}",
        }
        if "compiled" in t:
            row["compiled ms"] = f"{t['compiled'] * 1e3:.1f}"
            row["compiled ratio"] = f"{t['bare'] / t['compiled']:.2f}"
        rows.append(row)
    return rows


def cuda_time(fn: Callable[[], Any], iters: int, batch: int = 10) -> float:
    """Median seconds per call of ``fn``: ``iters`` CUDA-event-timed batches of ``batch`` back-to-back calls (so the
    GPU, not Python's launch latency, sets the pace), after 3 warm-ups."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(batch):
            fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) / 1e3 / batch)
    return statistics.median(times)


def gpu_cast_section(iters: int) -> list[dict[str, Any]]:
    x = torch.randn(8192, 8192, device="cuda")
    t_copy = cuda_time(x.clone, iters)
    copy_gbs = 2 * x.numel() * 4 / t_copy / 1e9
    rows = []
    for label, recipe in DEMO_RECIPES:
        st = breccia.cast(x, recipe)
        nbytes = x.numel() * 4 + st.nbytes
        t_eager = cuda_time(lambda r=recipe: breccia.cast(x, r, nonfinite="propagate"), iters)
        row = {
            "recipe": label,
            "eager GB/s": f"{nbytes / t_eager / 1e9:.0f}",
            "copy GB/s": f"{copy_gbs:.0f}",
            "eager/copy": f"{nbytes / t_eager / 1e9 / copy_gbs:.2f}",
            "compiled GB/s": "-",
            "compiled/copy": "-",
        }
        if label in COMPILE_ON_GPU:  # each compile costs ~10-30 s; a representative subset
            comp = torch.compile(lambda t, r=recipe: breccia.cast(t, r, nonfinite="propagate"), fullgraph=True)
            t_comp = cuda_time(lambda c=comp: c(x), iters)
            row["compiled GB/s"] = f"{nbytes / t_comp / 1e9:.0f}"
            row["compiled/copy"] = f"{nbytes / t_comp / 1e9 / copy_gbs:.2f}"
        rows.append(row)
    return rows


def one_shape(m: int, n: int, k: int, iters: int) -> list[dict[str, Any]]:
    """Tensorwise and DeepSeek-blockwise FP8 GEMM through breccia vs cuBLAS directly, one shape."""
    import torch.nn.functional as F

    rows = []
    flops = 2 * m * n * k
    a, w = torch.randn(m, k, device="cuda"), torch.randn(k, n, device="cuda") * 0.05
    bf_a, bf_w = a.bfloat16(), w.bfloat16()
    t_bf16 = cuda_time(lambda: bf_a @ bf_w, iters)
    sa, sw = breccia.cast(a, breccia.Float8CurrentScaling()), breccia.cast(w, breccia.Float8CurrentScaling())
    wt = sw.data.t().contiguous().t()
    sw_col = breccia.from_buffer(wt, sw.scale, sw.recipe, sw.layout)
    t_ref = cuda_time(
        lambda: torch._scaled_mm(sa.data, wt, scale_a=sa.scale, scale_b=sw.scale, out_dtype=torch.bfloat16), iters
    )
    t_ours = cuda_time(lambda: breccia.matmul(sa, sw_col, out_dtype=torch.bfloat16), iters)
    rows.append(
        {
            "shape MxNxK": f"{m}x{n}x{k}",
            "path": "FP8 tensorwise",
            "breccia TFLOP/s": f"{flops / t_ours / 1e12:.0f}",
            "cuBLAS TFLOP/s": f"{flops / t_ref / 1e12:.0f}",
            "ratio": f"{t_ref / t_ours:.2f}",
            "bf16 TFLOP/s": f"{flops / t_bf16 / 1e12:.0f}",
        }
    )
    ba = breccia.cast(a, breccia.Float8BlockScaling())
    bw = breccia.cast(w, breccia.Float8BlockScaling(block_m=128), axis=0)
    bwt = breccia.from_buffer(bw.data.t().contiguous().t(), bw.scale, bw.recipe, bw.layout)
    lk, l4 = k // 128, -(-(k // 128) // 4) * 4
    s_a = ba.scale.t().contiguous().t()
    s_b = F.pad(bw.scale.t().contiguous(), (0, l4 - lk)).t()
    t_ref = cuda_time(
        lambda: F.scaled_mm(
            ba.data,
            bwt.data,
            s_a,
            F.ScalingType.BlockWise1x128,
            s_b,
            F.ScalingType.BlockWise128x128,
            output_dtype=torch.bfloat16,
        ),
        iters,
    )
    t_ours = cuda_time(lambda: breccia.matmul(ba, bwt, out_dtype=torch.bfloat16), iters)
    rows.append(
        {
            "shape MxNxK": f"{m}x{n}x{k}",
            "path": "FP8 1x128 x 128x128",
            "breccia TFLOP/s": f"{flops / t_ours / 1e12:.0f}",
            "cuBLAS TFLOP/s": f"{flops / t_ref / 1e12:.0f}",
            "ratio": f"{t_ref / t_ours:.2f}",
            "bf16 TFLOP/s": f"{flops / t_bf16 / 1e12:.0f}",
        }
    )
    torch.cuda.empty_cache()
    return rows


def gpu_matmul_section(iters: int) -> list[dict[str, Any]]:
    rows = []
    for m, n, k in [(8192, 8192, 8192), (4096, 7168, 16384), (4096, 24576, 1536)]:
        rows += one_shape(m, n, k, iters)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the FP8 casts on CPU")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--skip-cpu", action="store_true")
    args = ap.parse_args()
    out: dict[str, Any] = {"torch": torch.__version__, "threads": torch.get_num_threads(), "date": time.ctime()}
    if not args.skip_cpu:
        rows = cpu_section(args.compile)
        out["cpu"] = rows
        print(
            f"\nCPU cast, 4096x4096 fp32, torch {torch.__version__}, {torch.get_num_threads()} threads "
            "(ratio = bare .to(float8_e4m3fn) time / breccia cast time; goal >= 0.5 for FP8 recipes)"
        )
        cols = ["recipe", "cast ms", "bare .to ms", "ratio"] + (
            ["compiled ms", "compiled ratio"] if args.compile else []
        )
        print(table(rows, cols))
    if torch.cuda.is_available():
        card = torch.cuda.get_device_name()
        out["card"] = card
        out["gpu_cast"] = gpu_cast_section(args.iters)
        print(f"\nGPU cast, 8192x8192 fp32 on {card} (GB/s = bytes read + written / time; copy = x.clone())")
        print(
            table(
                out["gpu_cast"], ["recipe", "eager GB/s", "compiled GB/s", "copy GB/s", "eager/copy", "compiled/copy"]
            )
        )
        out["gpu_matmul"] = gpu_matmul_section(args.iters)
        print(f"\nGPU matmul on {card} (bf16 output; ratio = cuBLAS time / breccia time)")
        print(
            table(
                out["gpu_matmul"], ["shape MxNxK", "path", "breccia TFLOP/s", "cuBLAS TFLOP/s", "ratio", "bf16 TFLOP/s"]
            )
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
