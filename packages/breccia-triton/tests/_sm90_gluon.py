"""Compile the Gluon kernels for sm_90 as a GPU launch would specialise them, with no GPU, and report their SASS.

Why: Gluon has no interpreter, so on a machine without a GPU nothing else runs these kernels through the compiler,
and Gluon's API moves between Triton minor releases (Triton 3.8 renamed the TMA copies and 3.9 removed the old
names: the warp-specialised GEMM then failed at its first blockwise call on an H100). This compiles every Gluon
kernel with the *installed* Triton, whether or not ``breccia.triton._gluon.GLUON_TRITON`` lets it run there, so an
API break shows up in CI before anyone widens that window.

Run as a script (``python _sm90_gluon.py``) in a process without ``TRITON_INTERPRET``. The launch arguments come
from ``breccia.triton``'s own host code on CPU tensors; the launch itself is caught before it runs, and the kernel
goes through Triton's sm_90 compiler and ``ptxas``. Prints one JSON line per case: registers, SASS instructions, the
tensor-core and local-memory (spill) instruction counts, and a hash of the SASS (a refactor that should not change
the code can be checked).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _sass import opcodes
from _sm90 import Catch, compile_sm90, sass

# (name, kind, args): "ws" takes (mode, M, N, K, small-M tiling); "w4a16" and "w4a16 pdl" take (recipe source,
# form, M, N, K)
CASES: list[tuple[str, str, tuple[Any, ...]]] = [
    ("ws tensor 512x512x512", "ws", (0, 512, 512, 512, False)),
    ("ws row 512x512x512", "ws", (1, 512, 512, 512, False)),
    ("ws block 512x512x512", "ws", (2, 512, 512, 512, False)),
    ("ws block small-M 128x512x512", "ws", (2, 128, 512, 512, True)),
] + [
    (f"w4a16 {form} {name} M={m}", "w4a16", (src, form, m, 4096, 4096))
    for name, src, forms in (
        ("int4 g128", "INT4Scaling(group_size=128)", ("nk", "kn")),
        ("int4 asym uint g128", "INT4Scaling(group_size=128, symmetric=False, signed=False)", ("nk",)),
        ("nvfp4", "NVFP4BlockScaling()", ("nk", "kn")),
    )
    for form in forms
    for m in (1, 16)
]
# programmatic dependent launch with the INT4 prefetch before the wait, as an sm_90 GPU launches M <= 8
CASES.append(("w4a16 nk int4 g128 M=4 PDL", "w4a16 pdl", ("INT4Scaling(group_size=128)", "nk", 4, 4096, 4096)))
# M > 8 with one K range and whole tiles (N ≥ 32 rows per SM): unmasked loads, x in the lanes' order, PDL
CASES += [
    (f"w4a16 nk {name} M=16 XPERM", "w4a16 pdl", (src, "nk", 16, 8192, 1024))
    for name, src in (("int4 g128", "INT4Scaling(group_size=128)"), ("nvfp4", "NVFP4BlockScaling()"))
]


def _ws_launch(mode: int, m: int, n: int, k: int, small: bool) -> None:
    import torch

    from breccia.triton import _gemm_ws

    g = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=g).to(torch.float8_e4m3fn)
    w = torch.randn(n, k, generator=g).to(torch.float8_e4m3fn)
    kb, nb = -(-k // 128), -(-n // 128)
    sa, sb = {0: (torch.ones(()), torch.ones(())), 1: (torch.ones(m, 1), torch.ones(1, n)),
              2: (torch.ones(m, kb), torch.ones(kb, nb))}[mode]  # fmt: skip
    c = torch.empty(m, n, dtype=torch.bfloat16)
    _gemm_ws.gemm_ws(a, sa, w.t(), sb, mode, c, _gemm_ws.SMALL_M if small else None)


def _w4a16_launch(src: str, form: str, m: int, n: int, k: int) -> None:
    import torch

    import breccia
    from breccia.triton import _w4a16, _w4a16_mma, _w4a16_mma_kn

    recipe = eval(src, {name: getattr(breccia, name) for name in breccia.__all__})  # CASES' own sources
    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(n, k, generator=g)
    w = breccia.cast(w0.t().contiguous(), recipe, axis=0) if form == "kn" else breccia.cast(w0, recipe, axis=-1)
    p = _w4a16._plan(w)
    assert p is not None and p.pack_k == (form == "nk"), (src, form)
    x = torch.randn(m, k, generator=g).to(torch.bfloat16)
    out = torch.empty(m, n, dtype=torch.float32)
    cfg = _w4a16._default_mma_config(m, p, 132)  # an H100's SMs
    (_w4a16_mma if p.pack_k else _w4a16_mma_kn).launch(x, p, out, cfg)


def _permute_x(x: Any, mt: int, pdl: bool = False) -> Any:
    """Stands in for ``_w4a16_xperm.permute_x`` (M > 8): a buffer of the permuted shape, whose values the compile
    does not read."""
    import torch

    return torch.empty((x.shape[1] // 128, 4, mt, 4, 8), dtype=x.dtype)


def _sm90(device: Any) -> bool:
    """Stands in for ``_w4a16_mma._sm90`` in the PDL case: on CPU tensors the launch would not take that path."""
    return True


def main() -> None:
    from breccia.triton import _gemm_ws, _w4a16_mma, _w4a16_mma_kn

    caught: dict[str, Any] = {}
    _gemm_ws._num_sms = lambda device: 132  # an H100's SMs (the host asks the CUDA driver)
    _w4a16_mma.permute_x = _permute_x  # x's permutation is a Triton kernel: it cannot launch on CPU tensors
    real_sm90 = _w4a16_mma._sm90
    for mod, attr in ((_gemm_ws, "_gemm_ws_kernel"), (_w4a16_mma, "w4a16_mma_kernel"),
                      (_w4a16_mma_kn, "w4a16_mma_kn_kernel")):  # fmt: skip
        setattr(mod, attr, Catch(getattr(mod, attr), caught))
    for name, kind, args in CASES:
        caught.clear()
        _w4a16_mma._sm90 = _sm90 if kind == "w4a16 pdl" else real_sm90  # the host asks the CUDA driver
        with contextlib.suppress(StopIteration):  # the launch, caught
            (_ws_launch if kind == "ws" else _w4a16_launch)(*args)
        if not caught:
            print(json.dumps({"case": name, "error": "no kernel launch"}), flush=True)
            continue
        try:
            kw = dict(caught["kw"])
            opts = {"num_warps": kw.pop("num_warps"), "maxnreg": kw.pop("maxnreg", None)}
            ck = compile_sm90(caught["kernel"], caught["args"], kw, {k: v for k, v in opts.items() if v}, gluon=True)
        except Exception as e:  # reported per case: one API break should not hide the others
            print(json.dumps({"case": name, "error": f"{type(e).__name__}: {str(e)[-1500:]}"}), flush=True)
            continue
        listing, regs = sass(ck)
        ops = opcodes(listing)
        print(json.dumps({"case": name, "regs": regs,
                          "maxnreg": caught["kw"].get("maxnreg"), "instructions": sum(ops.values()),
                          "mma": ops["QGMMA"] + ops["HGMMA"] + ops["HMMA"], "spills": ops["LDL"] + ops["STL"],
                          "sha": hashlib.sha256(listing.encode()).hexdigest()[:16]}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
