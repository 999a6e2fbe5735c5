"""Correctly rounded fp32 division by a per-block divisor, at three instructions per element on the GPU.

The reference (``breccia._math``) divides every element by its block's scale with one IEEE division, and the
codes must be byte-identical, so the quotient must be the correctly rounded ``RN(x / d)``. ``div.rn.f32`` gets
that at ~8 SASS instructions per element (``MUFU.RCP``, two Newton steps, the quotient, its correction, an
``FCHK`` range check and a branch to a slow path); nothing shares the reciprocal between the elements of a block.

Here the reciprocal is computed once per block, correctly rounded (``y = RN(1 / d)``), and each element costs one
multiply and two FMAs, the same tail that ``div.rn.f32`` itself runs::

    q = RN(x · y);   r = RN(d·q − x)  (exact);   q' = RN(q − r·y)

By Markstein's theorem (Muller et al., *Handbook of Floating-Point Arithmetic*, §4.7), ``q' = RN(x / d)`` when
``y`` is within half an ulp of ``1/d``, ``q`` is within one ulp of ``x/d``, and nothing underflows or overflows
(then ``r`` is exact). The range is what this module guards, per program:

- every divisor in ``[2^-60, 2^60]`` (``y`` is then a normal number), and every block's ``amax · y ≤ 2^60``
  (no quotient or ``d·q`` can overflow). A program whose blocks fail this divides with ``div.rn`` instead (INT4 and
  NVFP4 with a global scale: the host runs the whole launch again with ``div.rn``, see :mod:`._kernel`). That
  check is a reduction over the tile; where every divisor follows from one scalar (FP8 per tensor, NVFP4's global
  amax) the guard is that scalar's range (:func:`scalar_ok`), and NVFP4 without a global scale needs none (its
  divisors are E4M3 values);
- where ``r`` can underflow (``|x| < 2^-100``, or a quotient below fp32's normal range) the quotient is below
  ``2^-40``, which every format encodes as a signed zero whatever its last bits are; the sign is that of ``x``;
- the residual is computed negated, ``r' = d·q − x`` and ``q' = q − r'·y``: the same numbers, but for ``x = −0``
  the sum ``(+0) + (−0)`` in the textbook order would round to ``+0`` and lose the sign that ``−0 / d`` keeps
  (the GPU run found this: −0 codes became +0);
- a divisor of ``+inf`` (an NVFP4 block whose E4M3 scale is zero, or an overflowing integer scale) has quotient
  ``±0``; it is run as ``d = 0, y = 0``, which yields exactly that signed zero with no NaN from ``inf · 0``.

The faithfulness of ``q = RN(x · RN(1/d))`` is what ``tests/test_triton_div.py`` checks exhaustively on the GPU
(every finite bf16 and fp16 input against every fp32 divisor significand) besides the whole cast suite. The CPU
interpreter keeps ``div.rn``: its ``tl.fma`` is not fused.
"""

from __future__ import annotations

import triton
import triton.language as tl

LO: tl.constexpr = tl.constexpr(8.673617379884035e-19)  # 2^-60
HI: tl.constexpr = tl.constexpr(1.152921504606847e18)  # 2^60


# rcp.approx and one or two Newton steps y ← y + y·(1 − d·y) (see recip)
_RCP1: tl.constexpr = tl.constexpr(
    "{\n.reg .f32 y, e, n;\nrcp.approx.ftz.f32 y, $1;\nneg.f32 n, $1;\nfma.rn.f32 e, n, y, 0f3F800000;\n"
    "fma.rn.f32 $0, y, e, y;\n}"
)
_RCP2: tl.constexpr = tl.constexpr(
    "{\n.reg .f32 y, e, n;\nrcp.approx.ftz.f32 y, $1;\nneg.f32 n, $1;\nfma.rn.f32 e, n, y, 0f3F800000;\n"
    "fma.rn.f32 y, y, e, y;\nfma.rn.f32 e, n, y, 0f3F800000;\nfma.rn.f32 $0, y, e, y;\n}"
)


@triton.jit
def recip(d, STEPS: tl.constexpr = 2):
    """``RN(1 / d)`` for ``d`` in the guarded range ``[2^-60, 2^60]``: the hardware's approximate reciprocal ``y0``
    and ``STEPS`` Newton steps in FMAs, ``y ← y + y·(1 − d·y)``. With two steps this is, instruction for
    instruction, the fast path of ``div.rn.f32`` for a numerator of 1 (``MUFU.RCP`` and four FFMAs), which is
    correctly rounded wherever its ``FCHK`` range check passes, as it does for every such ``d``; ``div.rn`` adds that
    check, a slow-path branch and a multiply by the numerator. Outside the range the result is not used: the guard
    sends those programs to ``div.rn`` (see :func:`block_recip`). ``tests/test_triton_div.py`` compares it with
    ``div.rn`` on every fp32 significand on the GPU (``rcp.approx`` is a hardware table: no CPU emulation)."""
    if STEPS == 1:
        return tl.inline_asm_elementwise(_RCP1, "=r,r", [d], dtype=tl.float32, is_pure=True, pack=1)
    return tl.inline_asm_elementwise(_RCP2, "=r,r", [d], dtype=tl.float32, is_pure=True, pack=1)


@triton.jit
def by_uniform(a, b, y1):
    """``RN(a / b)`` for one divisor ``b`` shared by the whole program, given ``y1 = recip(b, 1)`` computed once:
    ``q = RN(a·y1)``, ``r = RN(a − b·q)``, ``RN(q + y1·r)``, the rest of ``div.rn.f32``'s fast path, instruction for
    instruction (three per block instead of ~10 with the reciprocal, the range check and the slow-path branch).
    That path is correctly rounded wherever ``div.rn``'s ``FCHK`` passes. NVFP4 uses it for ``sbf / g`` with
    ``g = RN(ga / 2688)`` and ``ga`` in the fast kernel's range ``[2^-38, 2^50]``, so ``b`` is normal and quotients
    stay below 2^100; where ``a`` is tiny the quotient encodes as the E4M3 zero either way. ``a ≥ 0``."""
    q = a * y1
    return tl.fma(y1, tl.fma(-b, q, a), q)


@triton.jit
def block_recip(d, amax):
    """Per block: the divisor to use in the residual, its reciprocal, and whether the fast division is valid."""
    inf = d == float("inf")
    y = tl.where(inf, 0.0, recip(d))
    dd = tl.where(inf, 0.0, d)
    ok = inf | ((d >= LO) & (d <= HI) & (amax * y <= HI))
    return dd, y, ok


@triton.jit
def by_six(a):
    """``RN(a / 6)`` for finite ``a ≥ 0``: Markstein's division by a constant, ``q = RN(a·y)``, ``y = RN(1/6)``, then
    one FMA residual and one FMA correction, where ``div.rn`` spends ~10 instructions and a branch. Correctly rounded
    for every ``a`` in ``[2^-100, 2^100]`` (``benchmarks/verify_div_by_constant.py`` checks every fp32 significand
    in exact integer arithmetic; powers of two scale every step exactly) and for ``a = 0``; above, up to fp32's
    largest value, nothing overflows either. Below ``2^-100`` the result is only close (a subnormal ``q`` loses
    bits): NVFP4 uses it where such a block scale encodes to the E4M3 zero either way (:mod:`._kernel`)."""
    q = a * 0.1666666716337204  # RN(1/6)
    return tl.fma(tl.fma(q, -6.0, a), 0.1666666716337204, q)


@triton.jit
def per_block(div, amax):
    """:func:`block_recip` of a ``(rows, blocks)`` divisor tile, with the residual divisor and the reciprocal
    widened to broadcast over the elements of each block, and the per-block guard."""
    dd, y, ok = block_recip(div, amax)
    return dd[:, :, None], y[:, :, None], ok


@triton.jit
def all_ok(ok):
    """Scalar: every block of the (rows, blocks) tile may use the fast division."""
    return tl.min(tl.min(ok.to(tl.int32), axis=1), axis=0)


@triton.jit
def scalar_ok(a, LO_A: tl.constexpr, HI_A: tl.constexpr):
    """The guard when every divisor of the launch follows from one scalar ``a`` (a tensor amax): ``a`` is 0 or in
    ``[LO_A, HI_A]``, bounds the caller derives so that every divisor lands in ``[2^-60, 2^60]`` and every quotient
    stays far from overflow. FP8 per tensor: ``d = a / fmax`` with ``fmax`` in [448, 57344]. NVFP4 two-level:
    ``d = sb · RN(a / 2688)`` with ``sb`` in [2^-9, 448] and quotients below 12."""
    return ((a == 0) | ((a >= LO_A) & (a <= HI_A))).to(tl.int32)


@triton.jit
def _neg(v):
    """``-v`` with the sign of zero flipped too: Triton lowers unary minus to ``0 - v``, which maps +0 to +0."""
    return (v.to(tl.int32, bitcast=True) ^ -2147483648).to(tl.float32, bitcast=True)


@triton.jit
def fast(x, dd, y):
    """``RN(x / d)`` from :func:`block_recip`'s ``dd`` and ``y``, valid only where its guard holds. The residual is
    computed negated so that ``x = −0`` keeps its sign (see the module docstring)."""
    q = x * y
    r = tl.fma(dd, q, x * -1.0)
    return tl.fma(r, _neg(y), q)


@triton.jit
def quotient(x, d, dd, y, ok, FAST: tl.constexpr):
    """``RN(x / d)`` elementwise, ``d``/``dd``/``y`` broadcast per block (see the module docstring)."""
    if FAST:
        if ok != 0:  # noqa: SIM108 -- a runtime branch: a ternary would compute both sides
            v = fast(x, dd, y)
        else:
            v = tl.math.div_rn(x, d)
    else:
        v = tl.math.div_rn(x, d)
    return v
