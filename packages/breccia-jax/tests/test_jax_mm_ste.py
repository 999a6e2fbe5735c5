"""matmul (fused FP8 path and dequantize fallback) within fp32-accumulation tolerance; cast_ste gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import breccia
from breccia._testing import make_x
from breccia.jax._mm import fused_plan

CASES = [
    (breccia.Float8CurrentScaling(), breccia.Float8CurrentScaling(), None, None, True),
    (
        breccia.Float8CurrentScaling(),
        breccia.Float8CurrentScaling(),
        breccia.PerChannel(-1),
        breccia.PerChannel(0),
        True,
    ),
    (breccia.Float8BlockScaling(), breccia.Float8BlockScaling(block_m=128), None, None, True),
    (breccia.Float8BlockScaling(block_k=32), breccia.Float8BlockScaling(), None, None, True),
    (breccia.MXFP8BlockScaling(), breccia.MXFP8BlockScaling(), None, None, True),
    (breccia.MXFP8BlockScaling(fp8_format="E5M2"), breccia.MXFP8BlockScaling(), None, None, True),
    (breccia.MXFP4BlockScaling(), breccia.MXFP8BlockScaling(), None, None, False),
    (breccia.NVFP4BlockScaling(), breccia.INT4Scaling(), None, None, False),
]


@pytest.mark.parametrize(("ra", "rb", "la", "lb", "fused"), CASES)
def test_matmul_close_to_fp64(
    ra: breccia.Recipe, rb: breccia.Recipe, la: breccia.Layout | None, lb: breccia.Layout | None, fused: bool
) -> None:
    a_np, b_np = make_x((2, 9, 300), seed=1), make_x((300, 40), seed=2)
    a = breccia.cast(jnp.asarray(a_np), ra, layout=la)
    b = breccia.cast(jnp.asarray(b_np), rb, layout=lb, axis=0)
    assert (fused_plan(a, b) is not None) == fused
    out = np.asarray(jax.jit(breccia.matmul)(a, b))
    da = np.asarray(breccia.dequantize(a), np.float64)
    db = np.asarray(breccia.dequantize(b), np.float64)
    ref = da @ db
    bound = 300 * 2.0**-23 * (np.abs(da) @ np.abs(db)) + 1e-30
    assert out.shape == (2, 9, 40) and out.dtype == np.float32
    assert np.all(np.abs(out - ref) <= bound)


def test_matmul_plain_and_out_dtype() -> None:
    a, b = jnp.asarray(make_x((4, 64), 1)), jnp.asarray(make_x((64, 8), 2))
    st = breccia.cast(b, breccia.MXFP8BlockScaling(), axis=0)
    out = breccia.matmul(a, st, out_dtype="bfloat16")
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(a @ breccia.dequantize(st)), rtol=1e-2)


def test_cast_ste_forward_and_identity_gradient() -> None:
    r = breccia.MXFP4BlockScaling()
    x = jnp.asarray(make_x((6, 70), 3))
    y = breccia.cast_ste(x, r)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(breccia.dequantize(breccia.cast(x, r))))
    g = jax.grad(lambda v: jnp.sum(breccia.cast_ste(v, r) * 3.0))(x)
    np.testing.assert_array_equal(np.asarray(g), np.full(x.shape, 3.0, np.float32))
    gj = jax.jit(jax.grad(lambda v: jnp.sum(breccia.cast_ste(v, r, axis=0) ** 2)))(x)
    yq = breccia.cast_ste(x, r, axis=0)
    np.testing.assert_array_equal(np.asarray(gj), 2 * np.asarray(yq))
    assert breccia.cast_ste(x.astype(jnp.bfloat16), r).dtype == jnp.bfloat16
