"""Profiling aid (not a benchmark): a few launches of the W4A16 kernels at 8192x8192, M=16, for ``ncu``; with
``--host``, a cProfile of the eager host path of w4a16_matmul and scaled_gemm instead."""

import sys

import torch

import breccia
from breccia.triton import _w4a16 as W
from breccia.triton._gemm import scaled_gemm

w = torch.randn(8192, 8192, device="cuda") * 0.02
x = torch.randn(16, 8192, device="cuda").bfloat16()
nk = breccia.cast(w, breccia.INT4Scaling(group_size=128))
kn = breccia.cast(w.t().contiguous(), breccia.INT4Scaling(group_size=128), axis=0)
nv = breccia.cast(w, breccia.NVFP4BlockScaling())
a8 = torch.randn(64, 2048, device="cuda").to(torch.float8_e4m3fn)
b8 = torch.randn(7168, 2048, device="cuda").to(torch.float8_e4m3fn)
sa, sb = torch.rand(64, 16, device="cuda"), torch.rand(56, 16, device="cuda")


def step() -> None:
    W.w4a16_matmul(x, nk)
    W.w4a16_matmul(x, kn)
    W.w4a16_matmul(x, nv)
    scaled_gemm(a8, sa, b8.t(), sb.t(), "block", torch.bfloat16)


for _ in range(3):
    step()
torch.cuda.synchronize()
if "--host" in sys.argv:
    import cProfile
    import pstats

    def many() -> None:
        for _ in range(200):
            step()
        torch.cuda.synchronize()

    cProfile.run("many()", "/tmp/host.prof")
    pstats.Stats("/tmp/host.prof").sort_stats("tottime").print_stats(18)
