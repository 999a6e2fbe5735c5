"""Exhaustive check, for a constant divisor C (default 6; NVFP4's block scale is RN(amax / 6), its global scale
RN(amax / 2688)): for every fp32 significand a in [1, 2), Markstein's division

    q0 = RN(a · y),  r = RN(a − C · q0) (an FMA),  q = RN(q0 + r · y) (an FMA),  y = RN(1 / C)

equals the correctly rounded RN(a / C). Scaling a by a power of two scales every step exactly (no underflow or
overflow for |a| in [2^-100, 2^100]), so the significands are every case. All arithmetic is in exact integers
(numpy int64, values as integer × 2^exponent). With ``--no-correction`` it checks q0 alone, which must fail (about
a third of the significands for C = 6 come out one ulp off): the check can tell. Prepared for a quantize kernel
that would divide block amaxes by 6 in three instructions instead of ``div.rn``'s ~12 (benchmarks/NOTES.md, ninth
session).

    python benchmarks/verify_div_by_constant.py [C] [--no-correction]
"""

from __future__ import annotations

import sys

import numpy as np

Exact = tuple[np.ndarray, np.ndarray]  # integer significands, exponents: the value is m · 2^e


def _bitlen(p: np.ndarray) -> np.ndarray:
    """Bit length of |p| (exact through float64 for |p| < 2^53)."""
    return np.frexp(np.abs(p).astype(np.float64))[1].astype(np.int64)


def rn24(p: np.ndarray, e: np.ndarray | int) -> Exact:
    """The exact value p · 2^e (int64 p, |p| < 2^53) rounded to 24 significant bits, half to even."""
    sign, a = np.sign(p), np.abs(p)
    s = np.maximum(_bitlen(a) - 24, 0)
    keep = a >> s
    low = a - (keep << s)
    half = np.where(s > 0, np.left_shift(np.int64(1), np.maximum(s - 1, 0)), 0)
    up = (s > 0) & ((low > half) | ((low == half) & (keep & 1 == 1)))
    return sign * (keep + up), e + s


def markstein(a: np.ndarray, ea: int, c: int, correct: bool) -> Exact:
    """The three-instruction quotient of a · 2^ea by c, every step rounded as the GPU's FMA pipe does."""
    mant, exp = np.frexp(np.float64(np.float32(1) / np.float32(c)))
    y, ey = np.int64(mant * 2**24), int(exp) - 24  # y = RN32(1 / c) = y · 2^ey exactly
    q0, e0 = rn24(a * y, ea + ey)
    if not correct:
        return q0, e0
    emin = np.minimum(ea, e0)
    d = (a << (ea - emin)) - ((c * q0) << (e0 - emin))
    assert (np.abs(d) < (1 << 24)).all(), "the residual is not exact"
    r, er = rn24(d, emin)
    emin2 = np.minimum(e0, er + ey)
    total = (q0 << (e0 - emin2)) + ((r * y) << (er + ey - emin2))
    return rn24(total, emin2)


def truth(a: np.ndarray, ea: int, c: int) -> Exact:
    """RN(a · 2^ea / c) from an integer division, the remainder as the sticky bit."""
    n = a << 30
    qt, rem = n // c, n % c
    s = _bitlen(qt) - 24
    keep = qt >> s
    low = qt - (keep << s)
    half = np.left_shift(np.int64(1), s - 1)
    up = (low > half) | ((low == half) & ((rem > 0) | (keep & 1 == 1)))
    return keep + up, s + ea - 30


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    c = int(args[0]) if args else 6
    correct = "--no-correction" not in sys.argv
    a = np.arange(1 << 23, 1 << 24, dtype=np.int64)  # every significand: a · 2^-23 in [1, 2)
    got = markstein(a, -23, c, correct)
    want = truth(a, -23, c)
    value = [m.astype(np.float64) * np.exp2(e.astype(np.float64)) for m, e in (got, want)]
    bad = int((value[0] != value[1]).sum())
    step = "with" if correct else "without"
    print(f"divisor {c}, {step} the correction: {a.size} significands, {bad} differ from RN(a / {c})")
    return 1 if bad and correct else 0


if __name__ == "__main__":
    raise SystemExit(main())
