"""MXFP4 codes of bf16 pairs on the GPU, two elements per instruction in f16x2 arithmetic.

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
