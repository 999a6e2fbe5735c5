"""Probe: the warp-specialised FP8 GEMM with and without the split of a short last round (``_gemm_ws.TAIL_SPLIT``),
beside cuBLAS, on issue 5's large shapes, one CUDA GPU.

Why: a persistent grid of 132 CTAs runs 4096 tiles of 128×128 in 32 rounds of which the last keeps 4 SMs busy, about
3 % of the kernel idle; with the split, each of those tiles' K range is cut into up to 8 pieces that the idle CTAs
run, the last piece to finish adding the FP32 partials in a fixed order. Each variant is checked first (error
against an FP64 product on a row sample, NaN-poisoned output, bitwise equal on a second call), then timed as GPU time
(CUDA-graph replays, best of interleaved rounds). Prints one markdown row per shape; ``ROUNDS`` (default 3)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_gpu import BLOCKWISE, TENSORWISE, _fp8, _rel, blockwise_case, gpu_time, poison

from breccia.triton import _gemm_ws as gw
from breccia.triton._gemm import scaled_gemm
from breccia.triton._gemm_tma import _num_sms


def _ws(args: tuple, tail: bool) -> Callable[[], torch.Tensor]:
    def run() -> torch.Tensor:
        gw.TAIL_SPLIT = tail
        try:
            return scaled_gemm(*args, torch.bfloat16, impl="ws")
        finally:
            gw.TAIL_SPLIT = True

    return run


def main() -> None:
    rounds = int(os.environ.get("ROUNDS", "3"))
    sms = _num_sms(0)
    print(f"card: {torch.cuda.get_device_name()} · torch {torch.__version__} · SMs {sms}\n")
    print("| GEMM | M×N×K | tiles (rounds) | K ranges | cuBLAS TFLOP/s | WS whole tiles (×) | WS split tail (×) | "
          "split / whole | err vs FP64 (whole / split) |")  # fmt: skip
    print("|---|---|---|---|---:|---:|---:|---:|---|")
    shapes = [("tensor", *s) for s in TENSORWISE] + [("block", *s) for s in BLOCKWISE if s[0] >= 4096]
    for i, (kind, m, n, k) in enumerate(shapes):
        a, w = _fp8((m, k), 500 + i), _fp8((n, k), 600 + i)
        rows = min(m, 256)
        if kind == "tensor":
            sa, sb = torch.tensor(0.5, device="cuda"), torch.tensor(0.25, device="cuda")
            ref = (a[:rows].double() @ w.double().t()) * 0.125
            args = (a, sa, w.t(), sb, "tensor")

            def cub(a=a, w=w, sa=sa, sb=sb) -> torch.Tensor:
                return torch._scaled_mm(a, w.t(), scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)
        else:
            sa, sw, ref, cub0 = blockwise_case(a, w, rows)
            args = (a, sa, w.t(), sw.t(), "block")

            def cub(cub0=cub0, w=w) -> torch.Tensor:
                return cub0(w)

        tiles = -(-m // 128) * -(-n // 128)
        # (a breccia from before the split has no _tail_split: both variants are then its one kernel)
        split = getattr(gw, "_tail_split", lambda t, p, kt: (t, 1))
        sk = split(tiles, min(sms, tiles), -(-k // 128))[1]
        fns = {"cublas": cub, "whole": _ws(args, False), "split": _ws(args, True)}
        errs = {}
        for name in ("whole", "split"):
            poison(m * n * 2)
            out = fns[name]()
            again = fns[name]()
            errs[name] = f"{_rel(out[:rows], ref):.1e}" + ("" if torch.equal(out, again) else " NONDETERMINISTIC")
            if torch.isnan(out).any():
                errs[name] += " NaN"
        t = gpu_time(fns, rounds)
        flops = 2.0 * m * n * k / 1e9
        tc, tw, ts = (flops / t[x] for x in ("cublas", "whole", "split"))
        print(f"| {kind} | {m}×{n}×{k} | {tiles} ({tiles / min(sms, tiles):.2f}) | {sk if sk > 1 else '—'} | "
              f"{tc:.0f} | {tw:.0f} ({tw / tc:.3f}×) | {ts:.0f} ({ts / tc:.3f}×) | {ts / tw:.3f} | "
              f"{errs['whole']} / {errs['split']} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
