"""The Triton quantize kernel: one pass over a contiguous ``(R, K)`` view, blocks along the last axis.

Every line mirrors :mod:`breccia._math` operation for operation, because the bytes must equal the reference's:

- every division that ``_math`` writes as ``ops.div`` *or* as Python ``/`` on fp32 arrays is ``tl.math.div_rn``.
  Both are one correctly rounded IEEE division in numpy and in torch (CUDA included), while Triton's ``/`` on
  fp32 lowers to ``div.full.f32``, which is off by up to 2 ulp;
- element encoding is :func:`breccia._math.encode_float`'s branch-free bit arithmetic, not Triton's fp8 casts
  (whose rounding and saturation are backend-dependent);
- ``rint`` is the ``(|y| + 2^23) − 2^23`` trick, which is round-half-even by the FPU itself;
- fp32 → bf16 rounding of integer-recipe scales is done on the bits (RNE), so the interpreter and the GPU agree;
- the launcher turns FMA contraction off (``enable_fp_fusion=False``): ``_math`` rounds every product.

Non-finite inputs are *not* handled here: each program writes a flag (1 = NaN/Inf seen, 2 = an fp16/bf16 scale
overflowed) and the host falls back to breccia-torch, which raises or propagates exactly as the reference does.
"""

from __future__ import annotations

import triton
import triton.language as tl
from triton.language.extra import libdevice

from breccia.triton import _div, _fp4

KIND_FP8 = 0  # Float8BlockScaling / Float8CurrentScaling per row: fp32 scale amax / fmax
KIND_MX = 1  # MXFP8 / MXFP6 / MXFP4: E8M0 scale byte
KIND_NV = 2  # NVFP4: E4M3 block scale (and the fp32 global scale)
KIND_INT = 3  # INT4 / INT8 groups, symmetric or with a zero point


@triton.jit
def _bits(v):
    return v.to(tl.int32, bitcast=True)


@triton.jit
def _from_bits(b):
    return b.to(tl.float32, bitcast=True)


@triton.jit
def _pow2(e):
    """Exact fp32 2^e for int32 e in [−127, 127] (2^−127 is the subnormal 0x00400000), as ``_math.pow2``."""
    return tl.where(e <= -127, _from_bits(e * 0 + 0x00400000), _from_bits((e + 127) << 23))


@triton.jit
def _pow2_ceil_exp(q):
    """``_math.pow2_ceil_exponent``: smallest e with 2^e ≥ q (q ≥ 0 finite)."""
    b = _bits(q)
    e = ((b + 0x7FFFFF) >> 23) - 127
    return tl.where(b <= 0x00400000, -127, e)


@triton.jit
def _encode_float(v, EBITS: tl.constexpr, MBITS: tl.constexpr, BIAS: tl.constexpr, ENC_MUL: tl.constexpr,
                  FMAX: tl.constexpr, CLAMP: tl.constexpr):  # fmt: skip
    """``_math.encode_float``: RNE codes of fp32 ``v`` (ENC_MUL = 2^(bias − 127)), clamped to ±fmax first when
    ``CLAMP``. Written for the GPU's operand modifiers: ``|v|`` is free inside the min and the adds (a separate
    ``b & 0x7FFFFFFF`` became an extra instruction), the exponent is read from the bits directly, and the sign goes
    straight from bit 31 to the code's top bit with no mask after (a clamped magnitude's code is below
    ``2^(EBITS + MBITS)``)."""
    b = _bits(v)
    if CLAMP:
        m = tl.minimum(tl.abs(v), FMAX)
        e = _bits(m) & 0x7F800000
    else:
        m = tl.abs(v)
        e = b & 0x7F800000
    c = _from_bits(tl.maximum(e, (128 - BIAS) << 23) + ((23 - MBITS) << 23))
    r = (m + c) - c
    code = _bits(r * ENC_MUL) >> (23 - MBITS)
    return code | ((b >> (31 - EBITS - MBITS)) & (1 << (EBITS + MBITS)))


@triton.jit
def _decode_e4m3(code):
    """Exact fp32 value of a non-negative, non-NaN E4M3 code (``_math.decode_codes`` for block scales)."""
    e = code >> 3
    mant = code & 7
    normal = _from_bits(((e + 120) << 23) | (mant << 20))
    sub = mant.to(tl.float32) * 0.001953125  # 2^-9
    return tl.where(e == 0, sub, normal)


@triton.jit
def _rint(y, NATIVE: tl.constexpr):
    """Round half to even, as ``torch.round`` / ``np.rint``: one ``cvt.rni`` on the GPU, else the ``(|y| + 2^23) −
    2^23`` trick (|y| ≥ 2^23 is already an integer), which the FPU rounds half to even."""
    if NATIVE:
        return libdevice.rint(y)
    t = tl.abs(y)
    r = (t + 8388608.0) - 8388608.0
    r = tl.where(t < 8388608.0, r, t)
    return tl.where(y < 0, -r, r)


@triton.jit
def _int_code(x, d, dd, y, ok, lo, hi, zp, FAST: tl.constexpr, SKIP_CLAMP: tl.constexpr):
    """Integer code ``clamp(rint(x / d) + zp, QMIN, QMAX)`` of an INT recipe, given ``lo = QMIN − zp`` and
    ``hi = QMAX − zp``. Clamping the quotient to those integer bounds first gives the same integer (``rint`` is
    monotone and fixes integers), and then ``v + 1.5·2^23`` is rounded half to even by the FPU itself, leaving
    ``rint(v)`` as the low bits of the sum's bit pattern. This replaces ``cvt.rni`` + ``cvt.rzi.s32`` (two
    quarter-rate conversion-pipe instructions per element on Hopper) with one add; only the low 4 or 8 bits are
    ever stored, so the compiler also drops the bias subtraction. ``SKIP_CLAMP``: the caller's guard ``ok`` also
    vouches that every quotient of the fast path lies within ``QMAX + 1/4`` (see ``quant_rows_kernel``)."""
    if FAST:
        if ok != 0:
            v = _div.fast(x, dd, y)
            if not SKIP_CLAMP:
                v = tl.minimum(tl.maximum(v, lo), hi)
        else:
            v = tl.minimum(tl.maximum(tl.math.div_rn(x, d), lo), hi)
    else:
        v = tl.minimum(tl.maximum(tl.math.div_rn(x, d), lo), hi)
    return _bits(v + 12582912.0) - 0x4B400000 + zp


@triton.jit
def _ld(ptrs, m, FULL: tl.constexpr):
    """``tl.load`` with zeros where ``m`` is false; unmasked when the launch tiles the tensor exactly (``FULL``),
    which drops the per-element predicate arithmetic and lets every load be a full-width vector."""
    if FULL:
        return tl.load(ptrs)
    else:
        return tl.load(ptrs, mask=m, other=0)


@triton.jit
def _load(ptrs, m, IN_KIND: tl.constexpr, FULL: tl.constexpr):
    """Masked load as fp32 (IN_KIND 0 fp32, 1 fp16, 2 bf16). bf16 arrives as int16 bits and is widened by a shift:
    exact everywhere (the interpreter's own bf16 conversion flushes subnormals)."""
    if IN_KIND == 2:
        return _from_bits(_ld(ptrs, m, FULL).to(tl.int32) << 16)
    return _ld(ptrs, m, FULL).to(tl.float32)


@triton.jit
def _load_pairs(ptrs, m, IN_KIND: tl.constexpr, FULL: tl.constexpr):
    """Elements 2i and 2i+1 of each pair as two fp32 tensors, from one word per pair: the input viewed as int32
    (16-bit floats) or int64 (fp32), little-endian so element 2i is the low half. Splitting a contiguous load into
    even/odd lanes with ``tl.reshape`` + ``tl.split`` instead costs a shared-memory layout conversion."""
    w = _ld(ptrs, m, FULL)
    if IN_KIND == 0:
        x0 = _from_bits((w & 0xFFFFFFFF).to(tl.int32))
        x1 = _from_bits((w >> 32).to(tl.int32))
    elif IN_KIND == 2:
        x0 = _from_bits(w << 16)
        x1 = _from_bits(w & -65536)
    else:
        x0 = (w & 0xFFFF).to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)
        x1 = (w >> 16).to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)
    return x0, x1


@triton.jit
def _amax_bits(x):
    """Block max of ``|x|`` as int32 bits, reduced as integers: for non-negative floats the integer order is the
    float order, NaN patterns sort above +Inf (so a NaN block reaches the non-finite flag, where ``tl.max`` on floats
    may drop NaN), and the mask + integer max is two instructions per element."""
    return tl.max(_bits(x) & 0x7FFFFFFF, axis=2)


@triton.jit
def nonfinite(amax_bits):
    """1 if any block of the ``(rows, blocks)`` tile saw NaN/±Inf: their amax bits are ≥ 0x7F800000 (an
    asymmetric block's min/max only matter when its amax is finite)."""
    return tl.max(tl.max((amax_bits >= 0x7F800000).to(tl.int32), axis=1), axis=0)


@triton.jit
def _encode(v, EBITS: tl.constexpr, MBITS: tl.constexpr, BIAS: tl.constexpr, ENC_MUL: tl.constexpr,
            FMAX: tl.constexpr, NATIVE: tl.constexpr, CLAMP: tl.constexpr):  # fmt: skip
    """Codes of the scaled values ``v``: clamp to ±fmax, then round to nearest even. On the GPU the FP8 formats use
    the hardware conversion ``cvt.rn.satfinite.{e4m3,e5m2}x2.f32`` (one instruction per two elements, IEEE RNE with
    saturation, i.e. exactly clamp-then-round); everything else, and the CPU interpreter (whose FP8 casts round
    negative ties the wrong way), uses :func:`_encode_float`'s bit arithmetic. ``CLAMP=False`` where the scale rule
    bounds ``|v|`` below ``fmax`` plus half the format's top step (see ``_cast._needs_clamp``): the clamp could
    change no code there."""
    if NATIVE and EBITS == 4 and MBITS == 3:
        return v.to(tl.float8e4nv).to(tl.uint8, bitcast=True).to(tl.int32)
    elif NATIVE and EBITS == 5 and MBITS == 2:
        return v.to(tl.float8e5).to(tl.uint8, bitcast=True).to(tl.int32)
    else:
        return _encode_float(v, EBITS, MBITS, BIAS, ENC_MUL, FMAX, CLAMP)


@triton.jit
def fp8_scale(a, FMAX: tl.constexpr, EPS_BITS: tl.constexpr, POW2: tl.constexpr):
    """FP8 block scale from the block amax ``a``: ``(divisor, multiplier)``; the multiplier is the exact reciprocal
    of a power-of-two scale (``POW2``) and unused otherwise. Blocks of amax 0 get scale 1, as ``_math``."""
    if EPS_BITS != 0:
        a = tl.maximum(a, _from_bits(tl.full(a.shape, EPS_BITS, tl.int32)))
    s = tl.math.div_rn(a, tl.full(a.shape, FMAX, tl.float32))
    mult = s
    if POW2:  # power-of-two scales: encode by multiplying with the exact reciprocal (see KIND_MX)
        e = tl.minimum(_pow2_ceil_exp(s), 127)
        s = _pow2(e)
        mult = tl.where(a == 0, 1.0, _pow2(-e))
    return tl.where(a == 0, 1.0, s), mult


@triton.jit
def quant_rows_kernel(
    x_ptr,
    xw_ptr,
    data_ptr,
    scale_ptr,
    zp_ptr,
    gamax_ptr,
    flag_ptr,
    R,
    K,
    NB,
    KD,
    M,
    NBR,
    KW,
    BK: tl.constexpr,
    BKP: tl.constexpr,
    PACK: tl.constexpr,
    ROWS: tl.constexpr,
    NBT: tl.constexpr,
    KIND: tl.constexpr,
    EBITS: tl.constexpr,
    MBITS: tl.constexpr,
    BIAS: tl.constexpr,
    ENC_MUL: tl.constexpr,
    FMAX: tl.constexpr,
    POW2: tl.constexpr,
    EPS_BITS: tl.constexpr,
    RCEIL: tl.constexpr,
    EMAX: tl.constexpr,
    NV_GLOBAL: tl.constexpr,
    NV_RECIP: tl.constexpr,
    NV_MIN_BITS: tl.constexpr,
    SYM: tl.constexpr,
    DENOM: tl.constexpr,
    QMIN: tl.constexpr,
    QMAX: tl.constexpr,
    SKIND: tl.constexpr,
    TINY_BITS: tl.constexpr,
    IN_KIND: tl.constexpr,
    PAIRS: tl.constexpr,
    NATIVE: tl.constexpr,
    CLAMP: tl.constexpr,
    FULL: tl.constexpr,
    PER_TENSOR: tl.constexpr,
    RB: tl.constexpr,
    USE_MULT: tl.constexpr,
    I64: tl.constexpr,
):
    """Quantize ``ROWS × NBT`` blocks of ``BK`` elements; ``PACK=2`` loads even/odd elements and packs nibbles.

    ``RB > 1``: 2-D ``RB × BK`` tiles (PerBlock2D). Program row ``pid_r`` is then block-row ``pid_r % NBR`` of
    matrix ``pid_r // NBR`` (each of ``M`` rows), its ``ROWS ≥ RB`` lanes one tile high; the per-row amaxes are
    reduced once more over the rows, so every lane computes the tile's scale and row 0 stores it.
    """
    F16X2: tl.constexpr = NATIVE and KIND == 1 and EBITS == 2 and MBITS == 1 and IN_KIND == 2 and PACK == 2 and PAIRS
    pid_r = tl.program_id(0)
    pid_b = tl.program_id(1)
    i = tl.arange(0, ROWS)
    if RB == 1:
        rows = pid_r * ROWS + i
        rvalid = rows < R
        srow = rows
    else:
        mrow = (pid_r % NBR) * RB + i
        rows = (pid_r // NBR) * M + mrow
        rvalid = (i < RB) & (mrow < M)
        srow = pid_r + i * 0
    blks = pid_b * NBT + tl.arange(0, NBT)
    j = tl.arange(0, BKP)
    r3 = rows[:, None, None]
    b3 = blks[None, :, None]
    j3 = j[None, None, :]
    valid = rvalid[:, None, None] & (b3 < NB)
    if I64:  # int64 address math only where int32 could wrap
        r3 = r3.to(tl.int64)
        srow = srow.to(tl.int64)
    base = r3 * K
    col = b3 * BK + PACK * j3
    m0 = valid & (PACK * j3 < BK) & (col < K)  # unused (and folded away) when FULL
    if PACK == 2 and PAIRS:  # one word per element pair (see _load_pairs); KW = words per row
        x0, x1 = _load_pairs(xw_ptr + r3 * KW + b3 * (BK // 2) + j3, m0, IN_KIND, FULL)
        m1 = m0
        amax = tl.maximum(_amax_bits(x0), _amax_bits(x1))
        if KIND == 3 and not SYM:
            vmin = tl.minimum(tl.min(x0, axis=2), tl.min(x1, axis=2))
            vmax = tl.maximum(tl.max(x0, axis=2), tl.max(x1, axis=2))
    elif PACK == 2:  # odd K: one contiguous (vectorisable) load, split into even / odd elements in registers
        jj = tl.arange(0, 2 * BKP)[None, None, :]
        colf = b3 * BK + jj
        xf = _load(x_ptr + base + colf, valid & (jj < BK) & (colf < K), IN_KIND, False)
        x0, x1 = tl.split(tl.reshape(xf, (ROWS, NBT, BKP, 2)))
        m1 = valid & (PACK * j3 + 1 < BK) & (col + 1 < K)
        amax = tl.maximum(_amax_bits(x0), _amax_bits(x1))
        if KIND == 3 and not SYM:
            vmin = tl.minimum(tl.min(x0, axis=2), tl.min(x1, axis=2))
            vmax = tl.maximum(tl.max(x0, axis=2), tl.max(x1, axis=2))
    elif KIND == 0 and PER_TENSOR:  # the host's tensor amax is the only statistic: no block reduction at all
        x0 = _load(x_ptr + base + col, m0, IN_KIND, FULL)
        amax = tl.full((ROWS, NBT), 0, tl.int32) + (_bits(tl.load(gamax_ptr)) & 0x7FFFFFFF)
    else:
        x0 = _load(x_ptr + base + col, m0, IN_KIND, FULL)
        amax = _amax_bits(x0)
        if KIND == 3 and not SYM:
            vmin = tl.min(x0, axis=2)
            vmax = tl.max(x0, axis=2)
    if RB != 1:
        amax = tl.max(amax, axis=0)[None, :]  # (1, NBT): the tile's scale math runs once, not once per row
    bad = nonfinite(amax)
    amax = _from_bits(amax)
    blks2 = blks[None, :]
    smask = rvalid[:, None] & (blks2 < NB)
    if RB != 1:
        smask = smask & (i == 0)[:, None]
    soff = srow[:, None] * NB + blks2
    fmax = tl.full(amax.shape, FMAX, tl.float32)
    if KIND == 0:
        a = amax
        if PER_TENSOR:  # Float8CurrentScaling per tensor: the host's torch amax of the whole tensor
            a = tl.full(amax.shape, 0.0, tl.float32) + tl.load(gamax_ptr)
            smask = smask & (soff == 0)
        div, mult = fp8_scale(a, FMAX, EPS_BITS, POW2)
        tl.store(scale_ptr + soff, div, mask=smask)
    elif KIND == 1:
        if RCEIL:  # noqa: SIM108 -- constexpr branches: only one side is compiled
            e = _pow2_ceil_exp(tl.math.div_rn(amax, fmax))
        else:
            e = ((_bits(amax) & 0x7FFFFFFF) >> 23) - 127 - EMAX
        byte = tl.minimum(tl.maximum(e + 127, 0), 254)
        div = _pow2(byte - 127)
        # x / 2^k and x · 2^-k are the same real number, both correctly rounded: the multiply is exact-equivalent
        mult = _pow2(127 - byte)
        tl.store(scale_ptr + soff, byte.to(tl.uint8), mask=smask)
    elif KIND == 2:
        sbf = tl.math.div_rn(amax, tl.full(amax.shape, 6.0, tl.float32))
        if NV_GLOBAL:
            ga = tl.load(gamax_ptr)
            g = tl.where(ga == 0, 1.0, tl.math.div_rn(ga, tl.full(amax.shape, 2688.0, tl.float32)))
            sbf = tl.math.div_rn(sbf, g)
        if NV_MIN_BITS != 0:
            sbf = tl.maximum(sbf, _from_bits(tl.full(amax.shape, NV_MIN_BITS, tl.int32)))
        if NATIVE:  # sbf ≥ 0: the hardware's saturating RNE is clamp-then-round, and E4M3 → fp32 is exact
            sb8 = sbf.to(tl.float8e4nv)
            code = sb8.to(tl.uint8, bitcast=True).to(tl.int32)
            sb = sb8.to(tl.float32)
        else:
            code = _encode_float(sbf, 4, 3, 7, 7.52316384526264e-37, 448.0, True)  # ENC_MUL 2^-120
            sb = _decode_e4m3(code)
        div = sb
        if NV_GLOBAL:
            div = sb * g
        if NV_RECIP:
            one = tl.full(amax.shape, 1.0, tl.float32)
            if NV_GLOBAL:  # noqa: SIM108
                mult = tl.math.div_rn(tl.math.div_rn(one, g), sb)
            else:
                mult = tl.math.div_rn(one, sb)
            mult = tl.where(sb == 0, 0.0, mult)
        div = tl.where(div == 0, float("inf"), div)  # _math.safe_divisor: zero-scale blocks encode as ±0
        tl.store(scale_ptr + soff, code.to(tl.uint8), mask=smask)
    else:
        if SYM:
            s = tl.where(amax == 0, 1.0, tl.math.div_rn(amax, tl.full(amax.shape, DENOM, tl.float32)))
        else:
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
            over = tl.where(smask & ((_bits(s) & 0x7F800000) == 0x7F800000), 2, 0)
            bad = tl.maximum(bad, tl.max(tl.max(over, axis=1), axis=0))
        div = tl.where(s == 0, _from_bits(tl.full(amax.shape, TINY_BITS, tl.int32)), s)
        tl.store(scale_ptr + soff, div, mask=smask)
        if not SYM:
            zp = _rint(tl.math.div_rn(lo, div), NATIVE)
            zp = tl.minimum(tl.maximum(QMIN - zp, QMIN), QMAX).to(tl.int32)
            tl.store(zp_ptr + soff, zp, mask=smask)
    tl.store(flag_ptr + pid_r * tl.num_programs(1) + pid_b, bad)

    # --- encode every element of the tile with its block's divisor (one reciprocal per block on the GPU: _div)
    d3 = div[:, :, None]
    dd3 = d3
    y3 = d3
    ok = 0
    if NATIVE and not USE_MULT:  # blocks past the edge have amax 0 and an in-range divisor: no mask needed
        dd3, y3, okb = _div.per_block(div, amax)
        if KIND == 2:  # NVFP4: d = sb·g with sb 0 (run as inf) or an E4M3 value in [2^-9, 448]: only g can leave
            ok = 1  # the range, and it is one scalar (see _div.scalar_ok): no reduction over the tile, no branch
            if NV_GLOBAL:
                ok = _div.scalar_ok(tl.load(gamax_ptr), 3.637978807091713e-12, 1.125899906842624e15)  # 2^-38, 2^50
        elif PER_TENSOR:  # one divisor a / fmax for the whole tensor
            ga = tl.load(gamax_ptr)
            if EPS_BITS != 0:
                ga = tl.maximum(ga, _from_bits(tl.full((), EPS_BITS, tl.int32)))
            ok = _div.scalar_ok(ga, 9.094947017729282e-13, 1.152921504606847e18)  # 2^-40, 2^60
        else:
            if KIND == 3 and SYM and DENOM <= QMAX:  # |x / d| ≤ amax · y (1 + 2^-22) < QMAX + 1/2: no clamp
                okb = okb & (tl.max(amax[:, :, None] * y3, axis=2) <= QMAX + 0.25)
            ok = _div.all_ok(okb)
    if KIND == 3:
        if SYM:
            zp3 = 0
            lo3 = tl.full((1, 1, 1), QMIN, tl.float32)
            hi3 = tl.full((1, 1, 1), QMAX, tl.float32)
        else:
            zp3 = zp[:, :, None]
            lo3 = (QMIN - zp3).to(tl.float32)
            hi3 = (QMAX - zp3).to(tl.float32)
        skip = SYM and DENOM <= QMAX
        c0 = _int_code(x0, d3, dd3, y3, ok, lo3, hi3, zp3, NATIVE and not USE_MULT, skip)
    elif not F16X2:
        if USE_MULT:  # noqa: SIM108
            v0 = x0 * mult[:, :, None]
        else:
            v0 = _div.quotient(x0, d3, dd3, y3, ok, NATIVE and not USE_MULT)
        c0 = _encode(v0, EBITS, MBITS, BIAS, ENC_MUL, FMAX, NATIVE, CLAMP)
    dbase = r3 * KD
    if F16X2:  # MXFP4 of bf16 pairs on the GPU: both codes of a byte at once (see _fp4)
        m3 = (mult * 6.103515625e-05)[:, :, None]  # 2^-14: exact (mult is a power of two ≥ 2^-127)
        packed = _fp4.mx4_pairs(x0 * m3, x1 * m3, CLAMP).to(tl.uint8)
        pcol = b3 * (BK // 2) + j3
        if FULL:
            tl.store(data_ptr + dbase + pcol, packed)
        else:
            tl.store(data_ptr + dbase + pcol, packed, mask=m0)
    elif PACK == 2:
        if KIND == 3:
            c1 = _int_code(x1, d3, dd3, y3, ok, lo3, hi3, zp3, NATIVE and not USE_MULT, skip)
        else:
            if USE_MULT:  # noqa: SIM108
                v1 = x1 * mult[:, :, None]
            else:
                v1 = _div.quotient(x1, d3, dd3, y3, ok, NATIVE and not USE_MULT)
            c1 = _encode(v1, EBITS, MBITS, BIAS, ENC_MUL, FMAX, NATIVE, CLAMP)
        if not FULL:
            c1 = tl.where(m1, c1, 0)
        packed = ((c0 & 0xF) | ((c1 & 0xF) << 4)).to(tl.uint8)
        # byte index b·BK/2 + j, written so Triton sees it contiguous in j (``col // 2`` hides that, and the store
        # then forced a byte-per-thread layout on the whole tile: 4× slower). Odd BK occurs only with one block.
        pcol = b3 * (BK // 2) + j3
        if FULL:
            tl.store(data_ptr + dbase + pcol, packed)
        else:
            tl.store(data_ptr + dbase + pcol, packed, mask=m0)
    elif FULL:
        tl.store(data_ptr + dbase + col, c0.to(data_ptr.dtype.element_ty))
    else:
        tl.store(data_ptr + dbase + col, c0.to(data_ptr.dtype.element_ty), mask=m0)
