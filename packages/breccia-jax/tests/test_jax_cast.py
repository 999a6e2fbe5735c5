"""breccia-jax casts equal the numpy reference byte for byte, eagerly and under jit; pytree, vmap, sharding."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import breccia
from breccia._testing import RECIPES, assert_same_bits, axes_for, make_x, recipe_id

SHAPES = [(7,), (5, 129), (2, 3, 37)]  # awkward: 1-D, K not a multiple of any block, 3-D with odd K


def assert_same(st: breccia.ScaledTensor, ref: breccia.ScaledTensor) -> None:
    """Same bytes, and the same dtype names (jax float8 / e8m0 dtypes are the ml_dtypes ones numpy holds)."""
    assert_same_bits(st, ref)
    for name in ("data", "scale", "global_scale", "zero_point"):
        a, b = getattr(st, name), getattr(ref, name)
        if a is not None:
            assert str(a.dtype) == str(b.dtype), name


@pytest.mark.parametrize("recipe", [pytest.param(r, id=recipe_id(r)) for r in RECIPES])
def test_jit_bytes_equal_reference(recipe: breccia.Recipe) -> None:
    for shape in SHAPES:
        x = make_x(shape, seed=sum(shape))
        for axis in axes_for(recipe, len(shape)):
            st = jax.jit(lambda v, a=axis: breccia.cast(v, recipe, axis=a))(jnp.asarray(x))
            assert isinstance(st, breccia.ScaledTensor) and st.framework == "jax"
            ref = breccia.cast(x, recipe, axis=axis)
            assert_same(st, ref)
            y = jax.jit(breccia.dequantize)(st)
            assert y.dtype == jnp.float32
            np.testing.assert_array_equal(np.asarray(y), breccia.dequantize(ref))


@pytest.mark.parametrize("block_m", [1, 16])
def test_two_level_nvfp4_block_scales_exact(block_m: int) -> None:
    """``amax_b / 6 / g`` divides by a broadcast global scale: XLA would turn it into a reciprocal multiply and move
    block scales to the neighbouring E4M3 code (seen at this shape) without ``ArrayOps.div_blocks``."""
    recipe = breccia.NVFP4BlockScaling(block_m=block_m)
    x = make_x((2, 129, 130), seed=5)
    assert_same(jax.jit(lambda v: breccia.cast(v, recipe))(jnp.asarray(x)), breccia.cast(x, recipe))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=str)
@pytest.mark.parametrize(
    "recipe",
    [breccia.MXFP8BlockScaling(), breccia.MXFP4BlockScaling(), breccia.Float8BlockScaling(), breccia.INT4Scaling()],
    ids=recipe_id,
)
def test_half_inputs(recipe: breccia.Recipe, dtype: Any) -> None:
    x = jnp.asarray(make_x((17, 300), seed=1)).astype(dtype)
    host = np.asarray(x.astype(jnp.float32)).astype(ml_dtypes.bfloat16 if dtype == jnp.bfloat16 else np.float16)
    assert_same(jax.jit(lambda v: breccia.cast(v, recipe))(x), breccia.cast(host, recipe))


@pytest.mark.parametrize(
    "recipe", [breccia.MXFP8BlockScaling(), breccia.MXFP6BlockScaling(element="E2M3"), breccia.MXFP4BlockScaling()]
)
def test_eager_equals_reference(recipe: breccia.Recipe) -> None:
    x = make_x((5, 129), seed=2)
    assert_same(breccia.cast(jnp.asarray(x), recipe), breccia.cast(x, recipe))


def test_native_dtypes() -> None:
    st = breccia.cast(jnp.ones((4, 64)), breccia.MXFP8BlockScaling())
    assert st.data.dtype == jnp.float8_e4m3fn and st.scale.dtype == jnp.float8_e8m0fnu
    st = breccia.cast(jnp.ones((4, 64)), breccia.NVFP4BlockScaling())
    assert st.data.dtype == jnp.uint8 and st.data.shape == (4, 32) and st.scale.dtype == jnp.float8_e4m3fn


def test_nonfinite_policy() -> None:
    x = np.asarray(make_x((8, 300), seed=3))
    x[5, 260] = np.nan
    with pytest.raises(breccia.NonFiniteError, match=r"block \(5, 8\)"):
        breccia.cast(jnp.asarray(x), breccia.MXFP8BlockScaling())
    # under jit nothing can raise from a traced value: the cast propagates, bytes equal the reference's propagate
    st = jax.jit(lambda v: breccia.cast(v, breccia.MXFP8BlockScaling()))(jnp.asarray(x))
    assert_same(st, breccia.cast(x, breccia.MXFP8BlockScaling(), nonfinite="propagate"))
    assert np.isnan(np.asarray(breccia.dequantize(st))[5, 260])


def test_history_inside_jit_is_refused() -> None:
    r = breccia.DelayedScaling()
    h = breccia.AmaxHistory.for_recipe(r)
    with pytest.raises(breccia.RecipeError, match="outside the traced function"):
        jax.jit(lambda v: breccia.cast(v, r, history=h)[0])(jnp.ones((4, 8)))
    _st, h2 = breccia.cast(jnp.ones((4, 8)), r, history=h)
    assert float(np.asarray(h2.amaxes)[-1]) == 1.0


def test_bad_input_raises_core_errors() -> None:
    with pytest.raises(breccia.DTypeError, match="int32"):
        breccia.cast(jnp.ones((4, 32), jnp.int32), breccia.MXFP8BlockScaling())
    with pytest.raises(breccia.DTypeError, match="different frameworks"):
        breccia.matmul(jnp.ones((4, 32)), np.ones((32, 4), np.float32))


def test_pytree_jit_in_and_out_and_vmap() -> None:
    r = breccia.MXFP4BlockScaling()
    xs = make_x((3, 5, 70), seed=4)
    st = jax.jit(lambda v: breccia.cast(v, r))(jnp.asarray(xs))
    leaves, _tree = jax.tree_util.tree_flatten(st)
    assert len(leaves) == 2  # data, scale (None fields are empty subtrees)
    y = jax.jit(breccia.dequantize)(st)
    np.testing.assert_array_equal(np.asarray(y), breccia.dequantize(breccia.cast(xs, r)))
    # vmap over a stacked tensor: each slice dequantizes as the per-example cast does
    per = jax.vmap(breccia.dequantize)(st)
    np.testing.assert_array_equal(np.asarray(per), np.asarray(y))
    # a per-tensor cast under vmap yields per-example scales (a batched ScaledTensor, used inside vmap again)
    b = jax.vmap(lambda v: breccia.cast(v, breccia.Float8CurrentScaling(power_of_2_scales=True)))(jnp.asarray(xs))
    assert b.scale.shape == (3,) and b.shape == (3, 5, 70)
    back = jax.vmap(breccia.dequantize)(b)
    for i in range(3):
        ref = breccia.dequantize(breccia.cast(xs[i], breccia.Float8CurrentScaling(power_of_2_scales=True)))
        np.testing.assert_array_equal(np.asarray(back[i]), ref)


def test_scan_carries_a_scaled_tensor() -> None:
    r = breccia.Float8BlockScaling(block_k=32)
    st0 = breccia.cast(jnp.ones((4, 64)), r)

    def step(c: breccia.ScaledTensor, _: None) -> tuple[breccia.ScaledTensor, None]:
        return breccia.cast(breccia.dequantize(c) * 2.0, r), None

    out, _ = jax.lax.scan(step, st0, None, length=3)
    np.testing.assert_array_equal(np.asarray(breccia.dequantize(out)), np.full((4, 64), 8.0, np.float32))


def test_sharded_input_casts_to_the_same_bits() -> None:
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devs = jax.devices("cpu")  # the host mesh, also where a GPU is the default backend
    assert len(devs) == 8, "conftest must set --xla_force_host_platform_device_count=8 before jax is imported"
    mesh = Mesh(np.array(devs).reshape(4, 2), ("rows", "cols"))
    x = make_x((64, 256), seed=5)
    xs = jax.device_put(jnp.asarray(x), NamedSharding(mesh, PartitionSpec("rows", "cols")))
    for r in (
        breccia.MXFP8BlockScaling(),
        breccia.Float8CurrentScaling(power_of_2_scales=True),
        breccia.MXFP4BlockScaling(),
    ):
        st = jax.jit(lambda v, r=r: breccia.cast(v, r))(xs)
        assert_same(st, breccia.cast(x, r))
        assert len(st.data.sharding.device_set) > 1


def test_gpu_division_path_is_correctly_rounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fp64-quotient branch ``ieee_div`` takes off the CPU (XLA:GPU's fp32 division is not IEEE), forced here so
    CI runs it: quotients bit-equal numpy's IEEE fp32 division, and casts traced through it byte-equal the
    reference."""
    from breccia.jax import _ops

    monkeypatch.setattr(_ops, "_platform", lambda: "gpu")
    rng = np.random.default_rng(7)
    n = 1 << 16
    # normal operands and quotients: XLA:CPU flushes subnormals (the GPU, where this branch runs, does not — checked
    # there with exponents down to 2^-140); full 24-bit significands, so the rounding itself is exercised
    a = (rng.standard_normal(n) * np.exp2(rng.integers(-60, 60, n))).astype(np.float32)
    d = (rng.standard_normal(n) * np.exp2(rng.integers(-60, 60, n))).astype(np.float32)
    with np.errstate(all="ignore"):
        want = a / d
    got = np.asarray(jax.jit(_ops.ieee_div)(a, d))
    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))
    assert "f64" in jax.jit(_ops.ieee_div).lower(a, d).as_text()  # the branch under test, not the CPU one
    x = make_x((17, 300), seed=4)
    for r in (breccia.Float8CurrentScaling(), breccia.NVFP4BlockScaling(), breccia.INT4Scaling(symmetric=False)):
        assert_same(jax.jit(lambda v, r=r: breccia.cast(v, r))(jnp.asarray(x)), breccia.cast(x, r))
