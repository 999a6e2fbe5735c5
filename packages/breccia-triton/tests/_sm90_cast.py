"""Compile the cast kernels for sm_90 as a GPU launch would specialise them, with no GPU, and check their SASS.

Run as a script (``python _sm90_cast.py``) in a process without ``TRITON_INTERPRET``, so that ``@triton.jit`` makes
compilable kernels: the plan and launch arguments come from ``breccia.triton``'s own host code on a CPU tensor (the
interpreter's switch turned on only after the import, so that ``_plan`` accepts it), the launch itself is caught
before it runs (the row kernel, or one of the FP8 2-D tile kernels), and the kernel goes through Triton's sm_90
compiler and ``ptxas``. Prints one JSON line per case: its registers, SASS instructions,
:func:`_sass.undefined_reads` and a hash of the SASS (a refactor that should not change the code can be checked).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _sm90 import Catch, compile_sm90, sass

# (name, recipe constructor source, input dtype, rows, K): the E2M1 kernels at one row per program (K ≥ 8192, where
# ptxas 12.8 miscompiled the one-level NVFP4 scale), at two (K = 4096) and with ragged edges (masks), from each
# input dtype; every other row-kernel recipe once
CASES = (
    [
        (f"{name} {dt} {m}x{k}", src, dt, m, k)
        for name, src in (
            ("nvfp4", "NVFP4BlockScaling()"),
            ("nvfp4 one-level", "NVFP4BlockScaling(per_tensor_scale=False)"),
            ("nvfp4 one-level reciprocal", "NVFP4BlockScaling(per_tensor_scale=False, data_scaling='reciprocal')"),
            ("nvfp4 torchao", "NVFP4BlockScaling(block_scale_min=2.0**-6, data_scaling='reciprocal')"),
            ("mxfp4", "MXFP4BlockScaling()"),
        )
        for dt in ("bfloat16", "float16", "float32")
        for m, k in ((256, 8192), (256, 4096), (100, 5120))
    ]
    + [
        (f"{name} bfloat16 256x8192", src, "bfloat16", 256, 8192)
        for name, src in (
            ("nvfp4 16x16", "NVFP4BlockScaling(block_m=16)"),
            ("mxfp8", "MXFP8BlockScaling()"),
            ("fp8 1x128", "Float8BlockScaling()"),
            ("mxfp6", "MXFP6BlockScaling()"),
            ("int4 g128", "INT4Scaling(group_size=128)"),
            ("int4 g128 asym", "INT4Scaling(group_size=128, symmetric=False, signed=False)"),
            ("int8", "INT8Scaling()"),
        )
    ]
    + [  # NVFP4 16×16 (one warp per 16-row tile since the sixteenth session): the other inputs, the reciprocal rule,
        # and a masked launch (rows and K off the tile)
        (f"nvfp4 16x16{tag} {dt} {m}x{k}", f"NVFP4BlockScaling(block_m=16{arg})", dt, m, k)
        for tag, arg, dt, m, k in (
            ("", "", "float16", 256, 8192),
            ("", "", "float32", 256, 8192),
            (" one-level reciprocal", ", per_tensor_scale=False, data_scaling='reciprocal'", "bfloat16", 256, 8192),
            ("", "", "bfloat16", 100, 5120),
        )
    ]
    + [  # FP8 2-D tiles: the one-pass pair-word kernel (16-bit input) and the two-pass one (fp32)
        (f"fp8 128x128 {dt} 256x8192", "Float8BlockScaling(block_m=128)", dt, 256, 8192)
        for dt in ("bfloat16", "float32")
    ]
    + [  # row lengths with a power-of-two factor below 16 (32 for 4-bit codes), passed divided by it (_hidden_factor)
        (f"{name} {dt} 256x{k}", src, dt, 256, k)
        for name, src, dt, k in (
            ("mxfp8", "MXFP8BlockScaling()", "bfloat16", 5000),
            ("fp8 1x128", "Float8BlockScaling()", "bfloat16", 5000),
            ("nvfp4", "NVFP4BlockScaling()", "bfloat16", 5008),
            ("fp8 128x128", "Float8BlockScaling(block_m=128)", "bfloat16", 5000),
            ("fp8 128x128", "Float8BlockScaling(block_m=128)", "float32", 5000),
        )
    ]
    + [  # the host's relaunch with div.rn for every element (SAFE: a divisor outside the fast division's range)
        (f"{name} bfloat16 256x8192 SAFE", src, "bfloat16", 256, 8192)
        for name, src in (
            ("nvfp4", "NVFP4BlockScaling()"),
            ("nvfp4 torchao", "NVFP4BlockScaling(block_scale_min=2.0**-6, data_scaling='reciprocal')"),
            ("int4 g128 asym", "INT4Scaling(group_size=128, symmetric=False, signed=False)"),
        )
    ]
)


def _compile(kernel: Any, args: tuple[Any, ...], kw: dict[str, Any], safe: bool) -> Any:
    kw = dict(kw)
    kw["NATIVE"] = True  # what the GPU launch passes (the CPU tensor here says False)
    kw["SAFE"] = safe
    opts = {"num_warps": kw.pop("num_warps"), "enable_fp_fusion": kw.pop("enable_fp_fusion", True)}
    return compile_sm90(kernel, args, kw, opts)


class _OnGpu:
    """What :func:`breccia.triton._cast._warps` asks of the input: whether it is on the GPU, and its dtype."""

    is_cuda = True

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype


def main() -> None:
    import torch
    from _sass import opcodes, undefined_reads

    import breccia
    from breccia.triton import _amax, _cast
    from breccia.triton import _kernel as K
    from breccia.triton import _kernel2d as K2

    os.environ["TRITON_INTERPRET"] = "1"  # after the import: _plan takes the CPU tensor, the kernel stays compilable
    _amax.tensor_amax = lambda x2: x2.abs().amax().float().reshape(1)  # the two-level amax, not a GPU kernel
    caught: dict[str, Any] = {}
    for mod, attr in ((K, "quant_rows_kernel"), (K2, "quant_tiles_kernel"), (K2, "quant_tiles_pairs_kernel")):
        setattr(mod, attr, Catch(getattr(mod, attr), caught))
    for name, src, dt, m, k in CASES:
        recipe = eval(src, {n: getattr(breccia, n) for n in breccia.__all__})  # CASES' own sources
        x = torch.randn(m, k, generator=torch.Generator().manual_seed(0)).to(getattr(torch, dt))
        caught.clear()
        with contextlib.suppress(StopIteration):  # the launch, caught
            _cast.cast(x, recipe)
        if not caught:
            print(json.dumps({"case": name, "error": "no kernel launch"}), flush=True)
            continue
        kernel, kw = caught["kernel"], caught["kw"]
        plan = _cast._plan(x, recipe, recipe.default_layout(-1))
        if kernel.fn.__name__ == "quant_tiles_pairs_kernel":  # the launch's GPU warps (the CPU tensor got 1)
            warps = _cast.PAIR_WARPS
        else:
            warps = _cast._warps(_OnGpu(x.dtype), kw["BKP"] * kw.get("PACK", 1), plan, kw.get("ROW_TILE", False))
        ck = _compile(kernel, caught["args"], kw | {"num_warps": warps}, name.endswith("SAFE"))
        listing, regs = sass(ck)
        sha = hashlib.sha256(listing.encode()).hexdigest()[:16]
        print(json.dumps({"case": name, "regs": regs, "instructions": sum(opcodes(listing).values()),
                          "undefined": undefined_reads(listing), "sha": sha}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
