"""FP8 2-D block tiles (``Float8BlockScaling(block_m=…)``, DeepSeek's 128×128 weights): one pass or two.

:mod:`._kernel` holds a whole tile in registers: for a 128×128 block that is 16 384 elements per program, 140
registers per thread at 8 warps, one program per SM, so nothing overlaps its load, its reductions and its stores
(0.64× of copy bandwidth on an H200, GPU time). Here a program walks its tile in chunks of ``RCH`` rows twice: the first
pass reduces the block amax, the second reloads each chunk (from L2: the tile was read microseconds earlier),
divides and encodes it. Registers stay low, several programs share an SM, and DRAM still sees every input byte
once. The math is :mod:`._kernel`'s, through the same :mod:`._codes` helpers, so the bytes are the same.

For 16-bit inputs (the usual case) :func:`quant_tiles_pairs_kernel` does it in one pass instead: it holds the tile
as one int32 word per element pair, half the registers of fp32 elements, so the second read from L2 and its latency
go away (0.87 → 0.93× of copy bandwidth on an H200 at 8192×8192 bf16). fp32 inputs, odd block widths and views
that are not word-aligned keep the two-pass kernel.
"""

from __future__ import annotations

import triton
import triton.language as tl

from breccia.triton import _div
from breccia.triton._codes import (
    _amax_bits,
    _encode,
    _from_bits,
    _ld,
    _load,
    _mag16_bits,
    _pair_mag,
    _split_pairs,
    fp8_scale,
    nonfinite,
)


@triton.jit
def _tile_origin(K, NB, M, NBR, BK: tl.constexpr, BKP: tl.constexpr, RB: tl.constexpr, NBT: tl.constexpr):
    """The program's tiles: its block-row ``pid_r`` (block-row ``pid_r % NBR`` of matrix ``pid_r // NBR``), the
    ``NBT`` block indices, the ``(1, NBT, BKP)`` columns and their validity, and the first row (in the matrix and in
    the flattened input). ``K`` and ``BK`` count elements, or words for the pair kernel."""
    pid_r = tl.program_id(0)
    blks = tl.program_id(1) * NBT + tl.arange(0, NBT)
    j = tl.arange(0, BKP)
    col = (blks[:, None] * BK + j[None, :])[None, :, :]
    cval = ((blks[:, None] < NB) & (j[None, :] < BK))[None, :, :] & (col < K)
    mrow0 = (pid_r % NBR) * RB
    return pid_r, blks, col, cval, mrow0, (pid_r // NBR) * M + mrow0


@triton.jit
def _chunk(r, i, mrow0, row0, col, cval, K, RB: tl.constexpr, M_ROWS, I64: tl.constexpr):
    """Offsets and mask of rows ``r .. r + RCH`` of the tile."""
    rr = r + i
    ok = ((rr < RB) & (mrow0 + rr < M_ROWS))[:, None, None] & cval
    rows = (row0 + rr)[:, None, None]
    if I64:
        rows = rows.to(tl.int64)
    return rows * K + col, ok


@triton.jit
def _tile_scales(amax, scale_ptr, flag_ptr, blks, pid_r, NB, FMAX: tl.constexpr, POW2: tl.constexpr,
                 NATIVE: tl.constexpr):  # fmt: skip
    """From the ``(1, NBT)`` amax bits: store the flag and the scales, and return the operands of the element
    division (divisor, residual divisor, reciprocal, all-fast flag; the multiplier for power-of-two scales)."""
    tl.store(flag_ptr + pid_r * tl.num_programs(1) + tl.program_id(1), nonfinite(amax))
    a = _from_bits(amax)
    div, mult = fp8_scale(a, FMAX, 0, POW2)
    tl.store(scale_ptr + pid_r * NB + blks[None, :], div, mask=blks[None, :] < NB)
    d3 = div[:, :, None]
    dd3 = d3
    y3 = d3
    okall = 0
    if NATIVE and not POW2:
        dd3, y3, okb = _div.per_block(div, a)
        okall = _div.all_ok(okb)
    return d3, dd3, y3, okall, mult[:, :, None]


@triton.jit
def _code(x, d3, dd3, y3, okall, m3, EBITS: tl.constexpr, MBITS: tl.constexpr, BIAS: tl.constexpr,
          ENC_MUL: tl.constexpr, FMAX: tl.constexpr, POW2: tl.constexpr, NATIVE: tl.constexpr,
          CLAMP: tl.constexpr):  # fmt: skip
    """FP8 codes (int32, 0–255) of the fp32 elements ``x``: divide by the block scale (or multiply by its exact
    reciprocal) and encode, as :func:`quant_tiles_kernel`'s second pass."""
    if POW2:  # noqa: SIM108
        v = x * m3
    else:
        v = _div.quotient(x, d3, dd3, y3, okall, NATIVE)
    return _encode(v, EBITS, MBITS, BIAS, ENC_MUL, FMAX, NATIVE, CLAMP)


@triton.jit
def quant_tiles_kernel(
    x_ptr,
    data_ptr,
    scale_ptr,
    flag_ptr,
    K,
    NB,
    M,
    NBR,
    BK: tl.constexpr,
    BKP: tl.constexpr,
    RB: tl.constexpr,
    RCH: tl.constexpr,
    NBT: tl.constexpr,
    EBITS: tl.constexpr,
    MBITS: tl.constexpr,
    BIAS: tl.constexpr,
    ENC_MUL: tl.constexpr,
    FMAX: tl.constexpr,
    POW2: tl.constexpr,
    IN_KIND: tl.constexpr,
    NATIVE: tl.constexpr,
    CLAMP: tl.constexpr,
    FULL: tl.constexpr,
    I64: tl.constexpr,
    KV: tl.constexpr = 1,
):
    """Quantize ``NBT`` tiles of ``RB × BK`` elements: program row ``pid_r`` is block-row ``pid_r % NBR`` of matrix
    ``pid_r // NBR`` (each of ``M`` rows). Flags as :func:`._kernel.quant_rows_kernel` (1 = NaN/Inf seen)."""
    if KV > 1:  # K passed divided by KV, its power-of-two factor (see _kernel.quant_rows_kernel)
        K = K * KV
    pid_r, blks, col, cval, mrow0, row0 = _tile_origin(K, NB, M, NBR, BK, BKP, RB, NBT)
    i = tl.arange(0, RCH)

    amax = tl.zeros((NBT,), tl.int32)
    for r in range(0, RB, RCH):
        offs, ok = _chunk(r, i, mrow0, row0, col, cval, K, RB, M, I64)
        x = _load(x_ptr + offs, ok, IN_KIND, FULL)
        amax = tl.maximum(amax, tl.max(_amax_bits(x), axis=0))
    d3, dd3, y3, okall, m3 = _tile_scales(amax[None, :], scale_ptr, flag_ptr, blks, pid_r, NB, FMAX, POW2, NATIVE)
    for r in range(0, RB, RCH):
        offs, ok = _chunk(r, i, mrow0, row0, col, cval, K, RB, M, I64)
        x = _load(x_ptr + offs, ok, IN_KIND, FULL)
        c = _code(x, d3, dd3, y3, okall, m3, EBITS, MBITS, BIAS, ENC_MUL, FMAX, POW2, NATIVE, CLAMP)
        c = c.to(data_ptr.dtype.element_ty)
        if FULL:
            tl.store(data_ptr + offs, c)
        else:
            tl.store(data_ptr + offs, c, mask=ok)


@triton.jit
def _fp8x2(v0, v1, EBITS: tl.constexpr):
    """Both FP8 codes of a pair as one 16-bit word (``v0``'s code in the low byte), from one
    ``cvt.rn.satfinite.{e4m3,e5m2}x2.f32``: the conversion :func:`._codes._encode` uses, whose two results here
    are exactly the word to store. (Going through Triton's ``float8`` cast and widening the bytes to combine them
    gave wrong low bytes in every other word on sm_90 with Triton 3.6.)"""
    if EBITS == 5:
        return tl.inline_asm_elementwise(
            "cvt.rn.satfinite.e5m2x2.f32 $0, $2, $1;", "=h,r,r", [v0, v1], dtype=tl.int16, is_pure=True, pack=1
        )
    else:
        return tl.inline_asm_elementwise(
            "cvt.rn.satfinite.e4m3x2.f32 $0, $2, $1;", "=h,r,r", [v0, v1], dtype=tl.int16, is_pure=True, pack=1
        )


@triton.jit
def _store_pairs(w, ptrs, ok, d3, dd3, y3, m3, MODE: tl.constexpr, EBITS: tl.constexpr, MBITS: tl.constexpr,
                 BIAS: tl.constexpr, ENC_MUL: tl.constexpr, FMAX: tl.constexpr, IN_KIND: tl.constexpr,
                 NATIVE: tl.constexpr, CLAMP: tl.constexpr, FULL: tl.constexpr):  # fmt: skip
    """Encode the pair words ``w`` and store both FP8 codes of each pair as one 16-bit word. ``MODE`` 0 divides
    with ``div.rn``, 1 with :func:`._div.fast` (the caller has checked its guard), 2 multiplies by the exact
    reciprocal of a power-of-two scale."""
    x0, x1 = _split_pairs(w, IN_KIND)
    if MODE == 1:
        v0 = _div.fast(x0, dd3, y3)
        v1 = _div.fast(x1, dd3, y3)
    elif MODE == 2:
        v0 = x0 * m3
        v1 = x1 * m3
    else:
        v0 = tl.math.div_rn(x0, d3)
        v1 = tl.math.div_rn(x1, d3)
    if NATIVE:
        c = _fp8x2(v0, v1, EBITS)
    else:
        c0 = _encode(v0, EBITS, MBITS, BIAS, ENC_MUL, FMAX, NATIVE, CLAMP)
        c1 = _encode(v1, EBITS, MBITS, BIAS, ENC_MUL, FMAX, NATIVE, CLAMP)
        c = (c0 | (c1 << 8)).to(tl.int16)
    if FULL:
        tl.store(ptrs, c)
    else:
        tl.store(ptrs, c, mask=ok)


@triton.jit
def _store_chunks(wa, wb, wc, wd, oa, ob, oc, od, ka, kb, kc, kd, data_ptr, d3, dd3, y3, m3, MODE: tl.constexpr,
                  NCH: tl.constexpr, EBITS: tl.constexpr, MBITS: tl.constexpr, BIAS: tl.constexpr,
                  ENC_MUL: tl.constexpr, FMAX: tl.constexpr, IN_KIND: tl.constexpr, NATIVE: tl.constexpr,
                  CLAMP: tl.constexpr, FULL: tl.constexpr):  # fmt: skip
    """:func:`_store_pairs` of each row chunk in turn (``NCH`` of them: 2 or 4)."""
    _store_pairs(wa, data_ptr + oa, ka, d3, dd3, y3, m3, MODE, EBITS, MBITS, BIAS, ENC_MUL, FMAX, IN_KIND, NATIVE,
                 CLAMP, FULL)  # fmt: skip
    _store_pairs(wb, data_ptr + ob, kb, d3, dd3, y3, m3, MODE, EBITS, MBITS, BIAS, ENC_MUL, FMAX, IN_KIND, NATIVE,
                 CLAMP, FULL)  # fmt: skip
    if NCH == 4:
        _store_pairs(wc, data_ptr + oc, kc, d3, dd3, y3, m3, MODE, EBITS, MBITS, BIAS, ENC_MUL, FMAX, IN_KIND,
                     NATIVE, CLAMP, FULL)  # fmt: skip
        _store_pairs(wd, data_ptr + od, kd, d3, dd3, y3, m3, MODE, EBITS, MBITS, BIAS, ENC_MUL, FMAX, IN_KIND,
                     NATIVE, CLAMP, FULL)  # fmt: skip


@triton.jit
def quant_tiles_pairs_kernel(
    w_ptr,
    data_ptr,
    scale_ptr,
    flag_ptr,
    KW,
    NB,
    M,
    NBR,
    BW: tl.constexpr,
    BWP: tl.constexpr,
    RB: tl.constexpr,
    RBP: tl.constexpr,
    NCH: tl.constexpr,
    NBT: tl.constexpr,
    EBITS: tl.constexpr,
    MBITS: tl.constexpr,
    BIAS: tl.constexpr,
    ENC_MUL: tl.constexpr,
    FMAX: tl.constexpr,
    POW2: tl.constexpr,
    IN_KIND: tl.constexpr,
    NATIVE: tl.constexpr,
    CLAMP: tl.constexpr,
    FULL: tl.constexpr,
    I64: tl.constexpr,
    KV: tl.constexpr = 1,
):
    """One pass over ``NBT`` whole ``RB × 2·BW`` tiles of 16-bit floats (``IN_KIND`` 1 fp16, 2 bf16), held in
    registers as one int32 word per element pair: a 128×128 tile is 32 words per thread at 8 warps, where
    :func:`quant_tiles_kernel`'s fp32 elements would be 64 registers (the one-pass fp32 version needed 140 and ran
    one program per SM). So the input is read once from DRAM and never again from L2. The tile is loaded as
    ``NCH`` (2 or 4) row chunks, all in flight at once, and encoded chunk by chunk: written as one tensor, the
    compiler computed every quotient before the first store (111 registers at 8 warps). The amax takes the larger
    of each word's two 15-bit magnitudes, an integer max exactly as :func:`._codes._amax_bits` (NaN above Inf);
    the two FP8 codes of a pair are stored as one 16-bit word (``data`` viewed as int16, little-endian). Same
    grid and flags as :func:`quant_tiles_kernel`; ``KW`` and ``BW`` count words, not elements."""
    if KV > 1:  # KW passed divided by KV, its power-of-two factor
        KW = KW * KV
    pid_r, blks, col, cval, mrow0, row0 = _tile_origin(KW, NB, M, NBR, BW, BWP, RB, NBT)
    i = tl.arange(0, RBP // NCH)
    oa, ka = _chunk(0, i, mrow0, row0, col, cval, KW, RB, M, I64)
    ob, kb = _chunk(RBP // NCH, i, mrow0, row0, col, cval, KW, RB, M, I64)
    wa = _ld(w_ptr + oa, ka, FULL)
    wb = _ld(w_ptr + ob, kb, FULL)
    h = tl.maximum(_pair_mag(wa), _pair_mag(wb))  # reduced over the tile once, for all row chunks
    oc, kc, wc = oa, ka, wa
    od, kd, wd = ob, kb, wb
    if NCH == 4:
        oc, kc = _chunk(2 * (RBP // NCH), i, mrow0, row0, col, cval, KW, RB, M, I64)
        od, kd = _chunk(3 * (RBP // NCH), i, mrow0, row0, col, cval, KW, RB, M, I64)
        wc = _ld(w_ptr + oc, kc, FULL)
        wd = _ld(w_ptr + od, kd, FULL)
        h = tl.maximum(h, tl.maximum(_pair_mag(wc), _pair_mag(wd)))
    amax = _mag16_bits(tl.max(tl.max(h, axis=2), axis=0)[None, :], IN_KIND)  # (1, NBT)
    d3, dd3, y3, okall, m3 = _tile_scales(amax, scale_ptr, flag_ptr, blks, pid_r, NB, FMAX, POW2, NATIVE)
    # the guard's branch encloses the encode and the stores, so no quotient tensor flows out of it
    if NATIVE and not POW2:
        if okall != 0:
            _store_chunks(wa, wb, wc, wd, oa, ob, oc, od, ka, kb, kc, kd, data_ptr, d3, dd3, y3, m3, 1, NCH, EBITS,
                          MBITS, BIAS, ENC_MUL, FMAX, IN_KIND, NATIVE, CLAMP, FULL)  # fmt: skip
        else:
            _store_chunks(wa, wb, wc, wd, oa, ob, oc, od, ka, kb, kc, kd, data_ptr, d3, dd3, y3, m3, 0, NCH, EBITS,
                          MBITS, BIAS, ENC_MUL, FMAX, IN_KIND, NATIVE, CLAMP, FULL)  # fmt: skip
    else:
        _store_chunks(wa, wb, wc, wd, oa, ob, oc, od, ka, kb, kc, kd, data_ptr, d3, dd3, y3, m3, 2 if POW2 else 0,
                      NCH, EBITS, MBITS, BIAS, ENC_MUL, FMAX, IN_KIND, NATIVE, CLAMP, FULL)  # fmt: skip
