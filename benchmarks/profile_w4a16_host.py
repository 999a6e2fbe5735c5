"""Host-side cost of a W4A16 call (the Python and launch work per eager call, not GPU time), one CUDA GPU.

A decode step without CUDA graphs pays this on every layer: at M = 1 the fragment kernels take 14–22 µs of GPU
time, so a host path of the same size decides whether eager ``breccia.matmul`` beats bf16 cuBLAS at all. Each
callable is run 200 times queued behind ~10 ms of GPU work (so no call waits for the GPU): the wall time per call is
its host cost. Then ``cProfile`` of 300 calls of the public entry points shows where that time goes (top functions
by own time, written to ``$OUT/host_profile.txt`` when ``OUT`` is set, else printed).

Rows: bf16 cuBLAS ``x @ w.T`` (the eager baseline; every row is also given as a multiple of its host time), the
Gluon kernel launch alone (``launch`` with a precomputed plan and config), ``w4a16_matmul`` (``(N, K)`` INT4 g128 and
``(K, N)`` NVFP4), and ``breccia.matmul`` (``(K, N)`` NVFP4, the public API). 8192×8192, M = 1."""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_triton_w4a16 import _weight

import breccia
from breccia.triton import _w4a16 as W
from breccia.triton._gluon import gluon_module


def _host_us(fn: Callable[[], Any], calls: int = 200) -> float:
    """Host µs per call of ``fn`` with the GPU busy (a ~0.1 s spin queued first), so no call waits for it. Keep
    ``calls`` × launches per call under ~1 000: past about 1 024 pending launches CUDA's queue is full and a launch
    waits for the GPU, which then reads as host time (``profile_cast_host.py`` met it)."""
    fn()
    torch.cuda.synchronize()
    torch.cuda._sleep(200_000_000)
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    return 1e6 * (t1 - t0) / calls


def main() -> None:
    n = k = 8192
    torch.manual_seed(0)
    w = torch.randn(n, k, device="cuda") * 0.02
    x = torch.randn(1, k, device="cuda").bfloat16()
    wb = w.bfloat16()
    nk, _, _ = _weight(w, breccia.INT4Scaling(group_size=128), "nk", x)
    kn, _, _ = _weight(w, breccia.NVFP4BlockScaling(), "kn", x)
    rows: dict[str, Callable[[], Any]] = {"bf16 cuBLAS x @ w.T": lambda: x @ wb.T}
    for name, st in (("INT4 (N, K)", nk), ("NVFP4 (K, N)", kn)):
        p = W._plan(st)
        assert p is not None
        out = torch.empty((1, n), dtype=torch.bfloat16, device="cuda")
        W.w4a16_matmul(x, st)
        cfg = W._TUNED[next(key for key in W._TUNED if key[:2] == (p.kind, p.pack_k) and key[5:7] == (p.n, p.k))]
        mod = gluon_module(W._mma_module_name(p))
        if isinstance(cfg, W.MmaConfig) and mod is not None:
            rows[f"{name}: Gluon launch only"] = lambda mod=mod, p=p, out=out, cfg=cfg: mod.launch(x, p, out, cfg)
        rows[f"{name}: w4a16_matmul"] = lambda st=st: W.w4a16_matmul(x, st)
    rows["NVFP4 (K, N): breccia.matmul"] = lambda: breccia.matmul(x, kn)
    print(f"card: {torch.cuda.get_device_name()} · torch {torch.__version__}")
    print("| call (8192×8192, M = 1) | host µs per call | × eager bf16 cuBLAS's host time |")
    print("|---|---|---|")
    base = None
    for name, fn in rows.items():
        us = _host_us(fn)
        base = base or us  # the first row is cuBLAS, measured in the same run
        print(f"| {name} | {us:.1f} | {us / base:.2f}× |", flush=True)
    text = io.StringIO()
    for name, fn in (("w4a16_matmul INT4 (N, K)", lambda: W.w4a16_matmul(x, nk)),
                     ("breccia.matmul NVFP4 (K, N)", lambda: breccia.matmul(x, kn))):  # fmt: skip
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(300):
            fn()
        prof.disable()
        torch.cuda.synchronize()
        text.write(f"\n## {name}: 300 calls\n")
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(25)
    out_dir = os.environ.get("OUT")
    if out_dir:
        with open(os.path.join(out_dir, "host_profile.txt"), "w") as f:
            f.write(text.getvalue())
    else:
        print(text.getvalue())


if __name__ == "__main__":
    main()
