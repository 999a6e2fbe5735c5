"""ScaledTensor, from_buffer, serialisation, matmul, requantize, delayed scaling, cast_ste."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from conftest import RECIPES, recipe_id
from test_cast import make_x

import breccia


def test_from_buffer_wraps_without_copy() -> None:
    data = np.zeros((4, 256), ml_dtypes.float8_e4m3fn)
    scale = np.ones((4, 2), np.float32)
    st = breccia.from_buffer(data, scale, breccia.Float8BlockScaling())
    assert st.data is data and st.scale is scale
    assert st.layout == breccia.PerBlockK(128, -1) and st.shape == (4, 256)
    assert st.nbytes == 4 * 256 + 4 * 2 * 4 and st.bits_per_value == pytest.approx(8.25)
    assert "Float8BlockScaling" in repr(st) and "float8_e4m3fn" in repr(st)


def test_packed_shape_inference_and_odd_rows() -> None:
    st = breccia.cast(make_x((3, 33), 0), breccia.MXFP4BlockScaling())
    assert np.asarray(st.data).shape == (3, 17) and st.shape == (3, 33)
    st2 = breccia.from_buffer(st.data, st.scale, st.recipe, shape=(3, 33))
    np.testing.assert_array_equal(breccia.dequantize(st2), breccia.dequantize(st))
    with pytest.raises(breccia.LayoutError):  # a scale grid that does not cover the 33 columns
        breccia.from_buffer(st.data, np.asarray(st.scale)[:, :1], st.recipe, shape=(3, 33))


def test_scaled_tensor_is_frozen_and_identity_hashed() -> None:
    st = breccia.cast(make_x((2, 64), 0), breccia.MXFP8BlockScaling())
    with pytest.raises(AttributeError):
        st.scale = None  # type: ignore[misc]
    other = st
    assert (
        hash(st) == hash(other) and st == other and st != breccia.cast(make_x((2, 64), 0), breccia.MXFP8BlockScaling())
    )


@pytest.mark.parametrize("recipe", RECIPES, ids=recipe_id)
def test_recipe_and_layout_dict_roundtrip(recipe: breccia.Recipe) -> None:
    assert breccia.recipe_from_dict(recipe.to_dict()) == recipe
    lay = recipe.default_layout(-1)
    assert breccia.layout_from_dict(lay.to_dict()) == lay
    assert hash(recipe) == hash(breccia.recipe_from_dict(recipe.to_dict()))


def test_layout_shapes() -> None:
    assert breccia.PerBlockK(128).scale_shape((4, 200)) == (4, 2)
    assert breccia.PerBlockK(32, axis=0).scale_shape((100, 7)) == (4, 7)
    assert breccia.PerChannel(-1).scale_shape((5, 9)) == (5, 1)
    assert breccia.PerChannel(0).scale_shape((5, 9)) == (1, 9)
    assert breccia.PerBlock2D(128, 128).scale_shape((2, 300, 129)) == (2, 3, 2)
    assert breccia.PerBlock2D(16, 16, axis=-2).block_shape((40, 8)) == (16, 8)
    assert breccia.PerTensor().scale_shape((3, 4)) == ()


# --- matmul
@pytest.mark.parametrize("recipe", [r for r in RECIPES if not isinstance(r, breccia.DelayedScaling)], ids=recipe_id)
def test_matmul_equals_dequantized_product(recipe: breccia.Recipe) -> None:
    a, w = make_x((5, 3, 160), 1), make_x((160, 24), 2)
    sa = breccia.cast(a, recipe)
    sw = breccia.cast(w, recipe, axis=0 if not isinstance(recipe.default_layout(), breccia.PerBlock2D) else -2)
    ref = np.matmul(breccia.dequantize(sa).astype(np.float64), breccia.dequantize(sw).astype(np.float64))
    for lhs, rhs in [(sa, sw), (a, sw), (sa, w)]:
        out = breccia.matmul(lhs, rhs)
        assert out.shape == (5, 3, 24) and out.dtype == np.float32
        l64 = breccia.dequantize(lhs) if isinstance(lhs, breccia.ScaledTensor) else lhs
        r64 = breccia.dequantize(rhs) if isinstance(rhs, breccia.ScaledTensor) else rhs
        exact = np.matmul(np.asarray(l64, np.float64), np.asarray(r64, np.float64))
        np.testing.assert_allclose(out, exact, rtol=1e-4, atol=1e-4 * np.abs(exact).max())
    np.testing.assert_allclose(breccia.matmul(sa, sw), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_matmul_vector_rhs_and_out_dtype() -> None:
    a = breccia.cast(make_x((4, 64), 0), breccia.MXFP8BlockScaling())
    v = make_x((64,), 1)
    assert breccia.matmul(a, v).shape == (4,)
    assert breccia.matmul(a, v, out_dtype="bfloat16").dtype == ml_dtypes.bfloat16


# --- requantize
def test_requantize_mxfp8_to_fp8_blocks_is_lossless() -> None:
    x = make_x((16, 512), 4)
    mx = breccia.cast(x, breccia.MXFP8BlockScaling())
    for target in [
        breccia.Float8BlockScaling(block_k=32),
        breccia.Float8BlockScaling(block_k=32, power_of_2_scales=True),
    ]:
        out = breccia.requantize(mx, target)
        assert out.recipe == target
        np.testing.assert_array_equal(breccia.dequantize(out), breccia.dequantize(mx))
        np.testing.assert_array_equal(np.asarray(out.data).view(np.uint8), np.asarray(mx.data).view(np.uint8))


def test_requantize_mxfp8_to_1x128_pow2_exact_where_representable() -> None:
    # Each 1x128 block spans four MX blocks; re-packing shifts codes to the largest of their exponents, which is
    # exact unless a code falls below E4M3's subnormal step. With equal MX exponents it always is.
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (8, 512)).astype(np.float32)
    x[:, ::32] = 1.0  # every MX block has amax 1 → the same E8M0 exponent
    mx = breccia.cast(x, breccia.MXFP8BlockScaling())
    out = breccia.requantize(mx, breccia.Float8BlockScaling(power_of_2_scales=True))
    np.testing.assert_array_equal(breccia.dequantize(out), breccia.dequantize(mx))
    np.testing.assert_array_equal(np.asarray(out.data).view(np.uint8), np.asarray(mx.data).view(np.uint8))
    # mixed exponents: still lossless wherever no code underflows; otherwise requantize re-casts (documented)
    mixed = breccia.cast(make_x((16, 512), 4), breccia.MXFP8BlockScaling())
    out2 = breccia.requantize(mixed, breccia.Float8BlockScaling(power_of_2_scales=True))
    ref = breccia.cast(breccia.dequantize(mixed), breccia.Float8BlockScaling(power_of_2_scales=True))
    np.testing.assert_array_equal(np.asarray(out2.data).view(np.uint8), np.asarray(ref.data).view(np.uint8))


def test_requantize_per_tensor_to_blocks_is_lossless() -> None:
    t = breccia.cast(make_x((8, 300), 5), breccia.Float8CurrentScaling())
    out = breccia.requantize(t, breccia.Float8BlockScaling())
    np.testing.assert_array_equal(breccia.dequantize(out), breccia.dequantize(t))
    np.testing.assert_array_equal(np.asarray(out.data).view(np.uint8), np.asarray(t.data).view(np.uint8))


def test_requantize_fp8_pow2_to_mxfp8_is_lossless_and_bits_match_cast() -> None:
    x = make_x((4, 256), 6)
    p2 = breccia.cast(x, breccia.Float8BlockScaling(block_k=32, power_of_2_scales=True))
    mx = breccia.requantize(p2, breccia.MXFP8BlockScaling())
    np.testing.assert_array_equal(breccia.dequantize(mx), breccia.dequantize(p2))
    direct = breccia.cast(x, breccia.MXFP8BlockScaling())
    np.testing.assert_array_equal(np.asarray(mx.scale).view(np.uint8), np.asarray(direct.scale).view(np.uint8))


def test_requantize_falls_back_when_not_representable() -> None:
    mx = breccia.cast(make_x((4, 256), 7), breccia.MXFP8BlockScaling())
    nv = breccia.requantize(mx, breccia.NVFP4BlockScaling())
    ref = breccia.cast(breccia.dequantize(mx), breccia.NVFP4BlockScaling())
    np.testing.assert_array_equal(np.asarray(nv.data), np.asarray(ref.data))
    assert breccia.requantize(mx, mx.recipe) is mx


# --- delayed scaling
def test_delayed_scaling_history() -> None:
    r = breccia.DelayedScaling(amax_history_len=3)
    h = breccia.AmaxHistory.for_recipe(r)
    x1, x2 = make_x((4, 64), 1), make_x((4, 64), 2) * 3
    st1, h = breccia.cast(x1, r, history=h)
    assert float(st1.scale) == 1.0  # empty history: TE starts from scale 1
    assert np.asarray(h.amaxes).tolist()[-1] == pytest.approx(float(np.abs(x1).max()))
    st2, h = breccia.cast(x2, r, history=h)
    assert float(st2.scale) == np.float32(np.abs(x1).max()) / np.float32(448)  # scale from step 1's amax
    st3, h = breccia.cast(x1, r, history=h)
    window = max(np.abs(x1).max(), np.abs(x2).max())
    assert float(st3.scale) == np.float32(window) / np.float32(448)  # the max over the window
    x3 = x1 / 10
    _, h = breccia.cast(x3, r, history=h)  # newest entry is now amax(x3)
    most_recent = breccia.DelayedScaling(amax_history_len=3, amax_compute_algo="most_recent")
    assert float(breccia.cast(x1, most_recent, history=h)[0].scale) == np.float32(np.abs(x3).max()) / 448


def test_delayed_without_history_is_current_scaling() -> None:
    x = make_x((4, 64), 1)
    a, c = breccia.cast(x, breccia.DelayedScaling()), breccia.cast(x, breccia.Float8CurrentScaling())
    np.testing.assert_array_equal(np.asarray(a.data).view(np.uint8), np.asarray(c.data).view(np.uint8))


def test_hybrid_format_uses_e5m2_for_gradients() -> None:
    r = breccia.Float8CurrentScaling(fp8_format="HYBRID")
    assert r.element.name == "E4M3" and r.grad_element.name == "E5M2"


def test_cast_ste_numpy_is_fake_quant() -> None:
    x = make_x((3, 64), 9)
    y = breccia.cast_ste(x, breccia.MXFP4BlockScaling())
    np.testing.assert_array_equal(y, breccia.dequantize(breccia.cast(x, breccia.MXFP4BlockScaling())))
    assert y.dtype == np.float32


def test_dequantize_output_dtypes() -> None:
    st = breccia.cast(make_x((2, 64), 0), breccia.MXFP8BlockScaling())
    assert breccia.dequantize(st, "bfloat16").dtype == ml_dtypes.bfloat16
    assert breccia.dequantize(st, np.float16).dtype == np.float16
