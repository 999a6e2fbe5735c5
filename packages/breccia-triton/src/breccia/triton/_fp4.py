"""E2M1 code pairs: MXFP4 of bf16 on the GPU in f16x2 arithmetic (:func:`mx4_pairs`), and any other scaled fp32
pair (NVFP4, MXFP4 of fp16/fp32, the interpreter) in fp32 and integer arithmetic (:func:`e2m1_pair_bytes`).

The fp32 bit encoder (:func:`breccia.triton._kernel._encode_float`) spends ~13 instructions per element on an
E2M1 code and its nibble: the scale multiply, the exponent-dependent rounding constant, two adds, the code shift, the
sign and the packing. MXFP4 of a bf16 input allows a cheaper exact route, because its scale is a power of two:

- ``v = x · 2^-k`` is exact, and so is ``h = RN_f16(v · 2^-14)`` wherever it matters: bf16 has 8 significant bits,
  and f16 keeps 8 bits down to ``2^-16`` (its subnormal step is ``2^-24``), i.e. for every ``|v| ≥ 1/8``. Below
  ``1/4`` every code is a signed zero, and no smaller ``|v|`` can round up past ``1/4``.
- The shift by ``2^-14`` puts the E2M1 grid ``{0, ½, 1, 1½, 2, 3, 4, 6}`` on f16 values whose bits 9–11 *are* the
  3-bit magnitude code (½ becomes the f16 subnormal ``2^-15``), so no multiply or bias is needed after rounding.
- Rounding to that grid is the usual ``(|h| + c) − c`` with ``c = 2^(max(e, −14) + 9)`` (round half to even by the
  FPU), computed for both halves of a word at once: ``and``, ``max.u16x2`` and one 32-bit add build both constants
  (no carry crosses the halves), ``add.rn.f16x2`` and ``sub.rn.f16x2`` round both elements.
- The two signs are moved next to their codes (bits 12 and 28) with one shift and mask, and two shifts place both
  nibbles in the low byte: 15 instructions per pair instead of ~26.

Exactness was checked by emulation on every finite bf16 value × every scale exponent ``k ∈ [−127, 127]``, with and
without the clamp to ±6 (0 mismatches against ml_dtypes' ``float4_e2m1fn``), and on the GPU by the cast suite. fp16
and fp32 inputs carry more than 8 significant bits (the f16 rounding would then round twice) and keep the fp32
encoder, as does the CPU interpreter, which cannot run PTX.
"""

from __future__ import annotations

import triton
import triton.language as tl

from breccia.triton._codes import _bits, _from_bits

_BODY = """{
.reg .b32 h, a, e, c, r, t, k;
cvt.rn.f16x2.f32 h, $2, $1;
and.b32 a, h, 0x7FFF7FFF;
%s
and.b32 e, a, 0x7C007C00;
mov.b32 k, 0x04000400;
max.u16x2 e, e, k;
add.u32 c, e, 0x24002400;
add.rn.f16x2 r, a, c;
sub.rn.f16x2 r, r, c;
shr.u32 t, h, 3;
and.b32 t, t, 0x10001000;
or.b32 r, r, t;
shr.u32 t, r, 9;
shr.u32 r, r, 21;
or.b32 $0, t, r;
}"""
# |h| ≤ 6 · 2^-14 (f16 0x0E00): clamp-then-round, as the reference encodes an MX ``floor`` scale's overflow
_CLAMPED: tl.constexpr = tl.constexpr(_BODY % "mov.b32 k, 0x0E000E00;\nmin.u16x2 a, a, k;")
_UNCLAMPED: tl.constexpr = tl.constexpr(_BODY % "")


@triton.jit
def mx4_pairs(v0, v1, CLAMP: tl.constexpr):
    """The packed byte ``code(v0) | code(v1) << 4`` (in the low 8 bits of an int32) of E2M1 codes, given
    ``v = x · 2^-k · 2^-14`` for bf16 ``x`` (see the module docstring). ``CLAMP`` saturates at ±6 first."""
    if CLAMP:
        return tl.inline_asm_elementwise(_CLAMPED, "=r,f,f", [v0, v1], dtype=tl.int32, is_pure=True, pack=1)
    return tl.inline_asm_elementwise(_UNCLAMPED, "=r,f,f", [v0, v1], dtype=tl.int32, is_pure=True, pack=1)


@triton.jit
def _e2m1_parts(v, CLAMP: tl.constexpr):
    m = tl.minimum(tl.abs(v), 6.0) if CLAMP else tl.abs(v)
    e = tl.maximum(_bits(m) & 0x7F800000, 0x3F800000)  # 2^max(e, 0), as bits
    return m, e


@triton.jit
def e2m1_pair_bytes(v0, v1, CLAMP: tl.constexpr):
    """The byte ``code(v0) | code(v1) << 4`` (in the low 8 bits of an int32) of the E2M1 codes of fp32 ``v``,
    rounded half to even, clamped to ±6 first with ``CLAMP``: 18 instructions per pair on sm_90 where the generic
    bit encoder (``_codes._encode_float``) and its packing take ~23, with no conversion instruction.

    With ``m = |v|`` of exponent ``e`` and ``c = 2^(max(e, 0) + 22)``, the sum ``s = RN(c + m)`` keeps ``m`` to the
    E2M1 step ``2^(max(e, 0) − 1)`` (one ulp of ``c``), rounded half to even by the FPU, so the low bits of
    ``bits(s) − bits(c)`` are ``k = RN(m / 2^(max(e, 0) − 1))`` in [0, 4], and the code is ``2·max(e, 0) + k``. Only
    the low byte is kept, so ``bits(c)`` (a multiple of 2^23) drops out, ``2·max(e, 0)`` comes from the exponent
    bits ``>> 22`` (``+ 254``), the second code's ``16·(…)`` from ``bits(s1) << 4`` and its exponent ``>> 18``, and
    the constants sum to a multiple of 256 once ``c0`` carries 34 in its low bits (even, so the rounding's parity is
    untouched). The signs land on bits 3 and 7, which the codes (≤ 7) leave clear. Checked against ml_dtypes'
    ``float4_e2m1fn`` on every finite fp32 value of either sign in either position (0 mismatches), and byte for
    byte against the reference by the cast tests (the interpreter runs this same function)."""
    r = e2m1_pair_codes(v0, v1, CLAMP)
    return r | ((_bits(v0) >> 28) & 8) | ((_bits(v1) >> 24) & 0x80)


@triton.jit
def e2m1_pair_codes(v0, v1, CLAMP: tl.constexpr):
    """:func:`e2m1_pair_bytes` without the signs: the magnitude codes ``|code(v0)| | |code(v1)| << 4`` in the low
    byte (the bits above it are not zero). Each code's exponent term is added to its own sum first (one shift-add
    each, then one for the pair), which is one instruction fewer per pair than summing the four terms."""
    m0, e0 = _e2m1_parts(v0, CLAMP)
    m1, e1 = _e2m1_parts(v1, CLAMP)
    u0 = _bits(m0 + _from_bits(e0 + (22 << 23) + 34)) + (e0 >> 22)  # low byte ≡ 34 + k0 + 2·max(e0, 0) + 254
    u1 = _bits(m1 + _from_bits(e1 + (22 << 23))) + (e1 >> 22)  # low byte ≡ k1 + 2·max(e1, 0) + 254
    return u0 + (u1 << 4)  # ≡ code0 + 16·code1 (mod 256)


# The sign bits of four pair bytes from their four input words (16-bit floats, element 2i in the low half, its sign
# at bit 15 and element 2i + 1's at bit 31): $1–$4 → bits 3 and 7 of each byte of $0.
_SIGNS: tl.constexpr = tl.constexpr("""{
.reg .b32 t, u, lo, hi;
prmt.b32 t, $1, $2, 0x7531;
prmt.b32 u, $3, $4, 0x7531;
prmt.b32 lo, t, u, 0xECA8;
prmt.b32 hi, t, u, 0x7531;
and.b32 hi, hi, 0x80808080;
lop3.b32 $0, lo, 0x08080808, hi, 0xEA;
}""")


@triton.jit
def pair_signs(w, NATIVE: tl.constexpr):
    """The sign bits of the E2M1 pair bytes of the 16-bit input pair words ``w`` (element 2i in the low half), at
    bits 3 and 7 of a uint8 per pair, to be OR-ed into :func:`e2m1_pair_codes`: 7 instructions per four pairs on
    the GPU against ~5 per pair for the sign shifts and masks of :func:`e2m1_pair_bytes`.

    ``sign(code) = sign(x)``: the element is a correctly rounded quotient by a positive divisor or a product with a
    non-negative multiplier, whose sign is ``x``'s even where it rounds to zero; non-finite inputs are the host's
    (flag 1). On the GPU, four words at a time (:data:`_SIGNS`): two permutes collect the words' high bytes (each
    element's sign at bit 7 of its byte), one replicates the even elements' signs over whole bytes, one gathers the
    odd elements' bytes, and two masks place them. The caller takes them right after the load, so the words need
    not stay live until the encode (taken at the encode, with the words, the NVFP4 kernel held 119 registers, not
    64). The interpreter, which runs no PTX, takes the same bits with shifts. ``pack=4`` needs a multiple of four
    elements per thread: the kernel asks for it only where its tile has at least four per thread."""
    if NATIVE:
        return tl.inline_asm_elementwise(_SIGNS, "=r,r,r,r,r", [w], dtype=tl.uint8, is_pure=True, pack=4)
    return (((w >> 12) & 8) | ((w >> 24) & 0x80)).to(tl.uint8)
