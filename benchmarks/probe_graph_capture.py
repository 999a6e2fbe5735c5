"""Which breccia calls on CUDA tensors are sync-free and can be captured in a CUDA graph (one CUDA GPU).

Each case runs in its own process (a failed capture can leave the CUDA context unusable): the call once in eager
mode under ``torch.cuda.set_sync_debug_mode("error")`` (does it sync?), then captured after two warm-up calls on a
side stream, the input overwritten with new values, the graph replayed, and the result compared byte for byte with
the eager call on the new input. Casts use ``nonfinite="propagate"`` (``"raise"`` must sync to raise). Prints one
markdown row per case; ``CASES="a;b"`` picks cases by name. Without a GPU it says so and exits 0.
Nineteenth session (H100): every cast recipe's capture failed before ``breccia.triton.cast`` stepped aside during
capture; ``results/h100_cast_capture_session19.md``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import torch

M, K, N = 256, 1024, 512


def _cases() -> dict[str, Callable[[torch.Tensor, torch.Tensor], Callable[[], Any]]]:
    import breccia

    def cast(recipe: Any) -> Callable[[torch.Tensor, torch.Tensor], Callable[[], Any]]:
        return lambda x, w: lambda: breccia.cast(x, recipe, nonfinite="propagate")

    def mm(ra: Any, rb: Any) -> Callable[[torch.Tensor, torch.Tensor], Callable[[], Any]]:
        def make(x: torch.Tensor, w: torch.Tensor) -> Callable[[], Any]:
            b = breccia.cast(w, rb, axis=0)
            if ra is None:  # a bf16 activation: the W4A16 path
                xb = x[:4].bfloat16()
                return lambda: breccia.matmul(xb, b, out_dtype=torch.bfloat16)
            return lambda: breccia.matmul(breccia.cast(x, ra, nonfinite="propagate"), b, out_dtype=torch.bfloat16)

        return make

    def deq(recipe: Any) -> Callable[[torch.Tensor, torch.Tensor], Callable[[], Any]]:
        def make(x: torch.Tensor, w: torch.Tensor) -> Callable[[], Any]:
            st = breccia.cast(w, recipe)
            return lambda: breccia.dequantize(st, dtype=torch.bfloat16)

        return make

    return {
        "cast FP8 1x128": cast(breccia.Float8BlockScaling()),
        "cast FP8 per tensor": cast(breccia.Float8CurrentScaling()),
        "cast MXFP8": cast(breccia.MXFP8BlockScaling()),
        "cast NVFP4 two-level": cast(breccia.NVFP4BlockScaling()),
        "cast INT4 g128 asym": cast(breccia.INT4Scaling(group_size=128, symmetric=False, signed=False)),
        "matmul FP8 tensorwise": mm(breccia.Float8CurrentScaling(), breccia.Float8CurrentScaling()),
        "matmul FP8 1x128 x 128x128": mm(breccia.Float8BlockScaling(), breccia.Float8BlockScaling(block_m=128)),
        "matmul W4A16 INT4 g128": mm(None, breccia.INT4Scaling(group_size=128)),
        "matmul W4A16 NVFP4": mm(None, breccia.NVFP4BlockScaling()),
        "matmul MXFP8 (dequantize path)": mm(breccia.MXFP8BlockScaling(), breccia.MXFP8BlockScaling()),
        "dequantize NVFP4": deq(breccia.NVFP4BlockScaling()),
    }


def _raw(out: Any) -> list[torch.Tensor | None]:
    parts = [out] if isinstance(out, torch.Tensor) else [out.data, out.scale, out.global_scale, out.zero_point]
    return [None if t is None else t.contiguous().view(-1).view(torch.uint8).clone() for t in parts]


def run_case(name: str) -> str:
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(M, K, device="cuda", generator=g)
    w = torch.randn(K, N, device="cuda", generator=g) * 0.05
    fn = _cases()[name](x, w)
    fn()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        fn()
        eager = "no sync"
    except RuntimeError as e:
        eager = "syncs (" + str(e).split("\n")[0][:50] + ")"
    finally:
        torch.cuda.set_sync_debug_mode(0)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
        fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            out = fn()
        x.copy_(torch.randn(x.shape, device="cuda", generator=g))
        graph.replay()
        torch.cuda.synchronize()
        same = all(
            (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
            for a, b in zip(_raw(out), _raw(fn()))
        )
        captured = "captured; replay on new input equals eager" if same else "captured; replay DIFFERS from eager"
    except Exception as e:  # a failed capture is the result
        captured = f"capture failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}"
    return f"| {name} | {eager} | {captured} |"


def main() -> int:
    if not torch.cuda.is_available():
        print("probe_graph_capture: no CUDA device here (nothing was run).")
        return 0
    if len(sys.argv) > 1:
        print(run_case(sys.argv[1]), flush=True)
        return 0
    names = os.environ.get("CASES", ";".join(_cases())).split(";")
    print(f"card: {torch.cuda.get_device_name()} · torch {torch.__version__}")
    print("| case | eager call | CUDA graph capture |\n|---|---|---|")
    for name in names:
        r = subprocess.run([sys.executable, __file__, name], check=False, capture_output=True, text=True, timeout=120)
        rows = [line for line in r.stdout.splitlines() if line.startswith("|")]
        last = (r.stderr.strip().splitlines() or ["?"])[-1][:90]
        print(rows[-1] if rows else f"| {name} | process failed: {last} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
