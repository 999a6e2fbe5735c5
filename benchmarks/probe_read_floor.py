"""Probe: the shortest time in which this GPU can *read* a W4A16 weight once (the floor under any W4A16 kernel).

A W4A16 decode kernel must read every weight byte once. At 8192×8192 INT4 (g128) that is 33.6 MB of codes and 1 MB
of scales; bf16 cuBLAS reads 134 MB for the same product. ``≥ 3×`` cuBLAS therefore needs the 4-bit bytes read at
≥ 3/4 of the bandwidth cuBLAS reaches on four times as many, and a kernel this short pays its ramp (launch, first
loads in flight, the last wave draining) on a quarter of the bytes. This probe measures that ceiling directly: a
Triton kernel that does nothing but stream the same number of bytes (vector loads, XOR-reduced so nothing is
optimised away), over a few grid shapes, as CUDA-graph GPU time over cold copies, beside bf16 cuBLAS at M = 1 in the
same call. The best row is the floor; ``cuBLAS µs / floor µs`` is the best ratio any W4A16 kernel could reach here.
Environment: ``NK="8192x8192;4096x14336;14336x4096"``."""

from __future__ import annotations

import os
import sys

import torch
import triton
import triton.language as tl

sys.path.insert(0, os.path.dirname(__file__))
from bench_triton_w4a16 import _graph_us


@triton.jit
def _read_kernel(src, dst, n, PER: tl.constexpr, BLOCK: tl.constexpr):
    """Program ``p`` reads ``PER`` blocks of ``BLOCK`` int32 words (16 B per thread and load) and writes their XOR."""
    base = tl.program_id(0).to(tl.int64) * (PER * BLOCK)
    offs = tl.arange(0, BLOCK)
    acc = tl.zeros([BLOCK], tl.int32)
    for i in range(PER):
        o = base + i * BLOCK + offs
        acc ^= tl.load(src + o, mask=o < n, other=0, eviction_policy="evict_first")
    tl.store(dst + tl.program_id(0), tl.reduce(acc, 0, _xor))


@triton.jit
def _xor(a, b):
    return a ^ b


def main() -> None:
    shapes = [tuple(int(v) for v in s.split("x")) for s in os.environ.get("NK", "8192x8192;4096x14336").split(";")]
    print(f"card: {torch.cuda.get_device_name()} · torch {torch.__version__} · triton {triton.__version__}")
    print("| weight N×K | INT4 g128 bytes | bf16 cuBLAS M=1 µs | read floor µs (config) | floor GB/s | "
          "cuBLAS / floor | 3× needs µs |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for n, k in shapes:
        nbytes = n * k // 2 + n * (k // 128) * 2
        words = -(-nbytes // 4)
        x = torch.randn(1, k, device="cuda").bfloat16()
        ws = [torch.randn(n, k, device="cuda").bfloat16() for _ in range(2)]
        t_ref = _graph_us([lambda w=w, x=x: x @ w.T for w in ws])
        copies = [torch.randint(-(2**31), 2**31 - 1, (words,), dtype=torch.int32, device="cuda")
                  for _ in range(max(2, -(-(150 << 20) // nbytes)))]  # fmt: skip
        best = (float("inf"), "")
        rows = []
        for block, warps in ((1024, 4), (2048, 8), (4096, 8)):
            for per in (1, 2, 4, 8, 16, 32):
                grid = -(-words // (per * block))
                dst = torch.empty(grid, dtype=torch.int32, device="cuda")

                def call(src: torch.Tensor, per: int = per, block: int = block, warps: int = warps,
                         grid: int = grid, dst: torch.Tensor = dst, n: int = words) -> None:  # fmt: skip
                    _read_kernel[(grid,)](src, dst, n, PER=per, BLOCK=block, num_warps=warps)

                t = _graph_us([lambda c=c, call=call: call(c) for c in copies])
                rows.append(f"BLOCK {block} × {per}, {warps} warps, {grid} programs: {t:.1f} µs")
                best = min(best, (t, f"BLOCK {block}×{per}, {warps}w"))
        t = best[0]
        print(
            f"| {n}×{k} | {nbytes / 1e6:.1f} MB | {t_ref:.1f} | {t:.1f} ({best[1]}) | {nbytes / t / 1e3:.0f} | "
            f"{t_ref / t:.2f}× | {t_ref / 3:.1f} |"
        )
        print("\n".join("  - " + r for r in rows), file=sys.stderr)


if __name__ == "__main__":
    main()
