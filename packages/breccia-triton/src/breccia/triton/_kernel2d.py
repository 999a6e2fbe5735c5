"""FP8 2-D block tiles (``Float8BlockScaling(block_m=…)``, DeepSeek's 128×128 weights) in two passes.

:mod:`._kernel` holds a whole tile in registers: for a 128×128 block that is 16 384 elements per program, 140
registers per thread at 8 warps, one program per SM, so nothing overlaps its load, its reductions and its stores
(0.64× of copy bandwidth on an H200, GPU time). Here a program walks its tile in chunks of ``RCH`` rows twice: the first
pass reduces the block amax, the second reloads each chunk (from L2: the tile was read microseconds earlier),
divides and encodes it. Registers stay low, several programs share an SM, and DRAM still sees every input byte
once. The math is :mod:`._kernel`'s, through the same :mod:`._codes` helpers, so the bytes are the same.
"""

from __future__ import annotations

import triton
import triton.language as tl

from breccia.triton import _div
from breccia.triton._codes import _amax_bits, _encode, _from_bits, _load, fp8_scale, nonfinite


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
):
    """Quantize ``NBT`` tiles of ``RB × BK`` elements: program row ``pid_r`` is block-row ``pid_r % NBR`` of matrix
    ``pid_r // NBR`` (each of ``M`` rows). Flags as :func:`._kernel.quant_rows_kernel` (1 = NaN/Inf seen)."""
    pid_r = tl.program_id(0)
    pid_b = tl.program_id(1)
    blks = pid_b * NBT + tl.arange(0, NBT)
    j = tl.arange(0, BKP)
    col = (blks[:, None] * BK + j[None, :])[None, :, :]
    cval = ((blks[:, None] < NB) & (j[None, :] < BK))[None, :, :] & (col < K)
    mrow0 = (pid_r % NBR) * RB
    row0 = (pid_r // NBR) * M + mrow0
    i = tl.arange(0, RCH)

    amax = tl.zeros((NBT,), tl.int32)
    for r in range(0, RB, RCH):
        offs, ok = _chunk(r, i, mrow0, row0, col, cval, K, RB, M, I64)
        x = _load(x_ptr + offs, ok, IN_KIND, FULL)
        amax = tl.maximum(amax, tl.max(_amax_bits(x), axis=0))
    amax = amax[None, :]  # (1, NBT)
    tl.store(flag_ptr + pid_r * tl.num_programs(1) + pid_b, nonfinite(amax))
    a = _from_bits(amax)
    div, mult = fp8_scale(a, FMAX, 0, POW2)
    tl.store(scale_ptr + pid_r * NB + blks[None, :], div, mask=blks[None, :] < NB)

    d3 = div[:, :, None]
    m3 = mult[:, :, None]
    dd3 = d3
    y3 = d3
    okall = 0
    if NATIVE and not POW2:
        dd3, y3, okb = _div.per_block(div, a)
        okall = _div.all_ok(okb)
    for r in range(0, RB, RCH):
        offs, ok = _chunk(r, i, mrow0, row0, col, cval, K, RB, M, I64)
        x = _load(x_ptr + offs, ok, IN_KIND, FULL)
        if POW2:  # noqa: SIM108
            v = x * m3
        else:
            v = _div.quotient(x, d3, dd3, y3, okall, NATIVE)
        c = _encode(v, EBITS, MBITS, BIAS, ENC_MUL, FMAX, NATIVE, CLAMP).to(data_ptr.dtype.element_ty)
        if FULL:
            tl.store(data_ptr + offs, c)
        else:
            tl.store(data_ptr + offs, c, mask=ok)
