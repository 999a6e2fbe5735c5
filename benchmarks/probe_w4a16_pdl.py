"""Probe: programmatic dependent launch (PDL) for the Gluon W4A16 fragment kernel (``breccia.triton._w4a16_mma``),
``(N, K)`` weights, one CUDA GPU of sm_90 or later.

With PDL a kernel signals at its start that the next kernel in the stream may launch; the next one's CTAs then take
SM slots as this one's finish, read what does not depend on the previous kernel (the weight: its first lines into
L2, ``PF`` per thread) and wait (``griddepcontrol.wait``) before they read ``x``. So the single wave's start and end,
~3.5 µs of a 15 µs decode product (benchmarks/NOTES.md), can overlap the previous kernel's tail.

Two arrangements, each GPU time of CUDA-graph replays over cold weight copies, with bf16 cuBLAS timed the same way
in the same process:

- ``back to back``: W4A16 products one after another (as ``bench_triton_w4a16`` times them; the case where a
  product follows a product, e.g. unfused Q, K and V projections);
- ``after a copy``: each product preceded by an elementwise kernel writing its ``x`` (``xs.copy_(x)``), as a norm
  or an activation precedes a projection in a decode step. That kernel does not signal early, so the product can
  start only when it ends; PDL then saves at most the launch latency.

Every setting is first checked: the product against an FP64 reference (output NaN-poisoned), and a chain of eight
dependent products (``y ← W y``, each reading the previous one's output, square weight) under a CUDA graph with
PDL, bit-identical to the same chain without it: a wait placed too late would read a stale ``x``.

Environment: ``MS="1,4,16"``, ``PFS="0,1,2,4"``, ``ROUNDS=3``, ``NC=1`` (also each PDL setting with NVFP4's words
through the clamped ``.nc`` load, :data:`._w4a16_mma.NC_KINDS`). Prints markdown rows; writes them to ``$OUT`` if set.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_gpu import best_rotated
from bench_triton_w4a16 import _copies, _graph_us, _poisoned, _rel_err, _weight, _write_atomic

import breccia
from breccia.triton import _w4a16_mma as G
from breccia.triton._w4a16 import w4a16_matmul

RECIPES = {"INT4 g128": breccia.INT4Scaling(group_size=128), "NVFP4": breccia.NVFP4BlockScaling()}


_DEFAULTS = (G.PDL, G.PF, G.PDL_MAX_M, G.NC_KINDS)


def _set(pdl: bool, pf: int, nc: bool = False) -> None:
    """PDL on or off at every M this probe runs (the library launches it at M <= ``PDL_MAX_M`` only); ``nc``: NVFP4
    words too through the clamped ``.nc`` load (and so the prefetch)."""
    G.PDL, G.PF, G.PDL_MAX_M = pdl, pf, 16
    G.NC_KINDS = frozenset({0, 1}) if nc else _DEFAULTS[3]


def _chain(st: Any, x: torch.Tensor, steps: int = 8) -> torch.Tensor:
    """``steps`` dependent products (each reads the previous one's output directly: no kernel between them)
    captured in one CUDA graph; the outputs NaN-filled, then the graph replayed once."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        y = x
        for _ in range(steps):  # compile outside the capture
            y = w4a16_matmul(y, st)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            ys = [x]
            for _ in range(steps):
                ys.append(w4a16_matmul(ys[-1], st))
        for y in ys[1:]:
            y.fill_(float("nan"))
        graph.replay()
    stream.synchronize()
    return torch.stack(ys[1:])


def _case(m: int, rname: str, recipe: Any, w: torch.Tensor, settings: dict[str, tuple[bool, int, bool]],
          rounds: int) -> list[str]:  # fmt: skip
    """One M and recipe: every setting checked, then timed in both arrangements beside bf16 cuBLAS."""
    n, k = w.shape
    x = torch.randn(m, k, device="cuda").bfloat16()
    xs = torch.empty_like(x)
    w_bf16 = [w.bfloat16() for _ in range(2)]
    st, nbytes, ref = _weight(w, recipe, "nk", x)
    copies = _copies(st, nbytes)
    x0 = torch.randn(m, k, device="cuda").bfloat16()
    checks: dict[str, tuple[float, bool]] = {}
    base_chain = None
    for name, (pdl, pf, nc) in settings.items():
        _set(pdl, pf, nc)
        out = _poisoned(lambda: w4a16_matmul(x, st), [((m, n), torch.bfloat16)])
        chain = _chain(st, x0)
        base_chain = chain if base_chain is None else base_chain
        checks[name] = (_rel_err(out, ref), bool(torch.equal(chain.view(torch.int16), base_chain.view(torch.int16))))

    def timed(pdl: bool, pf: int, nc: bool, copy: bool) -> Callable[[], float]:
        def run() -> float:
            _set(pdl, pf, nc)
            if copy:
                return _graph_us([lambda c=c: (xs.copy_(x), w4a16_matmul(xs, c)) for c in copies])
            return _graph_us([lambda c=c: w4a16_matmul(x, c) for c in copies])

        return run

    fns: dict[str, Callable[[], float]] = {
        "cuBLAS b2b": lambda: _graph_us([lambda wb=wb: x @ wb.T for wb in w_bf16]),
        "cuBLAS copy": lambda: _graph_us([lambda wb=wb: (xs.copy_(x), xs @ wb.T) for wb in w_bf16]),
    }
    for name, (pdl, pf, nc) in settings.items():
        fns[f"{name} b2b"], fns[f"{name} copy"] = timed(pdl, pf, nc, False), timed(pdl, pf, nc, True)
    best = best_rotated(fns, rounds)
    rows = []
    for name in settings:
        err, same = checks[name]
        tb, tc = best[f"{name} b2b"], best[f"{name} copy"]
        rows.append(
            f"| {rname} | {m} | {name} | {err:.1e} | {'yes' if same else '**NO**'} | {tb:.1f} | "
            f"{best['cuBLAS b2b'] / tb:.2f} | {tc:.1f} | {best['cuBLAS copy'] / tc:.2f} |"
        )
    cb, cc = best["cuBLAS b2b"], best["cuBLAS copy"]
    rows.append(f"| bf16 cuBLAS | {m} | — | — | — | {cb:.1f} | 1.00 | {cc:.1f} | 1.00 |")
    return rows


def main() -> int:
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (9, 0):
        print("probe_w4a16_pdl.py needs a CUDA GPU of sm_90 or later")
        return 0
    ms = [int(v) for v in os.environ.get("MS", "1,4,16").split(",")]
    pfs = [int(v) for v in os.environ.get("PFS", "0,1,2,4").split(",")]
    rounds = int(os.environ.get("ROUNDS", "3"))
    settings = {"no PDL": (False, 0, False)} | {f"PDL PF{pf}": (True, pf, False) for pf in pfs}
    if os.environ.get("NC") == "1":  # NVFP4's words through the clamped .nc load as well
        settings |= {f"PDL PF{pf} nc": (True, pf, True) for pf in pfs}
    torch.manual_seed(0)
    w = torch.randn(8192, 8192, device="cuda")
    lines = [
        f"{torch.cuda.get_device_name()}, torch {torch.__version__}; 8192×8192 (N, K) weight; GPU µs per product "
        "(CUDA-graph replays, cold weights); × = bf16 cuBLAS µs / this µs, same arrangement, same process; best of "
        f"{rounds} rotated rounds.",
        "",
        "| recipe | M | setting | err vs FP64 | chain = no PDL | back to back µs | × | after a copy µs | × |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    for m in ms:
        for rname, recipe in RECIPES.items():
            rows = _case(m, rname, recipe, w, settings, rounds)
            print("\n".join(rows), flush=True)
            lines += rows
    G.PDL, G.PF, G.PDL_MAX_M, G.NC_KINDS = _DEFAULTS
    if os.environ.get("OUT"):
        _write_atomic(os.path.join(os.environ["OUT"], "w4a16_pdl.md"), "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
