"""Three ``breccia.triton.cast`` calls of one recipe on an 8192×8192 bf16 CUDA tensor, for ``ncu`` to sample the
third quantize kernel (what limits the quantize kernels that miss issue 5's 0.9× of copy: issue rate, occupancy,
stalls):

    ncu -k regex:quant_rows --launch-skip 2 --launch-count 1 --metrics <list> \
        python benchmarks/profile_triton_cast.py RECIPE

RECIPE: ``int4-asym``, ``int4-sym``, ``nvfp4``, ``nvfp4-one-level``, ``nvfp4-16x16``, ``mxfp4``, ``fp8-1x128``.
Without a GPU it says so and exits 0."""

from __future__ import annotations

import sys

import torch

# short names for the command line, for recipes of bench_triton_cast.RECIPES (one catalogue for both scripts)
ALIASES = {
    "int4-asym": "INT4 g128 asym",
    "int4-sym": "INT4 g128 sym",
    "nvfp4": "NVFP4 two-level",
    "nvfp4-one-level": "NVFP4 one-level",
    "nvfp4-16x16": "NVFP4 16x16",
    "mxfp4": "MXFP4",
    "fp8-1x128": "Float8Block 1x128",
}


def main() -> int:
    if not torch.cuda.is_available():
        print("profile_triton_cast: no CUDA device here (nothing was profiled).")
        return 0
    from bench_triton_cast import RECIPES

    import breccia.triton

    recipe = dict(RECIPES)[ALIASES[sys.argv[1] if len(sys.argv) > 1 else "int4-asym"]]
    x = torch.randn(8192, 8192, device="cuda").bfloat16()
    for _ in range(3):
        breccia.triton.cast(x, recipe)
    torch.cuda.synchronize()
    return 0


if __name__ == "__main__":
    sys.exit(main())
