"""Probe for the Gluon W4A16 fragment kernel (``breccia.triton._w4a16_mma``): every listed config against bf16 cuBLAS
and the routed ``w4a16_matmul`` call, on ``(N, K)`` weights, one CUDA GPU.

Each config is first checked (relative error against an FP64 product, NaN-poisoned output), then timed as GPU time
over cold weight copies (CUDA graph, ``bench_triton_w4a16._graph_us``). ``FAKE=1`` replaces the decode by plain
moves (wrong numbers, no error check): the time without the decode's instructions, i.e. what the loads and MMAs
alone cost (NVFP4's E4M3 scale conversion stays); ``FAKEX=1`` never loads x. Environment:
``CFGS="WK,WN,RT,AHEAD[,MAXNREG[,SPLIT]];…"`` (MAXNREG 0: none), ``MS="1,4,16"``, ``NSHAPES`` (1–3),
``RECIPES="INT4 g128;NVFP4"``, ``SHAPES="NxK,…"`` (instead of ``NSHAPES``), ``VARIANTS`` (module switches, see
:func:`_variants`), ``FORM=nk`` (the ``(N, K)`` kernel) or ``kn`` (the ``(K, N)`` one; ``RT`` is then the
words per thread and row). Prints one markdown row per (shape, M, recipe)."""

from __future__ import annotations

import itertools
import os
import sys
import time
from typing import Any

import torch
from triton.experimental import gluon
from triton.experimental.gluon import language as gl

sys.path.insert(0, os.path.dirname(__file__))
from bench_triton_w4a16 import _copies, _graph_us, _rel_err, _weight

import breccia
from breccia.triton import _w4a16 as W
from breccia.triton import _w4a16_mma as G
from breccia.triton import _w4a16_mma_kn as GKN

SHAPES = [(8192, 8192), (4096, 14336), (14336, 4096)]
RECIPES = {
    "INT4 g128": breccia.INT4Scaling(group_size=128),
    "INT4 g128 zp": breccia.INT4Scaling(group_size=128, symmetric=False, signed=False),
    "NVFP4": breccia.NVFP4BlockScaling(),
}


def _fake_decode() -> None:
    @gluon.constexpr_function
    def fake(*args: bool) -> str:
        return _MOVES

    G._word_ptx = fake
    G._NVFP4_SPLIT_PTX = gl.constexpr(_MOVES)


# the decode's stand-in: the word itself in each of the four output pairs
_MOVES = "{\n" + "".join(f"mov.b32 {{${2 * i}, ${2 * i + 1}}}, $8;\n" for i in range(4)) + "}"


def _fake_x() -> None:
    """``FAKEX=1``: x is never loaded (a value per token; the INT4 scales still load): what the kernel costs without
    x's loads and their registers in flight."""

    @gluon.jit
    def xload(it, x_ptr, s_ptr, x_off, x_b, x_mok, s_off, s_b, c0, nchunk, s_sk, KIND: gl.constexpr,
              GK: gl.constexpr, WK: gl.constexpr, EVEN: gl.constexpr = False, XCS: gl.constexpr = 128):  # fmt: skip
        xt = (x_off // 128 + x_b * 0 + 1).to(x_ptr.dtype.element_ty)  # per token, loop-invariant
        sc = xt
        if KIND == 0:
            sc = G._sload(it, s_ptr, s_off, s_b, c0, nchunk, s_sk, GK, WK)
        return xt, sc

    G._xload = xload


def _config(text: str) -> W.MmaConfig:
    """``WK,WN,RT[,AHEAD[,MAXNREG[,SPLIT]]]``: omitted fields take MmaConfig's defaults (AHEAD 1, no cap, 1 range)."""
    v = [int(t) for t in text.split(",")]
    return W.MmaConfig(*v[:3], *(v[3:4] or [1]), (v[4] or None) if len(v) > 4 else None, *v[5:6])


def _variants() -> list[tuple[str, dict[str, bool]]]:
    """``VARIANTS="name:FLAG=0,FLAG=1;…"``: module switches of ``_w4a16_mma`` (``EVEN``, ``UNROLL``, …) set around
    each config's launches, so one run times a config with and without them (default: as the module has them)."""
    out = []
    for item in os.environ.get("VARIANTS", "").split(";"):
        if item:
            name, _, flags = item.partition(":")
            vals = {f.split("=")[0]: f.split("=")[1] for f in flags.split(",") if f}
            out.append((name, {f: v == "1" if v in ("0", "1") else int(v) for f, v in vals.items()}))
    return out or [("", {})]


def _cell(tag: str, mod: Any, x: Any, st: Any, plans: list[Any], cfg: W.MmaConfig, ref: Any, k: int, fake: bool,
          t_ref: float) -> str:  # fmt: skip
    """One config's table cell: checked against the FP64 product (NaN-poisoned output), then timed."""
    out = torch.full((x.shape[0], ref.shape[1]), float("nan"), dtype=torch.bfloat16, device="cuda")
    try:
        mod.launch(x, W._plan(st), out, cfg)
        torch.cuda.synchronize()
    except Exception as e:  # a config that does not compile or fit is a result
        return f"{tag}: {type(e).__name__} {str(e)[:80]}"
    err = _rel_err(out, ref)
    bad = "" if fake or err <= 2.0**-9 + 8 * k * 2.0**-24 else f" WRONG {err:.1e}"
    o2 = torch.empty_like(out)
    us = _graph_us([lambda p=p, c=cfg, o=o2: mod.launch(x, p, o, c) for p in plans])
    return f"{tag}: {us:.1f}us {t_ref / us:.2f}x{bad}"


def _row(n: int, k: int, m: int, rname: str, recipe: Any, cfgs: list[W.MmaConfig], fake: bool, form: str) -> str:
    torch.manual_seed(n + k + m)
    w = torch.randn(n, k, device="cuda") * 0.02
    x = torch.randn(m, k, device="cuda").bfloat16()
    t_ref = _graph_us([lambda wb=wb: x @ wb.T for wb in [w.bfloat16() for _ in range(2)]])
    st, nbytes, ref = _weight(w, recipe, form, x)
    mod = G if form == "nk" else GKN
    copies = _copies(st, nbytes)
    plans = [W._plan(c) for c in copies]
    t_routed = _graph_us([lambda c=c: W.w4a16_matmul(x, c) for c in copies])
    cells = []
    for cfg, (vname, flags) in itertools.product(cfgs, _variants()):
        saved = {f: getattr(G, f) for f in flags}
        for f, v in flags.items():
            setattr(G, f, v)
        try:
            tag = "/".join(str(v) for v in cfg if v is not None) + (f" {vname}" if vname else "")
            cells.append(_cell(tag, mod, x, st, plans, cfg, ref, k, fake, t_ref))
        finally:
            for f, v in saved.items():
                setattr(G, f, v)
    routed = f"routed {t_routed:.1f} ({t_ref / t_routed:.2f}x)"
    head = f"| {n}x{k} | M={m} | {rname} {form} | cuBLAS {t_ref:.1f} | {routed} | "
    return head + " | ".join(cells) + " |"


def main() -> None:
    fake = os.environ.get("FAKE") == "1"
    if fake:
        _fake_decode()
    if os.environ.get("FAKEX") == "1":
        _fake_x()
        fake = True
    cfgs = [_config(c) for c in os.environ.get("CFGS", "8,1,2,1,128;4,1,2,2").split(";")]
    ms = [int(v) for v in os.environ.get("MS", "1,4,16").split(",")]
    names = os.environ.get("RECIPES", ";".join(RECIPES)).split(";")
    t0 = time.monotonic()
    print(torch.cuda.get_device_name(), torch.__version__, flush=True)
    shapes = SHAPES[: int(os.environ.get("NSHAPES", "1"))]
    if os.environ.get("SHAPES"):  # "NxK,…"
        shapes = [tuple(int(v) for v in t.split("x")) for t in os.environ["SHAPES"].split(",")]
    for (n, k), m in itertools.product(shapes, ms):
        for rname in names:
            print(_row(n, k, m, rname, RECIPES[rname], cfgs, fake, os.environ.get("FORM", "nk")), flush=True)
    print(f"done in {time.monotonic() - t0:.0f}s")


if __name__ == "__main__":
    main()
