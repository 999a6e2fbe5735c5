"""breccia-mlx casts are byte-identical to the numpy reference: every recipe × dtype × awkward shape × axis."""

from __future__ import annotations

import ml_dtypes
import mlx.core as mx
import numpy as np
import pytest

import breccia
from breccia._recipes import scale_kind
from breccia._testing import AWKWARD_SHAPES, RECIPES, assert_same_bits, axes_for, make_x, raw_bytes, recipe_id

DTYPES = [mx.float32, mx.bfloat16, mx.float16]


def to_np(x: mx.array) -> np.ndarray:
    """The same values as a numpy array of the same precision (numpy has no bfloat16 buffer: go through fp32)."""
    if x.dtype == mx.bfloat16:
        return np.array(x.astype(mx.float32)).astype(ml_dtypes.bfloat16)
    return np.array(x)


@pytest.mark.parametrize("recipe", RECIPES, ids=recipe_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_bytes_equal_reference(recipe: breccia.Recipe, dtype: mx.Dtype) -> None:
    for shape in AWKWARD_SHAPES:
        x = mx.array(make_x(shape, seed=sum(shape))).astype(dtype)
        for axis in axes_for(recipe, len(shape)):
            st = breccia.cast(x, recipe, axis=axis)
            assert isinstance(st, breccia.ScaledTensor) and st.framework == "mlx"
            ref = breccia.cast(to_np(x), recipe, axis=axis)
            assert_same_bits(st, ref)
            y = breccia.dequantize(st)
            assert isinstance(y, mx.array) and y.dtype == mx.float32
            np.testing.assert_array_equal(np.array(y), breccia.dequantize(ref))


@pytest.mark.parametrize("recipe", RECIPES, ids=recipe_id)
def test_storage_dtypes(recipe: breccia.Recipe) -> None:
    """MLX has no float8: FP8 data and E8M0/E4M3 scales are uint8 with the same bytes (DESIGN.md §5)."""
    st = breccia.cast(mx.random.normal((4, 64)), recipe)
    want = {"fp8": mx.uint8, "packed4": mx.uint8, "byte": mx.uint8, "int8": mx.int8}[recipe.element.storage]
    assert st.data.dtype == want
    kind = scale_kind(recipe)
    assert (
        st.scale.dtype
        == {
            "fp32": mx.float32,
            "fp16": mx.float16,
            "bf16": mx.bfloat16,
            "e8m0": mx.uint8,
            "e4m3": mx.uint8,
        }[kind]
    )


@pytest.mark.parametrize("recipe", [breccia.MXFP8BlockScaling(), breccia.NVFP4BlockScaling(), breccia.INT4Scaling()])
def test_nonfinite(recipe: breccia.Recipe) -> None:
    x = np.ones((3, 64), np.float32)
    x[1, 40] = np.nan
    block = min(recipe.default_layout().block_k, 64)  # type: ignore[attr-defined]
    with pytest.raises(breccia.NonFiniteError, match=rf"block \(1, {40 // block}\)"):
        breccia.cast(mx.array(x), recipe)
    st = breccia.cast(mx.array(x), recipe, nonfinite="propagate")
    ref = breccia.cast(x, recipe, nonfinite="propagate")
    assert_same_bits(st, ref)


def test_dequantize_dtype_and_errors() -> None:
    st = breccia.cast(mx.random.normal((4, 64)), breccia.MXFP8BlockScaling())
    assert breccia.dequantize(st, dtype=mx.bfloat16).dtype == mx.bfloat16
    assert breccia.dequantize(st, dtype="float16").dtype == mx.float16
    with pytest.raises(breccia.DTypeError, match="dtype='int32'"):
        breccia.dequantize(st, dtype="int32")
    with pytest.raises(breccia.DTypeError, match="floating-point mlx array"):
        breccia.cast(mx.zeros((4, 64), dtype=mx.int32), breccia.MXFP8BlockScaling())


def test_delayed_scaling_history_and_empty() -> None:
    from breccia._history import AmaxHistory

    r = breccia.DelayedScaling(amax_history_len=4)
    x = make_x((5, 129), seed=3)
    h = AmaxHistory.for_recipe(r)
    for _ in range(3):
        st, h2 = breccia.cast(mx.array(x), r, history=h)
        ref, href = breccia.cast(x, r, history=h)
        assert_same_bits(st, ref)
        np.testing.assert_array_equal(np.asarray(h2.amaxes), np.asarray(href.amaxes))
        h, x = h2, x * 2
    for recipe in (breccia.MXFP4BlockScaling(), breccia.INT4Scaling(group_size=16, symmetric=False, signed=False)):
        e = breccia.cast(mx.zeros((0, 32)), recipe)
        assert_same_bits(e, breccia.cast(np.zeros((0, 32), np.float32), recipe))


def test_store_float_nan_bits_match_reference() -> None:
    """fp16/bf16 scales of NaN blocks carry the reference's NaN bytes (MLX's own conversion differs)."""
    from breccia._ops import NumpyOps
    from breccia.mlx import MLXOps

    pats = np.array([0x7FC00000, 0xFFC00000, 0x7FA00000, 0x7F812345, 0x3F800000, 0x7F800000], np.uint32)
    x = pats.view(np.float32)
    for kind in ("fp16", "bf16", "fp32"):
        got = MLXOps().store_float(mx.array(x), kind)
        with np.errstate(invalid="ignore"):
            want = NumpyOps().store_float(x, kind)
        np.testing.assert_array_equal(raw_bytes(got), raw_bytes(want), err_msg=kind)


@pytest.mark.parametrize("recipe", RECIPES, ids=recipe_id)
def test_cast_ste_forward_is_fake_quant_and_gradient_is_straight_through(recipe: breccia.Recipe) -> None:
    x = mx.array(make_x((6, 96), seed=11))
    w = mx.array(make_x((6, 96), seed=12))
    fq = breccia.cast_ste(x, recipe)
    np.testing.assert_array_equal(np.array(fq), np.asarray(breccia.dequantize(breccia.cast(np.array(x), recipe))))
    # d/dx Σ ste(x)·w = w exactly (the identity vjp), and d/dx Σ ste(x)² = 2·ste(x): the cotangent is not rounded
    g = mx.grad(lambda v: mx.sum(breccia.cast_ste(v, recipe) * w))(x)
    np.testing.assert_array_equal(np.array(g), np.array(w))
    _, g2 = mx.value_and_grad(lambda v: mx.sum(breccia.cast_ste(v, recipe) ** 2))(x)
    np.testing.assert_array_equal(np.array(g2), 2 * np.array(fq))
