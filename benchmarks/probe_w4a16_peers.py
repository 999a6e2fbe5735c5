"""Probe: breccia's W4A16 INT4 g128 kernel beside the peers that ship one for Hopper-class cards, one CUDA GPU.

Issue 5 asks ≥ 3× bf16 cuBLAS at M ≤ 16 on 8192×8192. This probe asks what the field's kernels reach on the same
card, timed the same way in the same process, so the target can be read against the state of the art:

- **tinygemm** (``torch.ops.aten._weight_int4pack_mm``, built into PyTorch; torchao's ``Int4WeightOnlyConfig``
  default on CUDA): bf16 activations, asymmetric INT4 g128 (``(q − 8)·s + z``), against bf16 cuBLAS;
- **Marlin** (IST-DASLab, the FP16×INT4 kernel vLLM's GPTQ/AWQ paths grew from): fp16 activations, symmetric INT4
  g128, against fp16 cuBLAS. Not on PyPI as a wheel: with ``MARLIN_SRC`` pointing at a checkout of
  ``github.com/IST-DASLab/marlin``, its two sources are compiled here by ``torch.utils.cpp_extension`` for the card
  (nothing of it is copied into breccia; ``MARLIN_CFLAGS`` adds nvcc flags, ``TORCH_CUDA_ARCH_LIST`` overrides the
  card's target), from a temporary copy without one L2 eviction hint that faults with CUDA 13.0 on an H100
  (:data:`_HINTED`). Both of its tile shapes for small M are timed and the better one kept.
- **breccia** ``w4a16_matmul`` on an ``(N, K)`` INT4 g128 weight (the routed Gluon fragment kernel), bf16.

Times are GPU time of CUDA-graph replays over weight copies that together exceed L2 (each call reads cold
weights), as ``bench_triton_w4a16`` times them; breccia's kernel launches with programmatic dependent launch at
M ≤ 8, the peers without. Every kernel's product is first checked against an FP64 product of its own dequantized
weight (relative Frobenius error; outputs NaN-poisoned). Environment: ``SHAPES="8192x8192,4096x14336"``,
``MS="1,4,8,16"``. Prints markdown rows; writes them to ``$OUT/w4a16_peers.md`` if set.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_triton_w4a16 import _copies, _graph, _graph_us, _poisoned, _rel_err, _weight, _write_atomic, tinygemm

import breccia
from breccia.triton._w4a16 import w4a16_matmul

G = 128  # group size, every kernel here
BOUND = 2.0**-8  # a 16-bit output's rounding, with room: a wrong kernel reads O(1)


# Marlin's weight copy asks L2 to evict its lines first (a ``createpolicy`` operand on ``cp.async``). Built by the
# CUDA 13.0 toolchain for an H100 it stops at that instruction (``cudaErrorIllegalInstruction``; compute-sanitizer
# names ``cp_async4_stream``), also as PTX for compute_80 compiled by the driver, and runs with ``-Xptxas -O0`` (at
# a tenth of the speed). So the probe builds a copy without the hint: the plain ``cp.async.cg`` it otherwise issues.
_HINTED = (
    '    "   .reg .b64 p;\\n"\n'
    '    "   createpolicy.fractional.L2::evict_first.b64 p, 1.0;"\n'
    '    "   cp.async.cg.shared.global.L2::cache_hint [%0], [%1], %2, p;\\n"\n'
)
_PLAIN = '    "   cp.async.cg.shared.global [%0], [%1], %2;\\n"\n'


def build_marlin(src: str) -> Any:
    """Marlin compiled for this card (``TORCH_CUDA_ARCH_LIST`` from the device) from a copy of ``src``'s sources
    with the L2 eviction hint dropped (``MARLIN_CACHE_HINT=1`` keeps it), imported from ``src``."""
    import shutil
    import tempfile

    from torch.utils.cpp_extension import load

    cc = torch.cuda.get_device_capability()
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", f"{cc[0]}.{cc[1]}")
    flags = ["-O3", *os.environ.get("MARLIN_CFLAGS", "").split()]
    build = tempfile.mkdtemp(prefix="marlin_src_")
    for f in ("marlin_cuda.cpp", "marlin_cuda_kernel.cu"):
        shutil.copy(os.path.join(src, "marlin", f), build)
    kernel = os.path.join(build, "marlin_cuda_kernel.cu")
    with open(kernel) as fh:
        text = fh.read()
    hinted = _HINTED in text
    if hinted and os.environ.get("MARLIN_CACHE_HINT") != "1":
        with open(kernel, "w") as fh:
            fh.write(text.replace(_HINTED, _PLAIN))
    t0 = time.monotonic()
    mod = load("marlin_cuda", [os.path.join(build, f) for f in ("marlin_cuda.cpp", "marlin_cuda_kernel.cu")],
               extra_cuda_cflags=flags, verbose=False)  # fmt: skip
    sys.modules["marlin_cuda"] = mod
    sys.path.insert(0, src)
    import marlin

    kept = "kept" if not hinted or os.environ.get("MARLIN_CACHE_HINT") == "1" else "dropped"
    print(f"Marlin built in {time.monotonic() - t0:.0f} s for sm_{cc[0]}{cc[1]} (L2 hint {kept})", flush=True)
    return marlin


def marlin_case(marlin: Any, n: int, k: int, x16: torch.Tensor) -> dict[str, Any]:
    """Symmetric codes and fp16 scales packed by Marlin's own ``Layer.pack``; both small-M tile shapes timed."""
    q = torch.randint(0, 16, (k, n), dtype=torch.int32, device="cuda")
    s = (torch.rand(k // G, n, device="cuda") * 0.01 + 1e-3).half()
    w = ((q - 8).half().view(k // G, G, n) * s.view(k // G, 1, n)).view(k, n)  # exact: pack recovers q
    lin = torch.nn.Linear(k, n, bias=False).half().cuda()
    lin.weight.data = w.t().contiguous()
    layer = marlin.Layer(k, n, groupsize=G).cuda()
    layer.pack(lin, s.t().contiguous())
    ref = x16.double() @ w.double()
    m = x16.shape[0]
    best: dict[str, Any] = {"us": float("inf")}
    for tk, tn in ((128, 128), (64, 256)):
        ws = torch.zeros(n // 128 * 16, dtype=torch.int32, device="cuda")

        def fn(b: torch.Tensor, sc: torch.Tensor, tk: int = tk, tn: int = tn, ws: torch.Tensor = ws) -> torch.Tensor:
            c = torch.empty(m, n, dtype=torch.half, device="cuda")
            marlin.mul(x16, b, c, sc, ws, tk, tn, -1)
            return c

        err = _rel_err(_poisoned(lambda fn=fn: fn(layer.B, layer.s), [((m, n), torch.half)]), ref)
        us = _graph(fn, [layer.B, layer.s])
        if us < best["us"]:
            best = {"us": us, "err": err, "cfg": f"thread_k {tk}, thread_n {tn}"}
    return best


def _rows(w: torch.Tensor, m: int, recipe: Any, marlin: Any) -> list[tuple[str, str, dict[str, Any], float]]:
    """One weight and one M: cuBLAS in both 16-bit dtypes, breccia, tinygemm and (if built) Marlin, each with the
    cuBLAS time its ratio is taken against."""
    n, k = w.shape
    x = torch.randn(m, k, device="cuda").bfloat16()
    x16 = x.half()
    cub = _graph_us([lambda wb=wb: x @ wb.T for wb in [w.bfloat16() for _ in range(2)]])
    cub16 = _graph_us([lambda wb=wb: x16 @ wb.T for wb in [w.half() for _ in range(2)]])
    rows = [("cuBLAS", "bf16", {"us": cub, "err": None, "cfg": ""}, cub),
            ("cuBLAS", "fp16", {"us": cub16, "err": None, "cfg": ""}, cub16)]  # fmt: skip
    st, nbytes, ref = _weight(w, recipe, "nk", x)
    err = _rel_err(_poisoned(lambda: w4a16_matmul(x, st), [((m, n), torch.bfloat16)]), ref)
    us = _graph_us([lambda c=c: w4a16_matmul(x, c) for c in _copies(st, nbytes)])
    rows.append(("breccia", "bf16", {"us": us, "err": err, "cfg": "routed"}, cub))
    rows.append(("tinygemm", "bf16", {**tinygemm(n, k, x), "cfg": "innerKTiles 8"}, cub))
    if marlin is not None:
        rows.append(("Marlin", "fp16", marlin_case(marlin, n, k, x16), cub16))
    return rows


def main() -> int:
    if not torch.cuda.is_available():
        print("probe_w4a16_peers: no CUDA device here (nothing was timed).")
        return 0
    shapes = [tuple(int(v) for v in s.split("x")) for s in os.environ.get("SHAPES", "8192x8192,4096x14336").split(",")]
    ms = [int(v) for v in os.environ.get("MS", "1,4,8,16").split(",")]
    src = os.environ.get("MARLIN_SRC")
    marlin = build_marlin(src) if src else None
    props = torch.cuda.get_device_properties(0)
    head = f"card: {props.name} · torch {torch.__version__}"
    lines = [head, "", "| weight N×K | M | kernel | activations | µs | × cuBLAS (same dtype) | rel. err | config |",
             "|---|---|---|---|---:|---:|---:|---|"]  # fmt: skip
    print("\n".join(lines), flush=True)
    torch.manual_seed(0)
    recipe = breccia.INT4Scaling(group_size=G)
    for n, k in shapes:
        w = torch.randn(n, k, device="cuda") * 0.02
        for m in ms:
            rows = _rows(w, m, recipe, marlin)
            for name, dt, r, base in rows:
                e = r["err"]
                flag = "" if e is None or e <= BOUND else " WRONG"
                line = (f"| {n}×{k} | {m} | {name} | {dt} | {r['us']:.1f} | {base / r['us']:.2f}× | "
                        f"{'—' if e is None else f'{e:.1e}'}{flag} | {r['cfg']} |")  # fmt: skip
                lines.append(line)
                print(line, flush=True)
    if os.environ.get("OUT"):
        _write_atomic(os.path.join(os.environ["OUT"], "w4a16_peers.md"), "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
