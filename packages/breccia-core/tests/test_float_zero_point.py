"""``zero_point_domain="float"`` (MLX's affine form): recipe fields, validation and the math on awkward groups.

The bytes are checked against the independent oracle (spec.py) through the shared RECIPES catalogue in
test_cast.py, and against ``mx.quantize`` itself in breccia-mlx; here: what the catalogue's random data does not
reach (constant, zero, tiny, NaN/Inf groups, the two-pass driver) and the recipe's own contract.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from spec import breccia_codes, breccia_scales, spec_cast
from test_generic import OPS, same

import breccia
from breccia._generic import cast_generic, dequantize_generic

T = {"fp32": np.float32, "fp16": np.float16, "bf16": ml_dtypes.bfloat16}


def affine(bits: int, group: int = 32, scale_dtype: str = "fp32") -> breccia.Recipe:
    kw = dict(signed=False, symmetric=False, zero_point_domain="float", scale_dtype=scale_dtype)
    if bits == 4:
        return breccia.INT4Scaling(group_size=group, **kw)  # type: ignore[arg-type]
    return breccia.INT8Scaling(granularity="group", group_size=group, **kw)  # type: ignore[arg-type]


def test_recipe_field_round_trips() -> None:
    r = affine(4, 64, "bf16")
    assert r.to_dict()["zero_point_domain"] == "float"
    assert breccia.recipe_from_dict(r.to_dict()) == r
    assert eval(repr(r), vars(breccia)) == r  # our own repr
    old = breccia.INT4Scaling(symmetric=False).to_dict()
    del old["zero_point_domain"]  # records written before the field existed
    assert breccia.recipe_from_dict(old).zero_point_domain == "int"  # type: ignore[attr-defined]
    assert breccia.INT8Scaling().zero_point_domain == "int" and r.has_zero_point


@pytest.mark.parametrize("cls", [breccia.INT4Scaling, breccia.INT8Scaling])
def test_recipe_validation(cls: type) -> None:
    with pytest.raises(breccia.RecipeError, match="zero_point_domain='fixed'"):
        cls(zero_point_domain="fixed")
    with pytest.raises(breccia.RecipeError, match="zero_point_domain='float' with symmetric=True"):
        cls(zero_point_domain="float")
    with pytest.raises(breccia.RecipeError, match="signed=True; the float domain needs"):
        cls(zero_point_domain="float", symmetric=False)


def test_zero_point_dtype_is_checked() -> None:
    x = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    st = breccia.cast(x, affine(4, 32, "fp16"))
    assert st.zero_point.dtype == np.float16 and st.scale.dtype == np.float16
    bad = st.zero_point.astype(np.uint8)
    with pytest.raises(breccia.DTypeError, match="zero_point of dtype float16"):
        breccia.ScaledTensor(st.data, st.scale, st.recipe, st.layout, st.shape, zero_point=bad)
    ints = breccia.cast(x, breccia.INT4Scaling(group_size=32, symmetric=False, signed=False))
    with pytest.raises(breccia.DTypeError, match="zero_point of dtype uint8"):
        breccia.ScaledTensor(ints.data, ints.scale, ints.recipe, ints.layout, ints.shape, zero_point=ints.scale)
    assert np.any(np.asarray(st.scale) < 0)  # negative scales are part of the rule, not rejected


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("kind", ["fp32", "fp16", "bf16"])
def test_awkward_groups_match_the_oracle(bits: int, kind: str) -> None:
    """Constant (positive, negative, tiny, zero), one-sided, symmetric and two-valued groups, partial tails."""
    rng = np.random.default_rng(bits)
    x = rng.standard_normal((12, 70)).astype(np.float32)
    x[0] = 0.0
    x[1, :32] = 1.5
    x[2, :32] = -3.0
    x[3, :32] = 1e-9  # below the 1e-7 scale floor
    x[4, :32] = np.abs(x[4, :32])
    x[5, :32] = -np.abs(x[5, :32])
    x[6, :16], x[6, 16:32] = 2.0, -2.0
    x[7, :32] = np.linspace(-1, 1, 32)
    x[8, 32:64] = 1e-30
    x = x.astype(T[kind]).astype(np.float32)  # values the scale dtype holds, as MLX's inputs are
    r = affine(bits, 32, kind)
    st = breccia.cast(x, r)
    codes, scales, _, zps = spec_cast(x, r, st.layout)
    np.testing.assert_array_equal(breccia_codes(st), codes)
    np.testing.assert_array_equal(breccia_scales(st), scales)
    np.testing.assert_array_equal(np.asarray(st.zero_point).astype(np.float64), zps)
    y = breccia.dequantize(st)
    np.testing.assert_array_equal(y[:3, :32], x[:3, :32])  # constant groups come back exactly (z is the constant)
    np.testing.assert_array_equal(y[6, :32], x[6, :32])
    with np.errstate(all="ignore"):
        same(cast_generic(OPS, x, r, st.layout), st)  # type: ignore[arg-type]
        np.testing.assert_array_equal(dequantize_generic(OPS, st), y)


@pytest.mark.parametrize("bits", [4, 8])
def test_nonfinite_groups(bits: int) -> None:
    """NaN is skipped by the group's range and encodes as 0 (MLX's rule); ±Inf groups get a NaN scale, ±Inf
    zero point and zero codes. The generic driver (torch/jax/mlx) agrees with the tiled reference."""
    x = np.random.default_rng(3).standard_normal((6, 64)).astype(np.float32)
    x[0, 3] = np.nan
    x[1, :32] = np.nan
    x[2, 5] = np.inf
    x[3, 7] = -np.inf
    x[4, 0], x[4, 1] = np.nan, np.inf
    r = affine(bits)
    with pytest.raises(breccia.NonFiniteError):
        breccia.cast(x, r)
    with np.errstate(all="ignore"):
        st = breccia.cast(x, r, nonfinite="propagate")
        same(cast_generic(OPS, x, r, st.layout, nonfinite="propagate"), st)  # type: ignore[arg-type]
        clean = breccia.cast(np.where(np.isnan(x[:1]), x[0, 4], x[:1]), r)  # the NaN replaced by an inner value
    s = np.asarray(st.scale)
    z = np.asarray(st.zero_point)
    codes = breccia_codes(st)
    assert np.isfinite(s[0, 0]) and codes[0, 3] == 0
    np.testing.assert_array_equal(s[0], np.asarray(clean.scale)[0])
    assert np.isnan(s[1, 0]) and z[1, 0] == -np.inf and not codes[1, :32].any()  # all NaN: min +inf, max −inf
    assert np.isnan(s[2, 0]) and z[2, 0] == np.inf and not codes[2, :32].any()
    assert np.isnan(s[3, 0]) and z[3, 0] == -np.inf and not codes[3, :32].any()
    np.testing.assert_array_equal(s[5], breccia.cast(x[5:6], r).scale[0])  # clean rows untouched


def test_two_pass_driver() -> None:
    """A per-channel block spanning many tiles (the reference's two-pass path), with and without NaN."""
    from breccia._tiling import TILE_ELEMS

    x = np.random.default_rng(5).standard_normal((TILE_ELEMS // 8 + 3, 6)).astype(np.float32)
    r = breccia.INT8Scaling(signed=False, symmetric=False, zero_point_domain="float", scale_dtype="bf16")
    lay = breccia.PerChannel(0)
    st = breccia.cast(x, r, layout=lay)
    codes, scales, _, zps = spec_cast(x, r, lay)
    np.testing.assert_array_equal(breccia_codes(st), codes)
    np.testing.assert_array_equal(breccia_scales(st), scales)
    np.testing.assert_array_equal(np.asarray(st.zero_point).astype(np.float64), zps)
    x[100, 2] = np.nan
    with np.errstate(all="ignore"):
        st = breccia.cast(x, r, layout=lay, nonfinite="propagate")
        same(cast_generic(OPS, x, r, lay, nonfinite="propagate"), st)  # type: ignore[arg-type]
    assert np.all(np.isfinite(np.asarray(st.scale).astype(np.float32)))


def test_fp16_overflow_is_refused() -> None:
    """A zero point (the block's edge) beyond fp16 is refused like an overflowing scale."""
    x = np.full((2, 32), 7e4, np.float32)
    with pytest.raises(breccia.RecipeError, match="overflows the fp16 scale"):
        breccia.cast(x, affine(4, 32, "fp16"))
    assert np.all(breccia.dequantize(breccia.cast(x, affine(4, 32, "bf16"))) == np.float32(ml_dtypes.bfloat16(7e4)))
