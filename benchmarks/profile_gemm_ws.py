"""Two probes behind benchmarks/NOTES.md's numbers for the warp-specialised FP8 GEMM (sm_90; run on the GPU):

- ``python benchmarks/profile_gemm_ws.py host``: host µs per eager call of the warp-specialised kernel, the TMA
  Triton kernel and cuBLAS (blockwise 4096×7168×2048), each call queued behind ~10 ms of GPU work so no launch
  waits for the GPU: the Python cost of a call, not its GPU time.
- ``ncu -k regex:gemm_ws --launch-skip 2 --launch-count 1 --metrics <stall metrics> python
  benchmarks/profile_gemm_ws.py ncu [block|tensor]``: three calls at 4096×7168×16384 for ncu to sample the third.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from bench_gpu import _fp8, blockwise_case

from breccia.triton._gemm import scaled_gemm


def _operands(m: int, n: int, k: int, kind: str) -> tuple[Any, ...]:
    a, w = _fp8((m, k), 1), _fp8((n, k), 2)
    if kind == "block":
        sa, sw, _ref, cub = blockwise_case(a, w, 64)
        return (a, sa, w.t(), sw.t(), "block"), (lambda: cub(w)) if cub is not None else None
    one = torch.ones((), device="cuda")
    return (a, one, w.t(), one, "tensor"), (
        lambda: torch._scaled_mm(a, w.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    )


def host() -> None:
    args, cublas = _operands(4096, 7168, 2048, "block")
    fns: dict[str, Callable[[], Any]] = {
        "ws": lambda: scaled_gemm(*args, torch.bfloat16, impl="ws"),
        "tma": lambda: scaled_gemm(*args, torch.bfloat16, impl="tma"),
    }
    if cublas is not None:
        fns["cublas"] = cublas
    busy = torch.empty(1 << 28, device="cuda")
    for name, fn in fns.items():
        fn()
        torch.cuda.synchronize()
        for _ in range(3):
            busy.mul_(1.0)  # ~10 ms queued ahead of the calls
        t0 = time.perf_counter()
        for _ in range(50):
            fn()
        t1 = time.perf_counter()
        torch.cuda.synchronize()
        print(f"{name}: host {1e6 * (t1 - t0) / 50:.1f} µs per call", flush=True)


def ncu(kind: str) -> None:
    args, _ = _operands(4096, 7168, 16384, kind)
    for _ in range(3):
        scaled_gemm(*args, torch.bfloat16, impl="ws")
    torch.cuda.synchronize()


if __name__ == "__main__":
    if not torch.cuda.is_available():
        sys.exit("profile_gemm_ws.py needs a CUDA device")
    if sys.argv[1:2] == ["host"]:
        host()
    elif sys.argv[1:2] == ["ncu"]:
        ncu(sys.argv[2] if len(sys.argv) > 2 else "block")
    else:
        sys.exit(__doc__)
