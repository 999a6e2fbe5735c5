"""Test support shared by every backend's test suite: the recipe catalogue and adversarial inputs.

Backends (breccia-torch, -jax, -mlx, -triton, third parties) test themselves bit-exact against the numpy reference
on the same recipes and the same awkward shapes; keeping the catalogue here keeps those suites honest and alike.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ._layouts import PerBlock2D, PerTensor
from ._recipes import (
    DelayedScaling,
    Float8BlockScaling,
    Float8CurrentScaling,
    INT4Scaling,
    INT8Scaling,
    MXFP4BlockScaling,
    MXFP6BlockScaling,
    MXFP8BlockScaling,
    NVFP4BlockScaling,
    Recipe,
)

__all__ = [
    "AWKWARD_SHAPES",
    "RECIPES",
    "assert_same_bits",
    "axes_for",
    "make_x",
    "raw_bytes",
    "recipe_id",
    "rn32_sum",
]

RECIPES: list[Recipe] = [
    Float8CurrentScaling(),
    Float8CurrentScaling(fp8_format="E5M2"),
    Float8CurrentScaling(power_of_2_scales=True),
    Float8CurrentScaling(amax_epsilon=1e-3),
    DelayedScaling(),
    Float8BlockScaling(),
    Float8BlockScaling(block_k=32, fp8_format="E5M2"),
    Float8BlockScaling(block_m=128),
    Float8BlockScaling(block_k=16, block_m=8, power_of_2_scales=True),
    MXFP8BlockScaling(),
    MXFP8BlockScaling(fp8_format="E5M2", scale_rounding="floor"),
    MXFP8BlockScaling(scale_rounding="floor"),
    MXFP4BlockScaling(),
    MXFP4BlockScaling(scale_rounding="floor"),
    MXFP6BlockScaling(element="E2M3"),
    MXFP6BlockScaling(element="E3M2", scale_rounding="floor"),
    NVFP4BlockScaling(),
    NVFP4BlockScaling(block_m=16),
    NVFP4BlockScaling(per_tensor_scale=False),
    NVFP4BlockScaling(block_scale_min=2.0**-6, data_scaling="reciprocal"),
    NVFP4BlockScaling(per_tensor_scale=False, block_scale_min=2.0**-6, data_scaling="reciprocal"),
    INT4Scaling(),
    INT4Scaling(group_size=32, symmetric_range="half_range", scale_dtype="bf16"),
    INT4Scaling(group_size=16, symmetric=False, signed=False, scale_dtype="fp32"),
    INT4Scaling(group_size=-1, symmetric=False),
    INT8Scaling(),
    INT8Scaling(granularity="tensor"),
    INT8Scaling(granularity="group", group_size=64, symmetric=False, signed=False),
    # float zero points (MLX affine): negative scales, two roundings to the scale dtype on dequantize
    INT4Scaling(group_size=32, symmetric=False, signed=False, scale_dtype="bf16", zero_point_domain="float"),
    INT4Scaling(group_size=-1, symmetric=False, signed=False, scale_dtype="fp16", zero_point_domain="float"),
    INT8Scaling(granularity="group", group_size=64, symmetric=False, signed=False, zero_point_domain="float"),
]

AWKWARD_SHAPES: list[tuple[int, ...]] = [
    (1,),
    (7,),
    (1, 1),
    (3, 1),
    (5, 129),
    (130, 257),
    (2, 3, 37),
    (33, 16),
    (17, 300),
    (2, 129, 130),
]


def recipe_id(r: Recipe) -> str:
    return repr(r).replace(" ", "")


def make_x(shape: tuple[int, ...], seed: int, dtype: object = np.float32) -> np.ndarray:
    """Awkward data: per-row magnitudes spanning e^±4, 2% outliers ×30, and a zero block where there is room."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * np.exp(rng.uniform(-4, 4, (*shape[:-1], 1) if shape else ()))
    if x.size > 4:
        x.reshape(-1)[rng.integers(0, x.size, max(1, x.size // 50))] *= 30.0
    if x.ndim and x.shape[-1] > 40:
        x[..., 3:35] = 0.0
    return x.astype(dtype)  # type: ignore[call-overload,no-any-return]


def axes_for(recipe: Recipe, ndim: int) -> list[int]:
    """The contraction axes worth testing for a recipe on an ``ndim`` tensor."""
    lay = recipe.default_layout()
    if isinstance(lay, PerTensor):
        return [-1]
    if isinstance(lay, PerBlock2D):
        return [-1, -2] if ndim >= 2 else []
    return [-1, 0] if ndim >= 1 else []


def raw_bytes(a: Any) -> np.ndarray:
    """The bytes of a numpy, torch, jax or mlx buffer as flat uint8, for byte-for-byte comparison.

    Frameworks are recognised by the array's type and reached through ``sys.modules`` (never imported here): a torch
    float8 tensor has no numpy view and an mlx bfloat16 array no numpy dtype, so both are re-viewed as integers first.
    """
    if a is None:
        return np.zeros(0, np.uint8)
    mod = type(a).__module__.split(".", 1)[0]
    if mod == "torch":
        t = a.detach().cpu().contiguous().reshape(-1)
        return t.view(sys.modules["torch"].uint8).numpy() if t.numel() else np.zeros(0, np.uint8)
    if mod == "mlx":
        mx = sys.modules["mlx.core"]
        a = np.array(a.view(mx.uint16) if a.dtype == mx.bfloat16 else a)
    arr = np.ascontiguousarray(np.asarray(a))
    return arr.reshape(-1).view(np.uint8)


def assert_same_bits(st: Any, ref: Any) -> None:
    """Two ScaledTensors (any frameworks) hold the same recipe, layout, shape and bytes in every buffer."""
    assert st.shape == ref.shape and st.layout == ref.layout and st.recipe == ref.recipe, (st, ref)
    for name in ("data", "scale", "global_scale", "zero_point"):
        a, b = getattr(st, name), getattr(ref, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert tuple(a.shape) == tuple(b.shape), (name, tuple(a.shape), tuple(b.shape))
            np.testing.assert_array_equal(raw_bytes(a), raw_bytes(b), err_msg=name)


def rn32_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """fp32 ``RN(a + b)`` of float64 arrays holding exact values, rounded once, as a GPU FFMA rounds its exact
    ``x·y + z`` (pass the product, exact in float64, as ``a``). The float64 sum ``s`` can land on the wrong fp32 side
    only where it is itself an fp32 rounding midpoint and not the exact sum; there the TwoSum error says which way
    the exact sum lies, and ``s`` nudged one float64 ulp that way rounds correctly. Used to check fast-division
    sequences of the GPU kernels in exact arithmetic (breccia-triton's tests, ``benchmarks/verify_*.py``)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    f = s.astype(np.float32)
    fd = f.astype(np.float64)
    toward = np.where(s > fd, np.float32(np.inf), np.float32(-np.inf)).astype(np.float32)
    mid = (fd + np.nextafter(f, toward).astype(np.float64)) * 0.5
    at_mid = (s == mid) & (e != 0) & (fd != s)
    nudged = np.nextafter(s, np.where(e > 0, np.inf, -np.inf)).astype(np.float32)
    out: np.ndarray = np.where(at_mid, nudged, f)
    return out
