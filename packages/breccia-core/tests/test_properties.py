"""Properties every recipe must have: error bounds, fixed points, zero blocks, non-finite policy."""

from __future__ import annotations

import re

import ml_dtypes
import numpy as np
import pytest
from conftest import RECIPES, recipe_id
from hypothesis import given, settings
from hypothesis import strategies as st
from spec import spec_cast
from test_cast import axes_for, make_x

import breccia
from breccia._recipes import scale_kind


def block_amax(x: np.ndarray, layout: breccia.Layout) -> np.ndarray:
    """Per-element amax of the element's block (float64), computed directly."""
    out = np.zeros(x.shape)
    bs = layout.block_shape(x.shape)
    grid = tuple(-(-n // b) for n, b in zip(x.shape, bs))
    for g in np.ndindex(*grid):
        sl = tuple(slice(i * b, (i + 1) * b) for i, b in zip(g, bs))
        out[sl] = np.max(np.abs(x[sl].astype(np.float64))) if x[sl].size else 0
    return out


def error_bound(recipe: breccia.Recipe, x: np.ndarray, layout: breccia.Layout) -> np.ndarray:
    """The largest |x − dequantize(cast(x))| the recipe's scale rule allows, per element.

    Derived from the recipe definitions in DESIGN.md §3: the block scale maps the block amax to (at most) fmax,
    rounding is RNE (half an ulp of the element format), MX power-of-two scales lose up to one binade, and
    NVFP4's E4M3 scale is itself rounded.
    """
    a = block_amax(x, layout)
    el = recipe.element
    if el.kind == "int":
        # the scale s' is rounded to its dtype (unit roundoff u, or an absolute half-step when subnormal); an
        # element's error is half a step plus qmax times the scale's rounding error
        u, half_sub, tiny = {
            "fp16": (2.0**-11, 2.0**-25, 2.0**-24),
            "bf16": (2.0**-8, 2.0**-134, 2.0**-133),
            "fp32": (2.0**-24, 2.0**-150, 2.0**-149),
        }[recipe.scale_dtype]
        span = el.qmax - el.qmin
        if recipe.zero_point_domain == "float":
            # MLX's rule: |s| is within ~8% of range/qmax (the edge of larger magnitude takes an integer code
            # ≥ qmax/2), so the far edge may clip by up to ~1.2 steps; |s| is floored at 1e-7; s, z, q·s and the
            # sum are each rounded to the scale dtype (≤ 10 u·amax in all, or absolute half-steps when subnormal)
            step = np.maximum(2 * a / span * 1.1, 1e-7)
            return 2 * step + 10 * u * a + 4 * (span + 1) * half_sub + 1e-30
        if recipe.symmetric:
            denom = el.qmax if recipe.symmetric_range == "qmax" else span / 2
            step = a / denom
        else:
            step = 2 * a / span
        bound = step * (0.5 + (span + 1) * u) + (span + 1) * half_sub + 1e-30
        return np.where(step < tiny, np.maximum(bound, a), bound)
    rel = 2.0 ** (el.emax - el.mbits - 1) / el.fmax  # half ulp of the top binade, per unit of amax
    if isinstance(recipe, (breccia.MXFP8BlockScaling, breccia.MXFP4BlockScaling, breccia.MXFP6BlockScaling)):
        if recipe.scale_rounding == "rceil":
            return 2 * rel * a + 1e-30  # scale up to 2x amax/fmax
        # floor: v can reach 2^(emax+1) and saturate at fmax
        return a * max(rel * 2, (2.0 ** (el.emax + 1) - el.fmax) / 2.0**el.emax) + 1e-30
    if isinstance(recipe, breccia.NVFP4BlockScaling):
        g = float(np.max(np.abs(x))) / 2688 if recipe.per_tensor_scale else 1.0
        # one-level: the E4M3 block scale saturates at 448, so |x| beyond 6·448 is clipped; a block whose scale
        # underflows E4M3 (amax/6/g < 2^-10) quantizes to zeros
        sbf = np.minimum(a / 6 / g, 448.0)
        div_hi = g * (sbf * (1 + 2.0**-4) + 2.0**-10)
        div_lo = g * np.maximum(0.0, np.minimum(sbf * (1 - 2.0**-4), sbf - 2.0**-10))
        bound = div_hi + np.maximum(a - 6 * div_lo, 0)  # half a top-binade step, plus what the clamp cuts off
        return np.where(a / 6 / g < 2.0**-9, np.maximum(bound, a), bound) + 1e-30
    if getattr(recipe, "power_of_2_scales", False):
        return 2 * rel * a + 1e-30
    eps = getattr(recipe, "amax_epsilon", 0.0)
    return rel * np.maximum(a, eps) * (1 + 2.0**-20) + 1e-30


def product_overflows(st_: breccia.ScaledTensor) -> np.ndarray:
    """Per element: whether ``qmax·|s|`` of its block is beyond the scale dtype (float zero points round ``q·s`` to
    that dtype before adding the zero point, so a wide fp16 block's product can overflow although the sum would not).
    """
    s = np.abs(np.asarray(st_.scale).astype(np.float64))
    for ax, b in enumerate(st_.layout.block_shape(st_.shape)):
        s = np.repeat(s, b, axis=ax)
    s = s[tuple(slice(0, n) for n in st_.shape)]
    return s * st_.recipe.element.qmax > float(ml_dtypes.finfo(np.asarray(st_.scale).dtype).max)


def fp16_scale_overflows(recipe: breccia.Recipe, x: np.ndarray, axis: int) -> bool:
    """Whether some block's scale, computed as the recipe defines it, is beyond fp16 (the oracle says)."""
    _, scales, _, zps = spec_cast(x, recipe, recipe.default_layout(axis - x.ndim if axis >= 0 else axis))
    return bool(np.any(np.isinf(scales)) or (zps is not None and np.any(np.isinf(zps))))  # float zero points too


def scale_out_of_range(st_: breccia.ScaledTensor) -> bool:
    """Whether some block scale is subnormal in its dtype (coarse rounding) or saturated (E4M3 448)."""
    s = np.asarray(st_.scale)
    if scale_kind(st_.recipe) in ("fp16", "bf16"):
        v = s.astype(np.float32)
        return bool(np.any((v > 0) & (v < float(ml_dtypes.finfo(s.dtype).tiny))))
    if scale_kind(st_.recipe) == "e4m3":
        v = s.astype(np.float32)
        return bool(np.any((v > 0) & (v < 2.0**-6)) or np.any(v == 448))
    return False


def bits(st_: breccia.ScaledTensor) -> list[bytes]:
    out = [
        np.ascontiguousarray(np.asarray(st_.data)).tobytes(),
        np.ascontiguousarray(np.asarray(st_.scale)).tobytes(),
    ]
    for extra in (st_.global_scale, st_.zero_point):
        if extra is not None:
            out.append(np.asarray(extra).tobytes())
    return out


# cast(dequantize(cast(x))) == cast(x) bit for bit, except where the recipe's rule is not a fixed point:
# MX rceil and power_of_2_scales (a block whose max rounds down to fmax/2 re-casts one binade lower: same
# values, other bits);
# INT half_range (amax/7.5 maps the max to 7.5 → clamped to 7, so the re-cast amax is smaller), asymmetric
# INT (the rounded range is not the original range) and two-level NVFP4 (the global scale follows the amax).
def fixed_point_kind(recipe: breccia.Recipe) -> str:
    if getattr(recipe, "scale_rounding", None) == "rceil" or getattr(recipe, "power_of_2_scales", False):
        return "values"  # both round the scale *up* to a power of two
    if recipe.element.kind == "int" and (not recipe.symmetric or recipe.symmetric_range == "half_range"):
        return "none"
    if isinstance(recipe, breccia.NVFP4BlockScaling) and recipe.per_tensor_scale:
        return "none"  # the global scale is recomputed from the dequantized amax, which the E4M3 scale rounded
    return "bits"


@pytest.mark.parametrize("recipe", RECIPES, ids=recipe_id)
@settings(max_examples=25)
@given(seed=st.integers(0, 2**20), rows=st.integers(1, 9), cols=st.integers(1, 300), heavy=st.booleans())
def test_error_within_bound_and_fixed_point(
    recipe: breccia.Recipe, seed: int, rows: int, cols: int, heavy: bool
) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.standard_t(3, (rows, cols)) if heavy else rng.standard_normal((rows, cols))).astype(np.float32)
    x *= np.float32(np.exp(rng.uniform(-20, 20)))
    for axis in axes_for(recipe, 2):
        if getattr(recipe, "scale_dtype", None) == "fp16" and fp16_scale_overflows(recipe, x, axis):
            # a legitimate refusal: the fp16 scale cannot hold this block's scale
            with pytest.raises(breccia.RecipeError, match="overflows the fp16 scale"):
                breccia.cast(x, recipe, axis=axis)
            continue
        s1 = breccia.cast(x, recipe, axis=axis)
        y = breccia.dequantize(s1)
        err = np.abs(x.astype(np.float64) - y)
        bound = error_bound(recipe, x, s1.layout)
        if getattr(recipe, "zero_point_domain", "int") == "float":  # round_T(q·s) can overflow T (as in MLX)
            bound = np.where(np.isinf(y) & product_overflows(s1), np.inf, bound)
        assert np.all(err <= bound), (float(np.max(err - bound)), recipe)
        if not np.all(np.isfinite(y)):
            continue  # only the overflowed products above: no re-cast of inf
        s2 = breccia.cast(y, recipe, axis=axis)
        kind = fixed_point_kind(recipe)
        if scale_out_of_range(s1):
            kind = "none"  # a block scale underflowed or saturated its dtype: outside the recipe's range
        if kind == "bits":
            assert bits(s2) == bits(s1)
        elif kind == "values":
            np.testing.assert_array_equal(breccia.dequantize(s2), y)


def test_fixed_point_exceptions_are_real() -> None:
    # Documented exception: rceil can change bits while keeping values (amax rounds down to fmax/2).
    x = np.zeros((1, 32), np.float32)
    x[0, 0] = 448 * 1.01 / 2  # amax/448 just above 1/2 → scale 1; 226.24 rounds to 224 = fmax/2
    r = breccia.MXFP8BlockScaling()
    s1 = breccia.cast(x, r)
    s2 = breccia.cast(breccia.dequantize(s1), r)
    assert bits(s1) != bits(s2)
    np.testing.assert_array_equal(breccia.dequantize(s1), breccia.dequantize(s2))


def test_zero_blocks_are_exact_zeros(recipe: breccia.Recipe) -> None:
    x = make_x((6, 256), seed=1)
    x[:, :128] = 0.0
    x[2] = 0.0
    for axis in axes_for(recipe, 2):
        st_ = breccia.cast(x, recipe, axis=axis)
        y = breccia.dequantize(st_)
        if getattr(recipe, "zero_point_domain", "int") == "float":
            # MLX's affine grid need not hold 0 (the zero point is the block's edge): only all-zero blocks are exact
            assert np.all(y[block_amax(x, st_.layout) == 0] == 0)
        else:
            assert np.all(y[x == 0] == 0)
        s = breccia._math.stored_scale_to_f32(breccia._reference.OPS, recipe, np.asarray(st_.scale), st_.global_scale)
        assert np.all(np.isfinite(s))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_raises_naming_the_block(recipe: breccia.Recipe, bad: float) -> None:
    x = make_x((8, 300), seed=2)
    x[5, 260] = bad
    layout = recipe.default_layout(-1)
    grid_idx = tuple(i // b for i, b in zip((5, 260), layout.block_shape(x.shape)))
    grid_idx = grid_idx if layout.scale_shape(x.shape) else ()
    with pytest.raises(breccia.NonFiniteError, match=rf"block {re.escape(str(grid_idx))}"):
        breccia.cast(x, recipe)


def test_nonfinite_propagate(recipe: breccia.Recipe) -> None:
    x = make_x((8, 300), seed=2)
    x[5, 260] = np.nan
    st_ = breccia.cast(x, recipe, nonfinite="propagate")
    y = breccia.dequantize(st_)
    if getattr(recipe, "zero_point_domain", "int") == "float":
        # MLX's affine rule (mx.quantize): the block's range skips NaN and NaN encodes as code 0, so the value is
        # lost, not propagated — the bytes equal MLX's (breccia-mlx's conformance tests compare them)
        assert np.isfinite(y[5, 260])
    else:
        assert np.isnan(y[5, 260])
    # blocks without NaN are untouched where the recipe's scope is per block
    layout = st_.layout
    if not isinstance(layout, breccia.PerTensor) and not recipe.has_global_scale:
        clean = breccia.dequantize(breccia.cast(np.where(np.isnan(x), 0, x), recipe))
        b = layout.block_shape(x.shape)
        mask = np.ones(x.shape, bool)
        mask[(5 // b[0]) * b[0] : (5 // b[0] + 1) * b[0], (260 // b[1]) * b[1] : (260 // b[1] + 1) * b[1]] = False
        np.testing.assert_array_equal(y[mask], clean[mask])


def test_scale_dtypes(recipe: breccia.Recipe) -> None:
    st_ = breccia.cast(make_x((4, 64), seed=0), recipe)
    want = {
        "fp32": "float32",
        "fp16": "float16",
        "bf16": "bfloat16",
        "e8m0": "float8_e8m0fnu",
        "e4m3": "float8_e4m3fn",
    }[scale_kind(recipe)]
    assert np.asarray(st_.scale).dtype.name == want
