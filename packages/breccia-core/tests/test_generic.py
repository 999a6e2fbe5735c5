"""The whole-tensor driver (what torch/jax/mlx run) equals the tiled numpy reference, byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import RECIPES, recipe_id
from test_cast import AWKWARD, axes_for, make_x

import breccia
from breccia._generic import cast_generic, dequantize_generic
from breccia._ops import NumpyOps

OPS = NumpyOps()


def same(a: breccia.ScaledTensor, b: breccia.ScaledTensor) -> None:
    assert a.shape == b.shape and a.layout == b.layout
    for p, q in ((a.data, b.data), (a.scale, b.scale), (a.global_scale, b.global_scale), (a.zero_point, b.zero_point)):
        if p is None:
            assert q is None
            continue
        x, y = np.asarray(p), np.asarray(q)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.atleast_1d(x).view(np.uint8).tobytes() == np.atleast_1d(y).view(np.uint8).tobytes()


@pytest.mark.parametrize("recipe", RECIPES, ids=recipe_id)
@pytest.mark.parametrize("shape", [*AWKWARD, (0, 5)], ids=str)
def test_generic_driver_equals_reference(recipe: breccia.Recipe, shape: tuple[int, ...]) -> None:
    for axis in axes_for(recipe, len(shape)):
        x = make_x(shape, seed=sum(shape))
        lay = recipe.default_layout(axis)
        ref = breccia.cast(x, recipe, layout=lay)
        with np.errstate(all="ignore"):
            got = cast_generic(OPS, x, recipe, lay)
        assert isinstance(got, breccia.ScaledTensor) and isinstance(ref, breccia.ScaledTensor)
        same(got, ref)
        np.testing.assert_array_equal(dequantize_generic(OPS, got), breccia.dequantize(ref))


def test_generic_nonfinite_and_history() -> None:
    x = make_x((4, 64), 0)
    x[2, 40] = np.inf
    with pytest.raises(breccia.NonFiniteError, match=r"block \(2, 1\)"):
        cast_generic(OPS, x, breccia.MXFP8BlockScaling(), breccia.PerBlockK(32))
    r = breccia.DelayedScaling(amax_history_len=2)
    h = breccia.AmaxHistory.for_recipe(r)
    y = make_x((4, 64), 1)
    got, h1 = cast_generic(OPS, y, r, breccia.PerTensor(), history=h)  # type: ignore[misc]
    ref, h2 = breccia.cast(y, r, history=h)
    same(got, ref)
    np.testing.assert_array_equal(np.asarray(h1.amaxes), np.asarray(h2.amaxes))
