"""Conformance with MLX itself: conversion to/from ``mx.quantize`` output is lossless, and matmul agrees."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

import breccia
from breccia._testing import make_x, raw_bytes
from breccia.mlx import from_mlx_quantized, mlx_mode, to_mlx_quantized

FLOAT_MODES = ["mxfp8", "mxfp4", "nvfp4", "nvfp4-global"]
DTYPES = [mx.float32, mx.bfloat16, mx.float16]


def weight(n: int = 48, k: int = 256, seed: int = 0, dtype: mx.Dtype = mx.float32) -> mx.array:
    return mx.array(make_x((n, k), seed=seed)).astype(dtype)


def mlx_quantize(w: mx.array, mode: str) -> tuple[tuple[mx.array, ...], dict[str, object]]:
    """``mx.quantize`` for a mode name ("nvfp4-global": with the tensor amax as MLX's global_scale)."""
    if mode == "nvfp4-global":
        g = mx.max(mx.abs(w.astype(mx.float32)))
        return tuple(mx.quantize(w, mode="nvfp4", global_scale=g)), {"mode": "nvfp4", "global_scale": g}
    return tuple(mx.quantize(w, mode=mode)), {"mode": mode}


def same_bits(a: mx.array, b: mx.array) -> None:
    np.testing.assert_array_equal(np.array(a.astype(mx.float32)).view(np.uint32), np.array(b).view(np.uint32))


@pytest.mark.parametrize("mode", FLOAT_MODES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_from_mlx_dequantizes_exactly(mode: str, dtype: mx.Dtype) -> None:
    w = weight(dtype=dtype)
    q, kw = mlx_quantize(w, mode)
    st = from_mlx_quantized(*q, **kw)  # type: ignore[arg-type]
    want = mx.dequantize(*q, **kw, dtype=mx.float32)  # type: ignore[arg-type]
    same_bits(want, breccia.dequantize(st))
    back = to_mlx_quantized(st)  # and back to MLX, byte for byte
    assert back.mode == kw["mode"]
    np.testing.assert_array_equal(np.array(back.w_q), np.array(q[0]))
    np.testing.assert_array_equal(np.array(back.scales), np.array(q[1]))
    # MLX's global_scale (an amax) is recovered up to the amaxes that give the same amax/2688: same values
    assert (back.global_scale is None) == ("global_scale" not in kw)
    again = mx.dequantize(back.w_q, back.scales, global_scale=back.global_scale, **back.kwargs, dtype=mx.float32)
    same_bits(again, breccia.dequantize(st))


@pytest.mark.parametrize("mode", FLOAT_MODES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cast_bytes_vs_mx_quantize(mode: str, dtype: mx.Dtype) -> None:
    """breccia.cast with the matching recipe vs mx.quantize (measured; docs/mlx.md has the rates).

    Equal: MXFP8 data and scales for every input dtype; MXFP4 and one-level NVFP4 scales for every input dtype;
    two-level NVFP4 scales for fp32 input (MLX computes them in the input dtype, so bf16/fp16 inputs differ in
    ~1% of blocks); FP4 *values* for fp32 input. FP4 codes differ where MLX writes +0 for small negatives and, at
    exact midpoints (common with bf16 input), where MLX rounds towards zero instead of to even."""
    w = weight(64, 512, seed=7, dtype=dtype)
    q, _kw = mlx_quantize(w, mode)
    recipe = {
        "mxfp8": breccia.MXFP8BlockScaling(),
        "mxfp4": breccia.MXFP4BlockScaling(),
        "nvfp4": breccia.NVFP4BlockScaling(per_tensor_scale=False),
        "nvfp4-global": breccia.NVFP4BlockScaling(),
    }[mode]
    mine = to_mlx_quantized(breccia.cast(w, recipe))
    if mode != "nvfp4-global" or dtype == mx.float32:
        np.testing.assert_array_equal(np.array(mine.scales), np.array(q[1]), err_msg="scales")
    if mode == "mxfp8":
        np.testing.assert_array_equal(np.array(mine.w_q), np.array(q[0]), err_msg="data")
        return
    if dtype != mx.float32:
        return
    a, b = fp4_values(mine.w_q), fp4_values(q[0])
    np.testing.assert_array_equal(a, b)
    differ = nibbles(mine.w_q) != nibbles(q[0])
    assert np.all(a[differ] == 0)  # only the sign of zero


def nibbles(w_q: mx.array) -> np.ndarray:
    b = np.array(w_q).view(np.uint8)
    return np.stack([b & 15, b >> 4], axis=-1).reshape(b.shape[0], -1)


def fp4_values(w_q: mx.array) -> np.ndarray:
    from breccia._formats import decode_table

    return decode_table("E2M1")[nibbles(w_q)]


@pytest.mark.parametrize("mode", ["mxfp4", "nvfp4"])
def test_fp4_ties_differ_from_mlx(mode: str) -> None:
    """Documented departure: at exact midpoints MLX rounds FP4 towards the smaller magnitude, breccia to even
    (DESIGN.md §5). If this test fails, MLX changed its rounding and the departure note in docs/mlx.md is stale."""
    mids = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0] * 4, np.float32)
    w = mx.array(np.stack([mids, -mids]))
    rec = breccia.MXFP4BlockScaling() if mode == "mxfp4" else breccia.NVFP4BlockScaling(per_tensor_scale=False)
    mine = fp4_values(to_mlx_quantized(breccia.cast(w, rec)).w_q)[0, :8]
    theirs = fp4_values(mx.quantize(w, mode=mode)[0])[0, :8]
    np.testing.assert_array_equal(mine, [0, 1, 1, 2, 2, 4, 4, 6])  # half to even
    np.testing.assert_array_equal(theirs, [0, 0.5, 1, 1.5, 2, 3, 4, 6])  # half towards zero


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group", [32, 64, 128])
@pytest.mark.parametrize("sym", [True, False])
def test_int_to_affine_is_lossless(bits: int, group: int, sym: bool) -> None:
    w = weight(32, 256, seed=bits + group)
    if bits == 4:
        recipe: breccia.Recipe = breccia.INT4Scaling(group_size=group, symmetric=sym, signed=sym)
    else:
        recipe = breccia.INT8Scaling(
            granularity="group", group_size=group, symmetric=sym, signed=sym, scale_dtype="fp16"
        )
    st = breccia.cast(w, recipe)
    q = to_mlx_quantized(st)
    assert q.mode == "affine" and q.bits == bits and q.group_size == group and q.biases is not None
    got = mx.dequantize(q.w_q, q.scales, q.biases, **q.kwargs, dtype=mx.float32)
    same_bits(got, breccia.dequantize(st))
    back = from_mlx_quantized(q.w_q, q.scales, q.biases, **q.kwargs)  # exact biases convert back
    same_bits(breccia.dequantize(back), breccia.dequantize(st))


def affine_recipe(bits: int, group: int, dtype: mx.Dtype) -> breccia.Recipe:
    """The breccia recipe whose cast is ``mx.quantize(mode="affine")`` (float zero points, scales in ``dtype``)."""
    kind = {mx.float32: "fp32", mx.bfloat16: "bf16", mx.float16: "fp16"}[dtype]
    kw: dict[str, object] = dict(signed=False, symmetric=False, zero_point_domain="float", scale_dtype=kind)
    if bits == 4:
        return breccia.INT4Scaling(group_size=group, **kw)  # type: ignore[arg-type]
    return breccia.INT8Scaling(granularity="group", group_size=group, **kw)  # type: ignore[arg-type]


def same_bytes(a: mx.array, b: mx.array, what: str) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape, (what, a.dtype, b.dtype, a.shape, b.shape)
    np.testing.assert_array_equal(raw_bytes(a), raw_bytes(b), err_msg=what)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group", [32, 64, 128])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_mlx_affine_round_trips_exactly(bits: int, group: int, dtype: mx.Dtype) -> None:
    """MLX → breccia → MLX: dequantize equals ``mx.dequantize`` bit for bit (fp32 and the scale dtype), and the
    re-pack gives MLX's bytes back."""
    for seed in range(3):
        w = weight(40, 384, seed=seed * 10 + bits + group, dtype=dtype)
        q = mx.quantize(w, group_size=group, bits=bits, mode="affine")
        st = from_mlx_quantized(*q, mode="affine", group_size=group, bits=bits)
        assert st.recipe == affine_recipe(bits, group, dtype)
        want = mx.dequantize(*q, group_size=group, bits=bits, mode="affine", dtype=mx.float32)
        same_bits(want, breccia.dequantize(st))
        native = mx.dequantize(*q, group_size=group, bits=bits, mode="affine")  # in the scale dtype
        same_bytes(native, breccia.dequantize(st, dtype=dtype), "dequantize in the scale dtype")
        back = to_mlx_quantized(st)
        assert back.kwargs == {"mode": "affine", "group_size": group, "bits": bits}
        for name, a, b in zip(("w_q", "scales", "biases"), back[:3], q):
            same_bytes(a, b, name)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group", [32, 64, 128])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cast_equals_mx_quantize_affine(bits: int, group: int, dtype: mx.Dtype) -> None:
    """breccia.cast with the float-domain recipe is ``mx.quantize(mode="affine")`` byte for byte — on MLX arrays
    and through the numpy reference."""
    w = weight(48, 512, seed=bits * group, dtype=dtype)
    q = mx.quantize(w, group_size=group, bits=bits, mode="affine")
    recipe = affine_recipe(bits, group, dtype)
    mine = to_mlx_quantized(breccia.cast(w, recipe))
    for name, a, b in zip(("w_q", "scales", "biases"), mine[:3], q):
        same_bytes(a, b, name)
    ref = breccia.cast(np.array(w.astype(mx.float32)), recipe)
    for name, a, b in (("data", ref.data, q[0]), ("scale", ref.scale, q[1]), ("zero_point", ref.zero_point, q[2])):
        np.testing.assert_array_equal(raw_bytes(a), raw_bytes(b), err_msg=name)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_affine_awkward_groups_match_mlx(bits: int, dtype: mx.Dtype) -> None:
    """Zero, constant, tiny, one-sided and non-finite groups (NaN, all-NaN, ±Inf, NaN with Inf, only +Inf):
    breccia.cast(nonfinite="propagate") gives MLX's bytes, and dequantize MLX's values."""
    x = np.random.default_rng(bits).standard_normal((16, 64)).astype(np.float32)
    x[0] = 0.0
    x[1, :32], x[2, :32], x[3, :32], x[4, :32] = 1.5, -3.0, 1e-9, 1e-30
    x[5, :32] = np.abs(x[5, :32])
    x[6, :32] = -np.abs(x[6, :32])
    x[7, :16], x[7, 16:32] = 2.0, -2.0
    x[8, 3] = np.nan
    x[9, :32] = np.nan
    x[10, 5] = np.inf
    x[11, 7] = -np.inf
    x[12, 0], x[12, 1] = np.nan, np.inf
    x[13, :32] = np.inf
    x[14, :32] = -np.inf
    w = mx.array(x).astype(dtype)
    q = mx.quantize(w, group_size=32, bits=bits, mode="affine")
    st = breccia.cast(w, affine_recipe(bits, 32, dtype), nonfinite="propagate")
    mine = to_mlx_quantized(st)
    same_bytes(mine.w_q, q[0], "w_q")
    for name, a, b in (("scales", mine.scales, q[1]), ("biases", mine.biases, q[2])):
        same_bits_or_nan(a, b, name)
    want = mx.dequantize(*q, group_size=32, bits=bits, mode="affine", dtype=mx.float32)
    same_bits_or_nan(want, breccia.dequantize(from_mlx_quantized(*q, group_size=32, bits=bits)), "from MLX")
    same_bits_or_nan(want, breccia.dequantize(st), "cast")


def same_bits_or_nan(a: mx.array, b: mx.array, what: str) -> None:
    """Bit-equal, except that a NaN may differ in sign: the sign of a default NaN is the CPU's (x86 sets it, ARM
    does not) and MLX's bfloat16 conversion canonicalises it, so NaN scales match as NaN."""
    x, y = np.array(a.astype(mx.float32)), np.array(b.astype(mx.float32))
    np.testing.assert_array_equal(np.isnan(x), np.isnan(y), err_msg=what)
    ok = ~np.isnan(x)
    np.testing.assert_array_equal(x[ok].view(np.uint32), y[ok].view(np.uint32), err_msg=what)


def test_affine_bias_mismatch_is_refused() -> None:
    q = mx.quantize(weight(), group_size=64, bits=4, mode="affine")
    with pytest.raises(breccia.LayoutError, match="biases must match the scales' dtype"):
        from_mlx_quantized(q[0], q[1], q[2].astype(mx.float16), group_size=64, bits=4)
    with pytest.raises(breccia.LayoutError, match="needs biases"):
        from_mlx_quantized(q[0], q[1], None, group_size=64, bits=4)


def test_affine_fp32_scales_refused() -> None:
    """fp32 scales: ``scale·q + bias`` rounds differently from ``(q − zp)·s`` on real data, so it is refused."""
    for recipe in (
        breccia.INT4Scaling(group_size=64, symmetric=False, signed=False, scale_dtype="fp32"),
        breccia.INT4Scaling(group_size=64, scale_dtype="fp32"),
    ):
        with pytest.raises(breccia.RecipeError, match="scale_dtype='fp16'"):
            to_mlx_quantized(breccia.cast(weight(), recipe))


def test_unconvertible_errors() -> None:
    with pytest.raises(breccia.RecipeError, match="no MLX quantized form"):
        to_mlx_quantized(breccia.cast(weight(), breccia.Float8BlockScaling()))
    with pytest.raises(breccia.LayoutError, match="multiple of group_size=32"):
        to_mlx_quantized(breccia.cast(weight(4, 100), breccia.MXFP8BlockScaling()))
    with pytest.raises(breccia.LayoutError, match="PerBlockK\\(axis=-1\\)"):
        to_mlx_quantized(breccia.cast(weight(64, 64), breccia.MXFP8BlockScaling(), axis=0))
    with pytest.raises(breccia.RecipeError, match="mode='fp3'"):
        from_mlx_quantized(*mx.quantize(weight(), mode="mxfp8"), mode="fp3")
    assert mlx_mode(breccia.MXFP8BlockScaling(fp8_format="E5M2")) is None


RECIPES = [
    breccia.MXFP8BlockScaling(),
    breccia.MXFP4BlockScaling(),
    breccia.NVFP4BlockScaling(),
    breccia.NVFP4BlockScaling(per_tensor_scale=False),
    breccia.INT4Scaling(group_size=64),
    breccia.INT4Scaling(group_size=32, symmetric=False, signed=False),
    breccia.INT8Scaling(granularity="group", group_size=128, scale_dtype="bf16"),
    breccia.INT4Scaling(group_size=64, symmetric=False, signed=False, zero_point_domain="float", scale_dtype="bf16"),
    breccia.INT8Scaling(granularity="group", group_size=32, symmetric=False, signed=False, zero_point_domain="float"),
]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.name)
def test_matmul_uses_quantized_matmul(recipe: breccia.Recipe, monkeypatch: pytest.MonkeyPatch) -> None:
    """matmul(x, W) with W [K, N] blocked along K: the fused path is taken and agrees with dequantize + matmul."""
    x = weight(4, 256, seed=1)  # few rows: the CPU fused path pays for every recipe here
    w = weight(256, 96, seed=2)
    st = breccia.cast(w, recipe, axis=0)
    calls = []
    real = mx.quantized_matmul

    def spy(*a: object, **k: object) -> mx.array:
        calls.append(k["mode"])
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(mx, "quantized_matmul", spy)
    got = breccia.matmul(x, st)
    assert calls, "fused path not taken"
    ref = np.array(x) @ fused_weight_values(breccia.cast(np.array(w), recipe, axis=0))
    np.testing.assert_allclose(np.array(got), ref, rtol=2e-5, atol=2e-5 * float(np.abs(ref).max()))
    assert got.dtype == mx.float32 and breccia.matmul(x, st, out_dtype=mx.bfloat16).dtype == mx.bfloat16


def fused_weight_values(st: breccia.ScaledTensor) -> np.ndarray:
    """The weight as the fused kernel sees it: ``dequantize``, except that float zero points (MLX affine) are
    applied in fp32 — ``quantized_matmul`` runs in x's dtype, so ``s·q + z`` is not rounded to the bf16/fp16 scale
    dtype as ``breccia.dequantize`` (and ``mx.dequantize``) round it."""
    if getattr(st.recipe, "zero_point_domain", "int") != "float":
        return np.asarray(breccia.dequantize(st))
    from breccia._formats import unpack_nibbles

    k, n = st.shape
    raw = np.asarray(st.data)
    q = unpack_nibbles(raw, n) if st.recipe.element.storage == "packed4" else raw
    g = k // np.asarray(st.scale).shape[0]
    s = np.repeat(np.asarray(st.scale).astype(np.float32), g, axis=0)
    z = np.repeat(np.asarray(st.zero_point).astype(np.float32), g, axis=0)
    return np.asarray(q, np.float32) * s + z


def test_matmul_many_rows_on_cpu_dequantizes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many rows on the CPU: dequantize + matmul (faster there; see _CPU_FUSED_MAX_ROWS), same result."""
    monkeypatch.setattr(mx, "quantized_matmul", None)  # would raise if called
    x, w = weight(65, 256, seed=1), weight(256, 32, seed=2)
    st = breccia.cast(w, breccia.MXFP8BlockScaling(), axis=0)
    ref = np.array(x) @ breccia.dequantize(breccia.cast(np.array(w), breccia.MXFP8BlockScaling(), axis=0))
    np.testing.assert_allclose(np.array(breccia.matmul(x, st)), ref, rtol=1e-5, atol=1e-4)


def test_matmul_fallback_dequantizes() -> None:
    x, w = weight(3, 100, seed=4), weight(100, 20, seed=5)
    for recipe in (breccia.Float8BlockScaling(), breccia.MXFP8BlockScaling()):  # not native / K not a group multiple
        st = breccia.cast(w, recipe, axis=0)
        ref = np.array(x) @ breccia.dequantize(breccia.cast(np.array(w), recipe, axis=0))
        np.testing.assert_allclose(np.array(breccia.matmul(x, st)), ref, rtol=1e-5, atol=1e-5)
    a = breccia.cast(x, breccia.MXFP8BlockScaling())
    np.testing.assert_allclose(
        np.array(breccia.matmul(a, w)),
        breccia.dequantize(breccia.cast(np.array(x), breccia.MXFP8BlockScaling())) @ np.array(w),
        rtol=1e-5,
        atol=1e-5,
    )
