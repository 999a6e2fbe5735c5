"""Probe: the decode-sized blockwise GEMMs (issue 5: ≥ 0.9× cuBLAS at M ∈ {64, 128}) through the warp-specialised
Gluon kernel, which ``scaled_gemm`` routes only for M > 128, with 128- and 64-wide N tiles (a 128×7168 product makes
56 tiles of 128 for 132 SMs, 112 of 64), beside cuBLAS and the routed call (the Triton pointer kernel with split-K).
GPU time: CUDA-graph replay over weight copies that exceed L2. Each variant is checked against the FP64 product
first (NaN-poisoned output); a variant that fails to compile or exceeds the tolerance is reported, not timed."""

from __future__ import annotations

import os
import sys
from functools import partial
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_gpu import BLOCKWISE, _fp8, _rel, blockwise_case
from bench_triton_w4a16 import _graph_us

from breccia.triton import _gemm_ws as gw
from breccia.triton._gemm import scaled_gemm

VARIANTS: dict[str, Any] = {
    "routed": None,
    "WS 128 s5": gw.WsConfig(128, 5),
    "WS 64 s5": gw.WsConfig(64, 5),
    "WS 64 s6": gw.WsConfig(64, 6),
    "WS 64 s7": gw.WsConfig(64, 7),
    "WS 64 s8": gw.WsConfig(64, 8),
    "WS 64 s4 g16": gw.WsConfig(64, 4, 16),
}


def _call(a: torch.Tensor, sa: torch.Tensor, sw: torch.Tensor, cfg: Any, w: torch.Tensor) -> torch.Tensor:
    """The routed call (``cfg`` None) or the warp-specialised kernel pinned to ``cfg``."""
    gw.FORCE = cfg
    try:
        return scaled_gemm(a, sa, w.t(), sw.t(), "block", torch.bfloat16, impl="auto" if cfg is None else "ws")
    finally:
        gw.FORCE = None


def main() -> None:
    print(f"card: {torch.cuda.get_device_name()} · torch {torch.__version__}")
    print("| M×N×K | cuBLAS µs | " + " | ".join(f"{v} µs (×)" for v in VARIANTS) + " |")
    print("|---|---:|" + "---:|" * len(VARIANTS))
    for i, (m, n, k) in enumerate(s for s in BLOCKWISE if s[0] <= 128):
        a = _fp8((m, k), 300 + i)
        ws = [_fp8((n, k), 400 + i + j) for j in range(max(2, -(-(120 << 20) // (n * k))))]
        sa, sw, ref, cub = blockwise_case(a, ws[0], m)
        t_c = _graph_us([partial(cub, w) for w in ws])
        cells = []
        for cfg in VARIANTS.values():
            call = partial(_call, a, sa, sw, cfg)
            try:
                err = _rel(call(ws[0]), ref)
                if err > 5e-3:
                    cells.append(f"WRONG {err:.1e}")
                    continue
                t = _graph_us([partial(call, w) for w in ws])
                cells.append(f"{t:.1f} ({t_c / t:.2f}×)")
            except Exception as e:  # a config that does not compile is a result
                cells.append(f"{type(e).__name__}: {str(e)[:60]}")
        print(f"| {m}×{n}×{k} | {t_c:.1f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
