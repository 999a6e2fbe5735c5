"""breccia-triton FP8 GEMM vs cuBLAS on one CUDA GPU (issue 5's shapes). Ratios are against cuBLAS measured in the
same run; absolute TFLOP/s hold only for the card printed.

- tensorwise: ``torch._scaled_mm`` with per-tensor scales vs the Triton kernel (``mode="tensor"``);
- blockwise: cuBLAS DeepSeek 1×128 · 128×128 (``F.scaled_mm`` BlockWise1x128 / BlockWise128x128) vs the Triton
  kernel with per-128-K promotion (``mode="block"``); shapes cuBLAS refuses are timed for Triton alone.
Each case also checks the Triton output against cuBLAS (relative Frobenius error). Run on a GPU:
``python benchmarks/bench_triton_gemm.py [--json out.json]``.
"""

from __future__ import annotations

import json
import sys

import torch
import torch.nn.functional as F
import triton

from breccia.triton._gemm import _tuned, scaled_gemm

E4M3 = torch.float8_e4m3fn
TENSORWISE = [(8192, 8192, 8192), (4096, 7168, 16384), (16384, 4096, 4096), (4096, 24576, 1536)]
NK = [(7168, 2048), (24576, 1536), (7168, 16384), (4096, 7168), (4096, 4096)]
BLOCKWISE = [(m, n, k) for m in (4096, 16384) for n, k in NK] + [(m, 7168, 2048) for m in (64, 128)]
BLOCKWISE += [(m, 4096, 7168) for m in (64, 128)] + [(4096, 2112, 7168)]


def _fp8(shape: tuple[int, ...]) -> torch.Tensor:
    return (torch.randn(shape, device="cuda") * 2).to(E4M3)


def _time(fn: object) -> float:
    return float(triton.testing.do_bench(fn, warmup=25, rep=200))  # type: ignore[arg-type]


def _rel(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.linalg.norm(x.float() - y.float()) / torch.linalg.norm(y.float()))


def tensorwise(m: int, n: int, k: int) -> dict[str, object]:
    a, w = _fp8((m, k)), _fp8((n, k))
    sa, sb = torch.tensor(0.5, device="cuda"), torch.tensor(0.25, device="cuda")

    def cublas() -> torch.Tensor:
        return torch._scaled_mm(a, w.t(), scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)

    def ours() -> torch.Tensor:
        return scaled_gemm(a, sa, w.t(), sb, "tensor", torch.bfloat16)

    err = _rel(ours(), cublas())
    tc, tt = _time(cublas), _time(ours)
    cfg = str(_tuned.best_config)
    return {"kind": "tensorwise", "shape": (m, n, k), "cublas_ms": tc, "triton_ms": tt, "err": err, "config": cfg}


def blockwise(m: int, n: int, k: int) -> dict[str, object]:
    a, w = _fp8((m, k)), _fp8((n, k))
    kb, nb = -(-k // 128), -(-n // 128)
    sa = torch.rand(m, kb, device="cuda") + 0.5  # breccia's compact grids
    sw = torch.rand(nb, kb, device="cuda") + 0.5  # (N/128, K/128) of the (N, K) weight
    cublas = None
    if k % 128 == 0 and n % 128 == 0:
        sa_cm = sa.t().contiguous().t()  # cuBLAS wants outer-dim-major scales
        l4 = -(-kb // 4) * 4
        sw_pad = F.pad(sw, (0, l4 - kb))

        def cublas() -> torch.Tensor:
            return F.scaled_mm(a, w.t(), sa_cm, F.ScalingType.BlockWise1x128, sw_pad.t(),
                               F.ScalingType.BlockWise128x128, output_dtype=torch.bfloat16)  # fmt: skip

    def ours() -> torch.Tensor:
        return scaled_gemm(a, sa, w.t(), sw.t(), "block", torch.bfloat16)

    row: dict[str, object] = {"kind": "blockwise", "shape": (m, n, k)}
    out = ours()
    if cublas is not None:
        try:
            row["err"] = _rel(out, cublas())
            row["cublas_ms"] = _time(cublas)
        except RuntimeError as e:  # cuBLAS refuses some shapes
            row["cublas_error"] = str(e).splitlines()[0][:120]
    row["triton_ms"] = _time(ours)
    row["config"] = str(_tuned.best_config)
    return row


def main() -> None:
    props = torch.cuda.get_device_properties(0)
    print(f"card: {props.name} · torch {torch.__version__} · triton {triton.__version__}\n")
    rows = [tensorwise(*s) for s in TENSORWISE] + [blockwise(*s) for s in BLOCKWISE]
    print("| GEMM | M×N×K | cuBLAS TFLOP/s | Triton TFLOP/s | Triton / cuBLAS | rel. err vs cuBLAS | tuned config |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        m, n, k = r["shape"]  # type: ignore[misc]
        flops = 2.0 * m * n * k
        tt = flops / (float(r["triton_ms"]) * 1e-3) / 1e12  # type: ignore[arg-type]
        if "cublas_ms" in r:
            tc = flops / (float(r["cublas_ms"]) * 1e-3) / 1e12  # type: ignore[arg-type]
            cub, ratio = f"{tc:.0f}", f"{tt / tc:.2f}×"
        else:
            cub, ratio = "refused", "—"
        err = f"{float(r['err']):.1e}" if "err" in r else "—"  # type: ignore[arg-type]
        print(f"| {r['kind']} | {m}×{n}×{k} | {cub} | {tt:.0f} | {ratio} | {err} | {r['config']} |")
    if "--json" in sys.argv:
        with open(sys.argv[sys.argv.index("--json") + 1], "w") as f:
            json.dump({"card": props.name, "torch": torch.__version__, "triton": triton.__version__, "rows": rows}, f)


if __name__ == "__main__":
    main()
