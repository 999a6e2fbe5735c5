"""Two probes behind benchmarks/NOTES.md's numbers for the warp-specialised FP8 GEMM (sm_90; run on the GPU):

- ``python benchmarks/profile_gemm_ws.py host``: host µs per eager call of the warp-specialised kernel, the TMA
  Triton kernel and cuBLAS (blockwise 4096×7168×2048), each call queued behind ~10 ms of GPU work so no launch
  waits for the GPU: the Python cost of a call, not its GPU time.
- ``ncu -k regex:gemm_ws --launch-skip 2 --launch-count 1 --metrics <stall metrics> python
  benchmarks/profile_gemm_ws.py ncu [block|tensor] [M N K] [config]``: three calls (default 4096×7168×16384, the
  default config, one of ``_gemm_ws.WS_CONFIGS`` by name, or ``BN,STAGES,GROUP_M,EARLY``) for ncu to sample the
  third. With L2 metrics (``lts__t_sector_hit_rate.pct``, ``dram__bytes_read.sum``) this asks whether two configs
  differ in how the CTAs share operands through L2 (the twenty-fourth session's question at 16384×7168×16384).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from bench_gpu import _forced, _fp8, blockwise_case, ws_config

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


def ncu(kind: str, shape: tuple[int, int, int] = (4096, 7168, 16384), config: str | None = None) -> None:
    from breccia.triton import _gemm_ws

    args, _ = _operands(*shape, kind)
    cfg = ws_config(config) if config else None
    for _ in range(3):
        _forced(_gemm_ws, cfg, lambda: scaled_gemm(*args, torch.bfloat16, impl="ws"))
    torch.cuda.synchronize()


if __name__ == "__main__":
    if not torch.cuda.is_available():
        sys.exit("profile_gemm_ws.py needs a CUDA device")
    if sys.argv[1:2] == ["host"]:
        host()
    elif sys.argv[1:2] == ["ncu"]:
        rest = sys.argv[2:]
        shape = tuple(int(v) for v in rest[1:4]) if len(rest) >= 4 else (4096, 7168, 16384)
        ncu(rest[0] if rest else "block", shape, " ".join(rest[4:]) or None)  # type: ignore[arg-type]
    else:
        sys.exit(__doc__)
