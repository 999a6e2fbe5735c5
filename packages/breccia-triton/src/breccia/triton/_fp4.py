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
def e2m1_pair_bytes(v0, v1, CLAMP: tl.constexpr):
    """The byte ``code(v0) | code(v1) << 4`` (in the low 8 bits of an int32) of the E2M1 codes of fp32 ``v``,
    rounded half to even, clamped to ±6 first with ``CLAMP``: :func:`e2m1_pair_codes` and the two signs (bits 3 and
    7, which the codes, ≤ 7, leave clear). Checked against ml_dtypes' ``float4_e2m1fn`` on every finite fp32 value
    in [2^-3, 8) and every 251st one elsewhere, of either sign in either position (``tests/test_triton_fp4.py``), and
    byte for byte against the reference by the cast tests. The GPU path for 16-bit inputs is :func:`group_bytes`."""
    r = e2m1_pair_codes(v0, v1, CLAMP)
    return r | ((_bits(v0) >> 28) & 8) | ((_bits(v1) >> 24) & 0x80)


@triton.jit
def e2m1_pair_codes(v0, v1, CLAMP: tl.constexpr):
    """The magnitude codes ``|code(v0)| | |code(v1)| << 4`` in the low byte of an int32 (the bits above it are not
    zero), with no conversion instruction: 5 per element on sm_90 (``FMNMX``, ``LOP3``, ``VIADDMNMX``, ``FADD``,
    ``LEA.HI``) and one ``LEA`` per pair.

    With ``m = |v|`` of exponent ``e`` and ``E = max(e, 0)``, the sum ``s = RN(c + m)`` with ``c = 2^(E + 22)``
    keeps ``m`` to the E2M1 step ``2^(E − 1)`` (one ulp of ``c``), rounded half to even by the FPU, so the low bits
    of ``bits(s) − bits(c)`` are ``k = RN(m / 2^(E − 1))`` in [0, 4], and the code is ``2E + k``. One
    integer add-and-max makes ``bits(c) + K`` from the exponent bits of ``m`` (``max(bits(m) & 0x7F800000 +
    (22 << 23) + K, (149 << 23) + K)``; an even ``K`` leaves the rounding's parity alone), and ``u = bits(s) +
    (bits(c) >> 22)`` has low byte ``K + k + 2E + 298``. Only the low byte of ``u0 + 16·u1`` is kept, so with
    ``K0 + 16·K1 ≡ 54 (mod 256)`` the constants vanish: ``K0 = 54``, ``K1 = 0``."""
    m0 = tl.minimum(tl.abs(v0), 6.0) if CLAMP else tl.abs(v0)
    m1 = tl.minimum(tl.abs(v1), 6.0) if CLAMP else tl.abs(v1)
    c0 = tl.maximum((_bits(m0) & 0x7F800000) + ((22 << 23) + 54), (149 << 23) + 54)
    c1 = tl.maximum((_bits(m1) & 0x7F800000) + (22 << 23), 149 << 23)
    u0 = _bits(m0 + _from_bits(c0)) + (c0 >> 22)
    u1 = _bits(m1 + _from_bits(c1)) + (c1 >> 22)
    return u0 + (u1 << 4)


@triton.jit
def pair_signs(w):
    """The sign bits of the E2M1 pair bytes of 16-bit input pair words ``w`` (element 2i in the low half, its sign
    at bit 15; element 2i + 1's at bit 31), at bits 3 and 7 of a uint8 per pair: the interpreter's form of the sign
    gather in :func:`group_bytes`, so that the CPU suite checks that the signs may come from the inputs.

    ``sign(code) = sign(x)``: the element is a correctly rounded quotient by a positive divisor or a product with a
    non-negative multiplier, whose sign is ``x``'s even where it rounds to zero; non-finite inputs are the host's
    (flag 1)."""
    return (((w >> 12) & 8) | ((w >> 24) & 0x80)).to(tl.uint8)


# The sign bits of four pair bytes from their four input words ($1–$4): two permutes collect the words' high bytes
# (each element's sign at bit 7 of its byte), one replicates the even elements' signs over whole bytes (``lo``), one
# gathers the odd elements' bytes (``hi``, masked to bit 7); a LOP3 then keeps bit 3 of ``lo``: 6 instructions per
# four bytes, where taking each sign from its quotient costs ~5 per byte
_SIGN_LINES: tl.constexpr = tl.constexpr("""prmt.b32 t, $1, $2, 0x7531;
prmt.b32 u, $3, $4, 0x7531;
prmt.b32 lo, t, u, 0xECA8;
prmt.b32 hi, t, u, 0x7531;
and.b32 hi, hi, 0x80808080;
lop3.b32 t, lo, 0x08080808, hi, 0xEA;""")


@triton.constexpr_function
def _element_ptx(x: str, a: str, b: str, mult: bool, clamp: bool, k: int, out: str) -> list[str]:
    """PTX for one element: the quotient ``v`` of fp32 ``x`` (as :func:`._div.fast`: ``RN(x·y)``, the residual
    ``RN(dd·q − x)``, ``RN(q − r·y)`` with ``a = dd``, ``b = y``; or ``RN(x · a)`` with ``mult``), then
    :func:`e2m1_pair_codes`' steps for it with the low constant ``k``, leaving ``u`` in ``out``."""
    if mult:
        ops = [f"mul.rn.f32 v, {x}, {a};"]
    else:
        ops = [f"mul.rn.f32 q, {x}, {b};", f"neg.f32 n, {x};", f"fma.rn.f32 r, {a}, q, n;", f"neg.f32 n, {b};",
               "fma.rn.f32 v, r, n, q;"]  # fmt: skip
    ops.append("abs.f32 m, v;")
    if clamp:
        ops.append("min.f32 m, m, 0f40C00000;")
    return [
        *ops,
        "and.b32 c, m, 0x7F800000;",
        f"add.s32 c, c, {(22 << 23) + k};",
        f"max.s32 c, c, {(149 << 23) + k};",
        "add.rn.f32 s, m, c;",
        "shr.u32 t, c, 22;",
        f"add.s32 {out}, s, t;",
    ]


@triton.constexpr_function
def group_ptx(bf16: bool, mult: bool, clamp: bool) -> str:
    """The PTX of :func:`group_bytes`: four words in ``$1``–``$4``, their per-element ``dd`` (or multiplier) in
    ``$5``–``$8`` and ``y`` in ``$9``–``$12``; four signed E2M1 bytes out in ``$0``."""
    lines = ["{", ".reg .b32 x, v, q, n, r, m, c, s, t, u, lo, hi, e0, e1, p0, p1, p2, p3;", ".reg .b16 h0, h1;"]
    for i in range(4):
        w, a, b = f"${1 + i}", f"${5 + i}", f"${9 + i}"
        for e in range(2):
            if bf16:
                lines.append(f"shl.b32 x, {w}, 16;" if e == 0 else f"and.b32 x, {w}, 0xFFFF0000;")
            else:
                if e == 0:
                    lines.append(f"mov.b32 {{h0, h1}}, {w};")
                lines.append(f"cvt.f32.f16 x, h{e};")
            lines += _element_ptx("x", a, b, mult, clamp, 54 if e == 0 else 0, f"e{e}")
        lines += ["shl.b32 t, e1, 4;", f"add.s32 p{i}, e0, t;"]
    lines += [
        "prmt.b32 t, p0, p1, 0x0040;",
        "prmt.b32 u, p2, p3, 0x0040;",
        "prmt.b32 p0, t, u, 0x5410;",
        _SIGN_LINES.value,
        "or.b32 $0, p0, t;",
        "}",
    ]
    return "\n".join(lines)


@triton.jit
def group_bytes(w, a, b, BF16: tl.constexpr, MULT: tl.constexpr, CLAMP: tl.constexpr):
    """Signed E2M1 bytes of 16-bit input pair words ``w`` on the GPU, quotient included: ``RN(x / d)`` from
    :func:`._div.block_recip`'s ``a = dd`` and ``b = y`` (or ``x · a`` with ``MULT``), then
    :func:`e2m1_pair_codes`, and the eight signs of four bytes gathered from the words by byte permutes
    (:data:`_SIGN_LINES`; see :func:`pair_signs` for why the inputs' signs are the codes'), four pairs per PTX block
    (``pack=4``: the kernel asks for it only where every thread holds a multiple of four pairs). About 10.4
    instructions per element on sm_90: 1 to widen, 3 for the quotient, 5 for the code, and the pair, byte and sign
    work shared by four pairs.

    One block per four pairs, not tensor operations, so that the code ``ptxas`` receives already finishes each group
    before it starts the next. As tensor operations every quotient of the tile came first and every encode after,
    and ``ptxas`` sometimes kept all 64 quotients of a thread live (93 or 119 registers where the same arithmetic
    compiled to 64), depending on small changes elsewhere. ``tests/test_triton_fp4.py`` runs this PTX through a
    model of its instructions against ml_dtypes on every finite fp16 and bf16 value; the GPU suite runs it."""
    asm: tl.constexpr = group_ptx(BF16, MULT, CLAMP)
    if MULT:
        return tl.inline_asm_elementwise(asm, "=r,r,r,r,r,r,r,r,r", [w, a], dtype=tl.uint8, is_pure=True, pack=4)
    return tl.inline_asm_elementwise(asm, "=r,r,r,r,r,r,r,r,r,r,r,r,r", [w, a, b], dtype=tl.uint8, is_pure=True,
                                     pack=4)  # fmt: skip
