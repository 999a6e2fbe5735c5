"""Element-level helpers of the quantize kernels: bit views, powers of two, loads, block maxima, the FP8 scale
rule, and the element encoders (floats by bit arithmetic or the hardware FP8 conversion, integers by the
magic-number add). Every one mirrors an operation of :mod:`breccia._math`; :mod:`._kernel` explains why each
is written the way it is, and :mod:`._kernel2d` and :mod:`._w4a16_decode` share them.
"""

from __future__ import annotations

import triton
import triton.language as tl
from triton.language.extra import libdevice

from breccia.triton import _div


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
def _int_code(x, d, dd, y, ok, lo, hi, zp, FAST: tl.constexpr, SKIP_CLAMP: tl.constexpr, RAW: tl.constexpr = False,
              HOST_RANGE: tl.constexpr = False):  # fmt: skip
    """Integer code ``clamp(rint(x / d) + zp, QMIN, QMAX)`` of an INT recipe, given ``lo = QMIN − zp`` and
    ``hi = QMAX − zp``. Clamping the quotient to those integer bounds first gives the same integer (``rint`` is
    monotone and fixes integers), and then ``v + 1.5·2^23`` is rounded half to even by the FPU itself, leaving
    ``rint(v)`` as the low bits of the sum's bit pattern. This replaces ``cvt.rni`` + ``cvt.rzi.s32`` (two
    quarter-rate conversion-pipe instructions per element on Hopper) with one add; only the low 4 or 8 bits are
    ever stored, so the compiler also drops the bias subtraction. ``SKIP_CLAMP``: the caller's guard ``ok`` also
    vouches that every quotient of the fast path lies within ``QMAX + 1/4`` (see ``quant_rows_kernel``). ``RAW``:
    the sum's bits ``0x4B400000 + rint(v)`` without the zero point, for a packer that adds it once per byte.
    ``HOST_RANGE``: ``ok`` is the clamp guard alone, because a divisor out of the fast division's range made the
    host relaunch with ``FAST`` off; the program then needs no ``div.rn`` path (INT4 asymmetric: 72 → 64 registers,
    48.1 → 42.9 µs on an H200)."""
    if FAST and HOST_RANGE:
        v = _div.fast(x, dd, y)
        if SKIP_CLAMP:
            if ok == 0:
                v = tl.minimum(tl.maximum(v, lo), hi)
        else:
            v = tl.minimum(tl.maximum(v, lo), hi)
    elif FAST:
        if ok != 0:
            v = _div.fast(x, dd, y)
            if not SKIP_CLAMP:
                v = tl.minimum(tl.maximum(v, lo), hi)
        else:
            v = tl.minimum(tl.maximum(tl.math.div_rn(x, d), lo), hi)
    else:
        v = tl.minimum(tl.maximum(tl.math.div_rn(x, d), lo), hi)
    if RAW:
        return _bits(v + 12582912.0)
    return _bits(v + 12582912.0) - 0x4B400000 + zp


@triton.jit
def _store_blocks(ptrs, v, m, NATIVE: tl.constexpr):
    """Per-block values (a scale, a zero point) stored from the layout they were computed in. ``tl.store`` would
    move them to its own coalesced layout first, through shared memory with two CTA barriers per value; on the GPU
    an inline ``st.global`` from every lane that holds the block instead (the lanes of a block write the same bytes
    to the same address). The interpreter, which has no inline PTX, keeps ``tl.store``."""
    if NATIVE:
        width: tl.constexpr = v.dtype.primitive_bitwidth
        bits = v.to(tl.int32, bitcast=True) if width == 32 else v.to(tl.int32)
        tl.inline_asm_elementwise(
            f"{{\n.reg .pred p;\nsetp.ne.b32 p, $3, 0;\n@p st.global.b{width} [$1], $2;\nmov.b32 $0, 0;\n}}",
            "=r,l,r,r", [ptrs, bits, m.to(tl.int32)], dtype=tl.int32, is_pure=False, pack=1,
        )  # fmt: skip
    else:
        tl.store(ptrs, v, mask=m)


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
    return _split_pairs(_ld(ptrs, m, FULL), IN_KIND)


@triton.jit
def _split_pairs(w, IN_KIND: tl.constexpr):
    """The two fp32 elements of each pair word (see :func:`_load_pairs`), exactly."""
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
def _x2(a, b, ASM: tl.constexpr):
    """One instruction ``ASM`` on both 16-bit halves of 32-bit words at once (inline PTX: GPU only)."""
    return tl.inline_asm_elementwise(ASM, "=r,r,r", [a, b], dtype=tl.int32, is_pure=True, pack=1)


@triton.jit
def _max_u16x2(a, b):
    """Both 16-bit halves' maxima at once (``max.u16x2``, sm_90): the combine of :func:`_pair_amax_bits`."""
    return _x2(a, b, "max.u16x2 $0, $1, $2;")


@triton.jit
def _halves_max(h):
    """The larger of the two 16-bit halves of words whose sign bits are already clear."""
    return tl.maximum(h >> 16, h & 0xFFFF)


@triton.jit
def _pair_mag(w):
    """Per 16-bit pair word: the larger 15-bit magnitude (sign cleared) of its two halves."""
    return _halves_max(w & 0x7FFF7FFF)


@triton.jit
def _mag16_bits(h, IN_KIND: tl.constexpr):
    """The fp32 bit pattern of a bf16 (``IN_KIND`` 2) or fp16 (1) magnitude ``h`` given as its 15 low bits: exact,
    order-preserving, and NaN / Inf stay NaN / Inf, so an integer max of such magnitudes widens to the block amax."""
    if IN_KIND == 2:
        return h << 16
    else:
        return _bits(h.to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32))


@triton.jit
def _pair_amax_bits(w, IN_KIND: tl.constexpr):
    """:func:`_amax_bits` of the elements of 16-bit pair words ``w`` (``(rows, blocks, words)``), on the GPU: the
    15-bit magnitudes of both halves are reduced together by ``max.u16x2`` (one instruction per word, where
    widening each element and masking it costs two per element), then the larger half is widened once per block.
    The integer order of magnitudes is the float order, NaN above Inf, exactly as in :func:`_amax_bits`."""
    return _mag16_bits(_halves_max(tl.reduce(w & 0x7FFF7FFF, 2, _max_u16x2)), IN_KIND)


@triton.jit
def _min_bf16x2(a, b):
    return _x2(a, b, "min.NaN.bf16x2 $0, $1, $2;")


@triton.jit
def _max_bf16x2(a, b):
    return _x2(a, b, "max.NaN.bf16x2 $0, $1, $2;")


@triton.jit
def _min_f16x2(a, b):
    return _x2(a, b, "min.NaN.f16x2 $0, $1, $2;")


@triton.jit
def _max_f16x2(a, b):
    return _x2(a, b, "max.NaN.f16x2 $0, $1, $2;")


@triton.jit
def _pair_minmax(w, IN_KIND: tl.constexpr):
    """Per block of 16-bit pair words ``w``: the smallest and the largest element as fp32, reduced on the raw
    words two halves at a time (``min/max.NaN.{bf16,f16}x2``, one instruction per word each, where fp32 elements
    cost two per element), NaN-propagating so that ``max(|min|, |max|)`` is the block amax, NaN included."""
    if IN_KIND == 2:
        lo = tl.reduce(w, 2, _min_bf16x2)
        hi = tl.reduce(w, 2, _max_bf16x2)
    else:
        lo = tl.reduce(w, 2, _min_f16x2)
        hi = tl.reduce(w, 2, _max_f16x2)
    l0, l1 = _split_pairs(lo, IN_KIND)
    h0, h1 = _split_pairs(hi, IN_KIND)
    nan: tl.constexpr = tl.PropagateNan.ALL
    return tl.minimum(l0, l1, propagate_nan=nan), tl.maximum(h0, h1, propagate_nan=nan)


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
    bounds ``|v|`` below ``fmax`` plus half the format's top step (see ``_cast_args._needs_clamp``): the clamp could
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
def mx_scale(amax, FMAX: tl.constexpr, RCEIL: tl.constexpr, EMAX: tl.constexpr):
    """MX block scale from the block amax (fp32, finite): ``(E8M0 byte, divisor 2^e, multiplier 2^-e)``, as
    ``_math``'s ``rceil`` (smallest power of two at least ``amax / fmax``) or ``floor`` (OCP: ``floor(log2 amax) −
    emax``) rule, clamped to the byte range [0, 254]. ``x / 2^e`` and ``x · 2^-e`` are the same real number, both
    correctly rounded, so the kernels encode by multiplying."""
    if RCEIL:  # constexpr branches: only one side is compiled
        e = _pow2_ceil_exp(tl.math.div_rn(amax, tl.full(amax.shape, FMAX, tl.float32)))
    else:
        e = ((_bits(amax) & 0x7FFFFFFF) >> 23) - 127 - EMAX
    byte = tl.minimum(tl.maximum(e + 127, 0), 254)
    return byte, _pow2(byte - 127), _pow2(127 - byte)


@triton.jit
def _nv_global_scale(ga):
    """NVFP4's global scale ``where(ga == 0, 1, RN(ga / 2688))`` (2688 = 6 · 448, the E2M1 and E4M3 maxima, as in
    ``_math.compute_scales``) by ``div_rn``, the correctly rounded division torch and NumPy do. The encode kernel
    divides every block scale by it and stores it as the ScaledTensor's ``global_scale`` (program (0, 0))."""
    return tl.where(ga == 0, 1.0, tl.math.div_rn(ga, tl.full(ga.shape, 2688.0, tl.float32)))
