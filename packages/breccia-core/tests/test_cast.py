"""cast/dequantize against the independent oracle (spec.py), on awkward shapes, dtypes and axes."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from spec import ML, breccia_codes, breccia_scales, spec_cast

import breccia
from breccia._recipes import scale_kind
from breccia._testing import AWKWARD_SHAPES, axes_for, make_x

AWKWARD = AWKWARD_SHAPES
DTYPES = [np.float32, np.float16, ml_dtypes.bfloat16, np.float64]


def spec_dequant(
    codes: np.ndarray,
    scales: np.ndarray,
    g: object,
    zps: object,
    recipe: breccia.Recipe,
    layout: breccia.Layout,
    shape: tuple[int, ...],
) -> np.ndarray:
    el = recipe.element
    if el.kind == "int":
        vals = codes.astype(np.int64)
        if el.signed and el.storage == "packed4":
            vals = np.where(vals >= 8, vals - 16, vals)
        vals = vals.astype(np.float32)
    else:
        vals = codes.astype(np.uint8).view(ML[el.name]).astype(np.float32)
    kind = scale_kind(recipe)
    if kind == "e8m0":
        s = np.float32(2.0) ** (scales.astype(np.float32) - 127)
    elif kind == "e4m3":
        s = scales.astype(np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float32)
        if g is not None:
            s = s * np.float32(g)
    else:
        s = scales.astype(np.float32)
    bs = layout.block_shape(shape)
    full = s
    zfull = None if zps is None else np.asarray(zps).astype(np.float32)
    for ax, b in enumerate(bs):
        full = np.repeat(full, b, axis=ax)
        if zfull is not None:
            zfull = np.repeat(zfull, b, axis=ax)
    crop = tuple(slice(0, n) for n in shape)
    if zfull is not None and getattr(recipe, "zero_point_domain", "int") == "float":  # MLX affine, rounded to T twice
        sdt = {"fp16": np.float16, "bf16": ml_dtypes.bfloat16, "fp32": np.float32}[kind]
        prod = (vals * full[crop]).astype(sdt).astype(np.float32)
        return (prod + zfull[crop]).astype(sdt).astype(np.float32)
    if zfull is not None:
        vals = vals - zfull[crop]
    return (vals * full[crop]).astype(np.float32)


def check_against_spec(x: np.ndarray, recipe: breccia.Recipe, axis: int) -> breccia.ScaledTensor:
    layout = recipe.default_layout(axis - x.ndim if axis >= 0 else axis)
    st_ = breccia.cast(x, recipe, axis=axis)
    assert isinstance(st_, breccia.ScaledTensor)
    assert st_.shape == x.shape and st_.layout == layout
    if x.size == 0:
        assert breccia.dequantize(st_).shape == x.shape
        return st_
    codes, scales, g, zps = spec_cast(x.astype(np.float32), recipe, layout)
    np.testing.assert_array_equal(breccia_codes(st_), codes)
    np.testing.assert_array_equal(breccia_scales(st_), scales)
    if g is not None:
        assert np.float32(st_.global_scale) == g
    if zps is not None:
        np.testing.assert_array_equal(np.asarray(st_.zero_point).astype(np.float64).reshape(zps.shape), zps)
    want = spec_dequant(codes, scales, g, zps, recipe, layout, x.shape)
    np.testing.assert_array_equal(breccia.dequantize(st_), want)
    return st_


@pytest.mark.parametrize("shape", AWKWARD, ids=str)
def test_matches_oracle_on_awkward_shapes(recipe: breccia.Recipe, shape: tuple[int, ...]) -> None:
    for axis in axes_for(recipe, len(shape)):
        check_against_spec(make_x(shape, seed=len(shape) * 100 + shape[-1]), recipe, axis)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_input_dtypes(recipe: breccia.Recipe, dtype: object) -> None:
    x = make_x((9, 100), seed=5, dtype=dtype)
    st_ = check_against_spec(x, recipe, -1)
    assert st_.framework == "numpy"


@st.composite
def shapes(draw: st.DrawFn) -> tuple[int, ...]:
    nd = draw(st.integers(1, 3))
    dims = [draw(st.integers(0 if i < nd - 1 else 1, 70 if nd > 1 else 700)) for i in range(nd)]
    return tuple(dims)


@given(shape=shapes(), seed=st.integers(0, 2**16), idx=st.integers(0, 10_000))
def test_property_oracle_any_shape(shape: tuple[int, ...], seed: int, idx: int) -> None:
    from conftest import RECIPES

    recipe = RECIPES[idx % len(RECIPES)]
    axes = axes_for(recipe, len(shape))
    if not axes:
        return
    check_against_spec(make_x(shape, seed), recipe, axes[idx % len(axes)])


def test_zero_and_empty_tensors(recipe: breccia.Recipe) -> None:
    for shape in [(0,), (4, 0), (0, 32), (3, 64)]:
        if isinstance(recipe.default_layout(), breccia.PerBlock2D) and len(shape) < 2:
            continue
        x = np.zeros(shape, np.float32)
        st_ = breccia.cast(x, recipe)
        y = breccia.dequantize(st_)
        assert y.shape == shape and np.all(y == 0)
        s = breccia._math.stored_scale_to_f32(breccia._reference.OPS, recipe, np.asarray(st_.scale), st_.global_scale)
        assert np.all(np.isfinite(s))
        if not recipe.has_zero_point:
            assert not np.asarray(st_.data).view(np.uint8).any() if x.size else True


def test_scalar_per_tensor() -> None:
    st_ = breccia.cast(np.float32(3.0), breccia.Float8CurrentScaling())
    assert st_.shape == () and float(breccia.dequantize(st_)) == 3.0


def test_scale_overflow_in_fp16_is_an_error() -> None:
    with pytest.raises(breccia.RecipeError, match="overflows the fp16 scale"):
        breccia.cast(np.full((2, 128), 1e7, np.float32), breccia.INT4Scaling())
    st_ = breccia.cast(np.full((2, 128), 1e7, np.float32), breccia.INT4Scaling(scale_dtype="fp32"))
    assert np.allclose(breccia.dequantize(st_), 1e7, rtol=1e-6)


def test_reciprocal_data_scaling_refuses_an_overflowing_multiplier() -> None:
    """NVFP4 with torchao's reciprocal rule: where ``(1/g) / s_b`` overflows fp32 (tensor amax 2^-118 here), the
    codes of zeros would be ``0 · inf = NaN`` and everything else would saturate, so the cast refuses, naming the
    amax and the way out; an amax of 2^-98 quantizes (the multiplier is finite), and so does an all-zero tensor
    (its global scale is 1)."""
    recipe = breccia.NVFP4BlockScaling(block_scale_min=2.0**-6, data_scaling="reciprocal")
    x = np.zeros((2, 64), np.float32)
    x[0, 5] = 2.0**-118
    with pytest.raises(breccia.RecipeError, match=r"amax 3\.0\d*e-36 .*data_scaling='divide'"):
        breccia.cast(x, recipe)
    st_ = breccia.cast(x * np.float32(2.0**20), recipe)
    assert np.array_equal(breccia.dequantize(st_), x * np.float32(2.0**20))  # 2^-98 is 6 · s_b · g exactly
    assert not np.asarray(breccia.cast(np.zeros((2, 64), np.float32), recipe).data).any()


def test_large_tensor_uses_many_tiles_and_matches_small_path() -> None:
    # Bigger than one tile along both axes, so the tiling and two-pass machinery run.
    x = make_x((300, 1100), seed=11)
    for r in [
        breccia.Float8BlockScaling(),
        breccia.Float8CurrentScaling(),
        breccia.NVFP4BlockScaling(),
        breccia.MXFP4BlockScaling(),
        breccia.Float8BlockScaling(block_m=128),
    ]:
        check_against_spec(x, r, -1)
        check_against_spec(
            np.ascontiguousarray(x.T), r, 0 if not isinstance(r.default_layout(), breccia.PerBlock2D) else -2
        )


def test_per_channel_column_scales_with_long_axis() -> None:
    # PerChannel along axis 0 of a tall matrix: one block spans many tiles (two-pass path).
    from breccia._tiling import TILE_ELEMS

    x = make_x((TILE_ELEMS // 8 + 3, 24), seed=3)
    r = breccia.Float8CurrentScaling()
    st_ = breccia.cast(x, r, layout=breccia.PerChannel(0))
    assert np.asarray(st_.scale).shape == (1, 24)
    codes, scales, _, _ = spec_cast(x, r, breccia.PerChannel(0))
    np.testing.assert_array_equal(breccia_codes(st_), codes)
    np.testing.assert_array_equal(breccia_scales(st_), scales)
