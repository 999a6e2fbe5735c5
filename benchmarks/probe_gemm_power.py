"""Is the FP8 GEMM bound by the card's power limit? SM clock and board power while each GEMM runs (one CUDA GPU).

Why: on the H100 (700 W) cuBLAS and the warp-specialised kernel both reach ~1 200 TFLOP/s tensorwise, about 60 % of
the FP8 dense peak at boost clock, and both lose 7–11 % in 1×128 · 128×128 block mode. If the SM clock falls under
load, TFLOP/s per clock cycle is what a kernel change can still move, and work that costs energy but no issue slots
(the promotion's FFMAs, shared-memory and L2 traffic) costs time. Each case replays a CUDA graph of 20 calls for
``SECONDS`` while ``nvidia-smi -lms 50`` samples the SM clock, power draw and clock-event reasons; the first 0.5 s
of each window is dropped (clock ramp). Prints one markdown row per case: TFLOP/s and its ratio to cuBLAS with the
same scaling timed in the same process, median MHz and W, the reasons seen, and FLOP per SM per clock against the
FP8 dense peak of 8 192 (sm_90: 1 979 TFLOP/s at 1 830 MHz, 132 SMs).
Without a GPU it says so and exits 0."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

SECONDS = float(os.environ.get("SECONDS_PER_CASE", "3"))
SHAPES = [(4096, 7168, 16384), (4096, 7168, 2048), (8192, 8192, 8192)]
if os.environ.get("PROBE_SHAPES"):  # "M,N,K M,N,K ..."
    SHAPES = [tuple(int(v) for v in s.split(",")) for s in os.environ["PROBE_SHAPES"].split()]
# blockwise only, extra rows for named configs of the warp-specialised kernel ("128x128 s5 late scales;...")
WS_CONFIGS = [c for c in os.environ.get("PROBE_WS_CONFIGS", "").split(";") if c]
PEAK_PER_CLK = 8192.0  # FP8 dense FLOP per SM per clock on sm_90


def _sampler(path: str) -> subprocess.Popen[bytes]:
    """``nvidia-smi`` sampling every 50 ms into ``path`` (a file: a pipe read only at the end fills after ~40 s of
    samples and stalls the sampler)."""
    q = "timestamp,clocks.sm,power.draw,clocks_event_reasons.active"
    with open(path, "w") as f:
        return subprocess.Popen(
            ["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader,nounits", "-lms", "50", "-i", "0"], stdout=f
        )


def _parse(lines: list[str]) -> list[tuple[dt.datetime, float, float, str]]:
    out = []
    for line in lines:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4:
            continue
        try:
            t = dt.datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f")
            out.append((t, float(parts[1]), float(parts[2]), parts[3]))
        except ValueError:
            continue
    return out


_REASONS = {  # nvmlClocksEventReasons bits
    0x1: "idle", 0x2: "app clocks", 0x4: "SW power cap", 0x8: "HW slowdown", 0x20: "SW thermal",
    0x40: "HW thermal", 0x80: "HW power brake", 0x100: "display clocks",
}  # fmt: skip


def _reasons(masks: list[str]) -> str:
    seen = 0
    for m in masks:
        with contextlib.suppress(ValueError):
            seen |= int(m, 16)
    return ", ".join(v for k, v in _REASONS.items() if seen & k) or "none"


def _cases(m: int, n: int, k: int) -> dict[str, Callable[[], Any]]:
    from bench_gpu import _forced, blockwise_case

    from breccia.triton import _gemm_ws
    from breccia.triton._gemm import scaled_gemm

    g = torch.Generator(device="cuda").manual_seed(m + n + k)
    a = (torch.randn((m, k), device="cuda", generator=g) * 2).to(torch.float8_e4m3fn)
    w = (torch.randn((n, k), device="cuda", generator=g) * 2).to(torch.float8_e4m3fn)
    st, sw1 = torch.tensor(0.5, device="cuda"), torch.tensor(0.25, device="cuda")
    sa, sw, _ref, cublas_block = blockwise_case(a, w, 1)  # the benchmark's scales and its cuBLAS blockwise call

    def block() -> Any:
        return scaled_gemm(a, sa, w.t(), sw.t(), "block", torch.bfloat16, impl="ws")

    return {
        "cuBLAS tensorwise": lambda: torch._scaled_mm(a, w.t(), scale_a=st, scale_b=sw1, out_dtype=torch.bfloat16),
        "ours tensorwise": lambda: scaled_gemm(a, st, w.t(), sw1, "tensor", torch.bfloat16, impl="ws"),
        "cuBLAS 1×128·128×128": lambda: cublas_block(w),
        "ours 1×128·128×128": block,
    } | {f"ours 1×128·128×128 ({c})": partial(_forced, _gemm_ws, _gemm_ws.WS_CONFIGS[c], block) for c in WS_CONFIGS}


def _run(fn: Callable[[], Any], flops: float) -> tuple[float, dt.datetime, dt.datetime]:
    """Replay a graph of 20 calls for SECONDS; TFLOP/s over the window and its wall-clock bounds."""
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(20):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    graph.replay()
    torch.cuda.synchronize()
    reps = max(1, int(SECONDS / max(time.perf_counter() - t0, 1e-6)))
    start_ev, end_ev = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin = dt.datetime.now()
    start_ev.record()
    for _ in range(reps):
        graph.replay()
    end_ev.record()
    torch.cuda.synchronize()
    end = dt.datetime.now()
    ms = start_ev.elapsed_time(end_ev)
    return flops * 20 * reps / (ms * 1e-3) / 1e12, begin, end


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to probe")
        return 0
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    print(f"card: {torch.cuda.get_device_name()} · torch {torch.__version__} · SMs {sms}\n")

    fd, log = tempfile.mkstemp(suffix=".csv")
    os.close(fd)
    proc = _sampler(log)
    windows = []
    try:
        for m, n, k in SHAPES:
            for name, fn in _cases(m, n, k).items():
                tflops, begin, end = _run(fn, 2.0 * m * n * k)
                windows.append(((m, n, k), name, tflops, begin + dt.timedelta(seconds=0.5), end))
                time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    with open(log) as f:
        samples = _parse(f.read().splitlines())
    os.unlink(log)
    # the peer: cuBLAS with the same scaling, timed in the same process a few seconds apart
    peer = {(shape, name.split(" ", 1)[1]): tf for shape, name, tf, _, _ in windows if name.startswith("cuBLAS")}
    print("| M×N×K | GEMM | TFLOP/s | × cuBLAS (same scaling) | SM MHz (median) | W (median) | clock-event reasons "
          "| FLOP/SM/clk | × peak/clk |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---|---:|---:|")
    for (m, n, k), name, tflops, begin, end in windows:
        ratio = f"{tflops / peer[((m, n, k), name.split(' ', 1)[1].split(' (')[0])]:.3f}"
        inside = [s for s in samples if begin <= s[0] <= end]
        if not inside:
            print(f"| {m}×{n}×{k} | {name} | {tflops:.0f} | {ratio} | no samples | | | | |")
            continue
        mhz = statistics.median(s[1] for s in inside)
        watts = statistics.median(s[2] for s in inside)
        per_clk = tflops * 1e12 / (sms * mhz * 1e6)
        print(
            f"| {m}×{n}×{k} | {name} | {tflops:.0f} | {ratio} | {mhz:.0f} | {watts:.0f} | "
            f"{_reasons([s[3] for s in inside])} | {per_clk:.0f} | {per_clk / PEAK_PER_CLK:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
