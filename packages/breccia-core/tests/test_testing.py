"""The shared test helpers every backend's suite relies on must be able to fail."""

from __future__ import annotations

import numpy as np
import pytest

import breccia
from breccia._testing import assert_same_bits, make_x, raw_bytes, rn32_sum


def test_assert_same_bits_catches_each_difference() -> None:
    x = make_x((4, 64), seed=0)
    st = breccia.cast(x, breccia.NVFP4BlockScaling())
    assert_same_bits(st, breccia.cast(x.copy(), breccia.NVFP4BlockScaling()))
    y = x.copy()
    y[0, 0] *= 1.5  # one element: data (and maybe one block scale) change
    with pytest.raises(AssertionError):
        assert_same_bits(st, breccia.cast(y, breccia.NVFP4BlockScaling()))
    with pytest.raises(AssertionError):  # same bytes would be impossible anyway: the recipe differs
        assert_same_bits(st, breccia.cast(x, breccia.NVFP4BlockScaling(per_tensor_scale=False)))
    assert raw_bytes(None).size == 0
    assert raw_bytes(np.float32(1.0)).tobytes() == np.float32(1.0).tobytes()


def test_rn32_sum_rounds_once() -> None:
    """1 + (2^-24 + 2^-60) lies just past the fp32 midpoint 1 + 2^-24, so its fp32 RN is 1 + 2^-23; the float64 sum
    drops the 2^-60, lands on the midpoint and would tie to even (1.0). Random exact sums agree with Fractions."""
    from fractions import Fraction

    a, b = np.array([1.0]), np.array([2.0**-24 + 2.0**-60])
    assert np.float32((a + b)[0]) == np.float32(1.0)  # the trap is real
    assert rn32_sum(a, b)[0] == np.nextafter(np.float32(1), np.float32(2))
    assert rn32_sum(a, -b)[0] == np.nextafter(np.float32(1), np.float32(0))
    rng = np.random.default_rng(0)
    x = rng.standard_normal(500)
    y = x * 2.0**-24 * (1 + rng.integers(-(2**20), 2**20, 500) * 2.0**-30)
    got = rn32_sum(x, y)
    for xi, yi, g in zip(x, y, got):
        exact = Fraction(float(xi)) + Fraction(float(yi))
        lo, hi = np.float32(float(exact)), np.float32(float(exact))
        cands = [np.nextafter(lo, np.float32(-np.inf)), lo, np.nextafter(hi, np.float32(np.inf))]
        best = min(cands, key=lambda c: (abs(Fraction(float(c)) - exact), int(np.array(c).view(np.int32)) & 1))
        assert g == best, (xi, yi)
