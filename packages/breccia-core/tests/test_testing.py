"""The shared test helpers every backend's suite relies on must be able to fail."""

from __future__ import annotations

import numpy as np
import pytest

import breccia
from breccia._testing import assert_same_bits, make_x, raw_bytes


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
