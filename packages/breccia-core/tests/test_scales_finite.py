"""``compute_scales(assume_finite=True)``, the fast paths' shortcut, gives the general bytes on finite input."""

from __future__ import annotations

import numpy as np
import pytest

from breccia import _math as M
from breccia._ops import NumpyOps
from breccia._recipes import Float8BlockScaling, MXFP4BlockScaling, MXFP6BlockScaling, MXFP8BlockScaling, Recipe

OPS = NumpyOps()
RECIPES: list[Recipe] = [
    MXFP8BlockScaling(),
    MXFP8BlockScaling(fp8_format="E5M2"),
    MXFP8BlockScaling(scale_rounding="floor"),
    MXFP8BlockScaling(fp8_format="E5M2", scale_rounding="floor"),
    MXFP4BlockScaling(),
    MXFP4BlockScaling(scale_rounding="floor"),
    MXFP6BlockScaling(element="E2M3"),
    MXFP6BlockScaling(element="E3M2", scale_rounding="floor"),
    Float8BlockScaling(),
    Float8BlockScaling(power_of_2_scales=True),
    Float8BlockScaling(fp8_format="E5M2", power_of_2_scales=True),
]


def finite_amaxes(seed: int) -> np.ndarray:
    """Every kind of finite amax the shortcut must agree on: zeros (±0), subnormals, powers of two times each element
    format's fmax and their fp32 neighbours (the rceil boundaries), the largest finite, and random bit patterns."""
    rng = np.random.default_rng(seed)
    fmaxes = [448.0, 57344.0, 6.0, 7.5, 28.0]
    exact = np.array([f * 2.0**e for f in fmaxes for e in range(-140, 110)], dtype=np.float32)
    exact = exact[np.isfinite(exact)]
    nbrs = np.concatenate([np.nextafter(exact, np.float32(0)), exact, np.nextafter(exact, np.float32(np.inf))])
    special = np.array([0.0, -0.0, 1e-45, 2.0**-127, 2.0**-126, 3.4028235e38, 1.0], dtype=np.float32)
    rand_bits = rng.integers(0, 0x7F800000, size=200_000, dtype=np.int64).astype(np.int32).view(np.float32)
    return np.concatenate([nbrs, special, rand_bits]).astype(np.float32)


@pytest.mark.parametrize("recipe", RECIPES, ids=repr)
def test_assume_finite_matches_general_branch(recipe: Recipe) -> None:
    amax = finite_amaxes(0).reshape(-1, 1)
    general = M.compute_scales(OPS, recipe, amax)
    fast = M.compute_scales(OPS, recipe, amax, assume_finite=True)
    assert np.array_equal(np.asarray(general.stored).view(np.int32), np.asarray(fast.stored).view(np.int32))
    assert np.array_equal(np.asarray(general.divisor).view(np.int32), np.asarray(fast.divisor).view(np.int32))


def test_the_check_can_fail() -> None:
    # A shortcut that differed would be caught: the general branch's NaN byte (255) is not what the shortcut gives.
    amax = np.array([[np.nan]], dtype=np.float32)
    general = M.compute_scales(OPS, MXFP8BlockScaling(), amax)
    fast = M.compute_scales(OPS, MXFP8BlockScaling(), amax, assume_finite=True)
    assert int(np.asarray(general.stored).ravel()[0]) == 255
    assert int(np.asarray(fast.stored).ravel()[0]) != 255
