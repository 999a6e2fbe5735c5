"""Bare quantize-kernel GPU time at chosen shapes, against a device copy of the same input timed in the same rounds.

Made for A/B runs of two source trees (run it once per tree, in alternating processes, on one card): the ragged row
lengths of the fifteenth session (``8192x5000``, where Triton's launch specialisation does not see the rows'
16-byte alignment) and the NVFP4 16×16 row-load change. Each cast is checked byte for byte against breccia-torch's
own driver before it is timed. Times are CUDA-graph GPU time (``bench_gpu.gpu_time``: no host launch cost, inputs
larger than L2 read cold); "x copy" is the bytes the cast moves per second over the copy's (read + written).

    PYTHONPATH=packages/breccia-core/src:packages/breccia-torch/src:packages/breccia-triton/src \\
        python benchmarks/bench_triton_cast_shapes.py \\
            --cases "MXFP8 E4M3 rceil@8192x5000,NVFP4 two-level@8192x5008,NVFP4 16x16@8192x8192" [--dtype bf16]
"""

from __future__ import annotations

import argparse
import sys

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def case_row(name: str, m: int, k: int, dtype: torch.dtype, rounds: int) -> str:
    """One table row: bytes checked against breccia-torch, then kernel and copy GPU time in the same rounds."""
    import bench_triton_cast as btc
    from bench_gpu import eager, fresh_input, gpu_time

    from breccia.triton import _cast as tc
    from breccia.triton._amax import tensor_amax

    r = dict(btc.RECIPES)[name]
    x = fresh_input(m, k, 5).to(dtype)
    lay = r.default_layout(-1)
    st = tc.cast(x, r)
    ok = st is not None and btc.same(st, eager(x, r, lay))
    plan = tc._plan(x, r, lay)
    g = tensor_amax(x) if r.has_global_scale else None
    t = gpu_time({"copy": x.clone, "k": lambda: tc._launch(x, r, plan, g, m)}, rounds)
    ratio = btc.moved(x, st) / t["k"] / (2 * btc.nbytes(x) / t["copy"])
    return f"| {name} | {m}x{k} | {ok} | {t['k'] * 1e3:.1f} | {t['copy'] * 1e3:.1f} | {ratio:.3f} |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", required=True, help="comma-separated RECIPE@MxK, RECIPE as in bench_triton_cast.py")
    p.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_triton_cast_shapes.py needs a CUDA device")
    print("| recipe | shape | same bytes | kernel us | copy us | x copy |\n|---|---|---|---:|---:|---:|")
    for case in args.cases.split(","):
        name, shape = case.rsplit("@", 1)
        m, k = (int(n) for n in shape.split("x"))
        print(case_row(name, m, k, DTYPES[args.dtype], args.rounds), flush=True)


if __name__ == "__main__":
    main()
