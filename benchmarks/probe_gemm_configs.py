"""Probe: warp-specialised FP8 GEMM configs, including ones not in ``_gemm_ws.WS_CONFIGS``, over issue 5's large
shapes against cuBLAS timed in the same process (one CUDA GPU of sm_90).

Why: the default config is one tiling for every shape, and single-shape A/B differences under ~3 % are spread
(benchmarks/NOTES.md, twenty-fourth session). A rule by shape class (ring depth, tile group) needs every candidate
timed at every shape in rotated rounds, with more rounds than the acceptance table runs.

Environment: ``CONFIGS="BN,STAGES,GROUP_M,EARLY;..."`` (EARLY 1: activation scales read at the MMA issue),
``KINDS="block,tensor"``, ``ROUNDS=4``. Each config is checked once per shape (relative error against an FP64
product of a row sample, no NaN) before it is timed (GPU time of CUDA-graph replays, rounds rotated so each
function takes every position). Prints one markdown row per shape (TFLOP/s of cuBLAS, ratio of each config) and
the geometric mean per config and of the best config per shape; writes them to ``$OUT/gemm_configs.md`` if set.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_gpu import _forced, _fp8, blockwise_case, gpu_time, ws_config
from bench_triton_gemm import BLOCKWISE, TENSORWISE, _rel
from bench_triton_w4a16 import _write_atomic

from breccia.triton import _gemm_ws as gw
from breccia.triton._gemm import scaled_gemm

DEFAULT = "128,5,8,1;128,4,8,1;128,5,8,0;128,4,8,0;128,5,4,1;128,4,4,1;128,3,8,1"


def _configs() -> dict[str, gw.WsConfig]:
    out = {}
    for spec in os.environ.get("CONFIGS", DEFAULT).split(";"):
        c = ws_config(spec)
        out[f"s{c.stages} g{c.group_m}{'' if c.early_scales else ' late'}"] = c
    return out


def _shape(kind: str, m: int, n: int, k: int, configs: dict[str, gw.WsConfig], rounds: int) -> dict[str, float]:
    """TFLOP/s of cuBLAS and of each config at one shape (a config that fails its check gets 0)."""
    a, w = _fp8((m, k), 1), _fp8((n, k), 2)
    rows = min(m, 256)
    if kind == "tensor":
        one = torch.ones((), device="cuda")
        ref = a[:rows].double() @ w.double().t()
        args = (a, one, w.t(), one, "tensor")

        def cublas() -> torch.Tensor:
            return torch._scaled_mm(a, w.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    else:
        sa, sw, ref, cub = blockwise_case(a, w, rows)
        assert cub is not None, (m, n, k)
        args = (a, sa, w.t(), sw.t(), "block")

        def cublas() -> torch.Tensor:
            return cub(w)

    fns: dict[str, Callable[[], object]] = {"cuBLAS": cublas}
    for name, cfg in configs.items():
        fn = lambda cfg=cfg: _forced(gw, cfg, lambda: scaled_gemm(*args, torch.bfloat16, impl="ws"))  # noqa: E731
        got = fn()
        if _rel(got[:rows], ref) < 2e-2 and not torch.isnan(got).any():
            fns[name] = fn
    best = gpu_time(fns, rounds, replays=3)  # ms; 192 calls per measurement
    flops = 2.0 * m * n * k
    return {name: (flops / (best[name] * 1e-3) / 1e12 if name in best else 0.0) for name in ["cuBLAS", *configs]}


def main() -> int:
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("probe_gemm_configs.py needs an sm_90 GPU")
        return 0
    configs = _configs()
    rounds = int(os.environ.get("ROUNDS", "4"))
    kinds = os.environ.get("KINDS", "block,tensor").split(",")
    head = "| GEMM | M×N×K | cuBLAS TFLOP/s | " + " | ".join(configs) + " | best |"
    lines = [
        f"{torch.cuda.get_device_name()}, torch {torch.__version__}; × cuBLAS in the same process, GPU time of "
        f"CUDA-graph replays, best of {rounds} rotated rounds.",
        "",
        head,
        "|---|---|---:|" + "---:|" * (len(configs) + 1),
    ]
    print("\n".join(lines), flush=True)
    ratios: dict[str, dict[str, list[float]]] = {}
    for kind in kinds:
        shapes = TENSORWISE if kind == "tensor" else [s for s in BLOCKWISE if s[0] >= 4096 and s[1] != 2112]
        per = ratios.setdefault(kind, {name: [] for name in [*configs, "best"]})
        for m, n, k in shapes:
            t = _shape(kind, m, n, k, configs, rounds)
            rs = {name: t[name] / t["cuBLAS"] for name in configs}
            for name, v in rs.items():
                per[name].append(v)
            top = max(rs, key=lambda n_: rs[n_])
            per["best"].append(rs[top])
            cells = " | ".join(f"{v:.3f}" for v in rs.values())
            line = f"| {kind} | {m}×{n}×{k} | {t['cuBLAS']:.0f} | {cells} | {top} |"
            lines.append(line)
            print(line, flush=True)
    for kind, per in ratios.items():
        geo = {name: math.exp(sum(math.log(max(v, 1e-9)) for v in vs) / len(vs)) for name, vs in per.items() if vs}
        line = f"geometric mean × cuBLAS, {kind}: " + ", ".join(f"{n_} {g:.3f}" for n_, g in geo.items())
        lines += ["", line]
        print(line, flush=True)
    if os.environ.get("OUT"):
        _write_atomic(os.path.join(os.environ["OUT"], "gemm_configs.md"), "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
