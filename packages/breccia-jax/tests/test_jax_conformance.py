"""JAX's own block quantizer — the one behind ``jax.nn.scaled_matmul`` — produces breccia's bytes: MXFP8 with the
default ``rceil`` rule, and two-level NVFP4 with ``global_scale = amax / (448·6)``."""

from __future__ import annotations

import numpy as np
import pytest

import breccia

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
quant = pytest.importorskip("jax._src.cudnn.scaled_matmul_stablehlo")  # private: skip if JAX moves it

FP4 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], np.float32)


def _split(out: object) -> tuple[np.ndarray, np.ndarray]:
    q, s = out if isinstance(out, tuple) else (out, None)
    assert s is not None, "this JAX's quantize does not return its scales"
    return np.asarray(q), np.asarray(s)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mxfp8_matches_jax(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((2, 64, 256)) * rng.uniform(0.01, 100)).astype(np.float32)
    cfg = quant.BlockScaleConfig(
        mode="mxfp8",
        block_size=32,
        data_type=jnp.float8_e4m3fn,
        scale_type=jnp.float8_e8m0fnu,
        global_scale=None,
        infer_only=False,
    )
    q, s = _split(quant.quantize(jnp.asarray(x), cfg))
    st = breccia.cast(x, breccia.MXFP8BlockScaling())
    np.testing.assert_array_equal(q.view(np.uint8), np.asarray(st.data).view(np.uint8))
    np.testing.assert_array_equal(s.view(np.uint8).reshape(-1), np.asarray(st.scale).view(np.uint8).reshape(-1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nvfp4_matches_jax(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((2, 64, 256)) * rng.uniform(0.01, 100)).astype(np.float32)
    g = np.float32(np.float32(np.abs(x).max()) / np.float32(2688.0))
    cfg = quant.BlockScaleConfig(
        mode="nvfp4",
        block_size=16,
        data_type=jnp.float4_e2m1fn,
        scale_type=jnp.float8_e4m3fn,
        global_scale=jnp.asarray(g),
        infer_only=False,
    )
    q, s = _split(quant.quantize(jnp.asarray(x), cfg))
    st = breccia.cast(x, breccia.NVFP4BlockScaling())
    assert float(st.global_scale) == float(g)
    packed = np.asarray(st.data)
    codes = np.stack([packed & 0xF, packed >> 4], -1).reshape(x.shape)
    values = np.where(codes & 8, -1.0, 1.0).astype(np.float32) * FP4[codes & 7]
    np.testing.assert_array_equal(q.astype(np.float32), values)  # JAX holds float4 values, breccia packed codes
    np.testing.assert_array_equal(s.view(np.uint8).reshape(-1), np.asarray(st.scale).view(np.uint8).reshape(-1))
