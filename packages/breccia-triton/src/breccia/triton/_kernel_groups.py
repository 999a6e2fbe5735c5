"""The INT4 asymmetric group quantize: one group per thread, two passes over the group.

Why a second kernel for one recipe family. :func:`._kernel.quant_rows_kernel` holds 16 words (32 elements) of a
128-element group per thread, so each group's scalar work (min and max, the scale and zero point with their correctly
rounded divisions, the per-group reciprocal and the clamp guard, and the scale and zero point layout conversions into
the store layout) runs on four lanes at once. On an H200 that is about half of INT4 g128 asymmetric's 15.7 warp
instructions per element, and the kernel is instruction-bound (71 % issue, `results/h200_triton_cast_ncu.txt`).
Here each thread owns a whole group: it reads the group in chunks of ``CW`` words for its min and max, computes the
group's scalars once, then reads the chunks again (from L1/L2: the same program just read them) to encode and pack.

Every value is computed by the same helpers and in the same order as ``quant_rows_kernel``'s asymmetric branch, so
the bytes are the same (the interpreter tests and the GPU tests compare both against the reference). Taken where
each row is whole groups of 32–256 elements of a 16-bit input (so groups, their scales and their packed bytes are
contiguous and ``xw`` holds one word per element pair); everything else stays with ``quant_rows_kernel``.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from breccia.triton import _div
from breccia.triton._codes import (
    _amax_bits,
    _bits,
    _from_bits,
    _int_code,
    _pair_minmax,
    _rint,
    _split_pairs,
)


@triton.jit
def _chunk(xw_ptr, g3, c, j3, gvalid3, BKP: tl.constexpr, CW: tl.constexpr):
    """Words ``c·CW … c·CW + CW − 1`` of every group of the program (zeros past the last group)."""
    return tl.load(xw_ptr + g3 * BKP + c * CW + j3, mask=gvalid3, other=0)


@triton.jit
def _minmax(w, IN_KIND: tl.constexpr, NATIVE: tl.constexpr):
    """``(min, max, amax bits)`` of each group's elements in one chunk, as ``quant_rows_kernel`` reduces them."""
    if NATIVE and IN_KIND != 0:
        vmin, vmax = _pair_minmax(w, IN_KIND)  # NaN-propagating: the amax follows from them
        amax = tl.maximum(_bits(vmin) & 0x7FFFFFFF, _bits(vmax) & 0x7FFFFFFF)
    else:
        x0, x1 = _split_pairs(w, IN_KIND)
        amax = tl.maximum(_amax_bits(x0), _amax_bits(x1))
        vmin = tl.minimum(tl.min(x0, axis=2), tl.min(x1, axis=2))
        vmax = tl.maximum(tl.max(x0, axis=2), tl.max(x1, axis=2))
    return vmin, vmax, amax


@triton.jit
def quant_int_groups_kernel(
    xw_ptr,
    data_ptr,
    scale_ptr,
    zp_ptr,
    flag_ptr,
    NG,
    BKP: tl.constexpr,
    CW: tl.constexpr,
    G: tl.constexpr,
    DENOM: tl.constexpr,
    QMIN: tl.constexpr,
    QMAX: tl.constexpr,
    SKIND: tl.constexpr,
    TINY_BITS: tl.constexpr,
    IN_KIND: tl.constexpr,
    NATIVE: tl.constexpr,
    I64: tl.constexpr,
):
    """Groups ``G·pid … G·pid + G − 1`` of ``NG`` (each ``BKP`` pair words, ``CW`` per chunk): the scale (fp32 bits of
    the fp16/bf16/fp32 value), the zero point (int32) and the packed bytes (two codes each), plus the program's flag
    (1: NaN/Inf seen, 2: an fp16/bf16 scale overflowed)."""
    pid = tl.program_id(0)
    g = pid * G + tl.arange(0, G)
    gvalid = g < NG
    g2 = g[None, :]
    g3 = g[None, :, None]
    if I64:
        g3 = g3.to(tl.int64)
    gvalid2 = gvalid[None, :]
    gvalid3 = gvalid[None, :, None]
    j3 = tl.arange(0, CW)[None, None, :]
    NCH: tl.constexpr = BKP // CW

    # pass 1: each group's smallest and largest element, chunk by chunk
    nan: tl.constexpr = tl.PropagateNan.ALL
    vmin, vmax, amax = _minmax(_chunk(xw_ptr, g3, 0, j3, gvalid3, BKP, CW), IN_KIND, NATIVE)
    for c in tl.static_range(1, NCH):
        cmin, cmax, camax = _minmax(_chunk(xw_ptr, g3, c, j3, gvalid3, BKP, CW), IN_KIND, NATIVE)
        vmin = tl.minimum(vmin, cmin, propagate_nan=nan)
        vmax = tl.maximum(vmax, cmax, propagate_nan=nan)
        amax = tl.maximum(amax, camax)
    bad = (amax >= 0x7F800000).to(tl.int32)
    amax = _from_bits(amax)

    # the group's scalars, once per thread (quant_rows_kernel's KIND_INT branch without SYM)
    lo = tl.minimum(vmin, 0.0)
    hi = tl.maximum(vmax, 0.0)
    s = tl.math.div_rn(hi - lo, tl.full(amax.shape, DENOM, tl.float32))
    s = tl.where(s == 0, 1.0, s)
    if SKIND == 1:
        s = s.to(tl.float16).to(tl.float32)
    elif SKIND == 2:
        sb16 = _bits(s)
        s = _from_bits((sb16 + 0x7FFF + ((sb16 >> 16) & 1)) & -65536)
    if SKIND != 0:  # cast_generic raises RecipeError when a finite amax overflows an fp16/bf16 scale
        over = tl.where(gvalid2 & ((_bits(s) & 0x7F800000) == 0x7F800000), 2, 0)
        bad = tl.maximum(bad, over)
    div = tl.where(s == 0, _from_bits(tl.full(amax.shape, TINY_BITS, tl.int32)), s)
    tl.store(scale_ptr + g2, div, mask=gvalid2)
    zp = _rint(tl.math.div_rn(lo, div), NATIVE)
    zp = tl.minimum(tl.maximum(QMIN - zp, QMIN), QMAX).to(tl.int32)
    tl.store(zp_ptr + g2, zp, mask=gvalid2)

    d3 = div[:, :, None]
    dd3 = d3
    y3 = d3
    ok = 0
    if NATIVE:  # one reciprocal per group; the guard: the extremes' codes bound every code, so no clamp is needed
        dd2, y2, okb = _div.block_recip(div, amax)
        dd3 = dd2[:, :, None]
        y3 = y2[:, :, None]
        zf = zp.to(tl.float32)
        okb = okb & (_div.fast(vmin, dd2, y2) > QMIN - zf - 0.5) & (_div.fast(vmax, dd2, y2) < QMAX - zf + 0.5)
        bad = bad | tl.where(okb, 0, 4)  # the guard rides on the flag's reduction
    bad = tl.max(tl.max(bad, axis=1), axis=0)
    if NATIVE:
        ok = 1 - (bad >> 2)
        bad = bad & 3
    tl.store(flag_ptr + pid, bad)

    # pass 2: encode and pack each chunk (the raw-sum nibble trick of quant_rows_kernel: one zero-point add per byte)
    zp3 = zp[:, :, None]
    lo3 = (QMIN - zp3).to(tl.float32)
    hi3 = (QMAX - zp3).to(tl.float32)
    for c in tl.static_range(NCH):
        x0, x1 = _split_pairs(_chunk(xw_ptr, g3, c, j3, gvalid3, BKP, CW), IN_KIND)
        b0 = _int_code(x0, d3, dd3, y3, ok, lo3, hi3, zp3, NATIVE, True, True)
        b1 = _int_code(x1, d3, dd3, y3, ok, lo3, hi3, zp3, NATIVE, True, True)
        packed = (b1 << 4) + b0 + 17 * (zp3 - QMIN)
        if QMIN < 0:
            packed = packed ^ 0x88
        tl.store(data_ptr + g3 * BKP + c * CW + j3, packed.to(tl.uint8), mask=gvalid3)


GROUPS = 128  # groups per program: one per thread of 4 warps


def applies(k: int, bk: int, pack: int, has_words: bool, rb: int) -> bool:
    """Rows of whole groups of 32–256 elements (16–128 words, a power of two), packed 4-bit codes, pair words."""
    return pack == 2 and has_words and rb == 1 and k % bk == 0 and bk in (32, 64, 128, 256)


def launch(xw: torch.Tensor, data: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, ng: int, bk: int,
           kind_args: dict[str, Any], in_kind: int, i64: bool) -> torch.Tensor:  # fmt: skip
    """Runs the kernel over ``ng`` groups (:data:`GROUPS` per program, one per thread on the GPU); returns the
    per-program flags."""
    native = xw.is_cuda
    progs = triton.cdiv(ng, GROUPS)
    flags = torch.empty((progs,), dtype=torch.int32, device=data.device)
    a = kind_args
    bkp = bk // 2
    quant_int_groups_kernel[(progs,)](
        xw, data, scale, zp, flags, ng, BKP=bkp, CW=min(16, bkp), G=GROUPS, DENOM=a["DENOM"], QMIN=a["QMIN"],
        QMAX=a["QMAX"], SKIND=a["SKIND"], TINY_BITS=a["TINY_BITS"], IN_KIND=in_kind, NATIVE=native, I64=i64,
        num_warps=GROUPS // 32 if native else 1, enable_fp_fusion=False,
    )  # fmt: skip
    return flags
