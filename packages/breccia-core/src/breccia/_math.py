"""The recipe math, written once (DESIGN.md §3, §5, §6).

Every function takes an :class:`~breccia._ops.ArrayOps` and arrays of that backend, and uses only fp32/int32
arithmetic with Python operators plus ``ops`` primitives. The numpy reference, torch, jax and mlx all run *this*
code, which is why their bytes agree. Arrays here are in *split* form: each blocked axis ``i`` of the logical tensor
is split into ``(n_i / b_i, b_i)`` and the ``b_i`` axes are the reduction axes; scale grids keep those axes as 1.

Element encoding (:func:`encode_float`) is branch-free fp32/int32 arithmetic (no ``where``): the FPU rounds
to the target grid, then a re-biasing multiply turns the value's bit pattern into the code. Inputs are pre-clamped
to ±fmax, so it never overflows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._errors import RecipeError
from ._formats import ElementFormat, get_format
from ._ops import ArrayOps
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
    scale_kind,
)

__all__ = [
    "Scales",
    "affine_stats",
    "compute_scales",
    "dequant_values",
    "encode",
    "encode_float",
    "is_float_zp",
    "pow2_ceil_exponent",
    "refuse_multiplier_overflow",
    "round_to_grid",
    "scale_overflow",
    "store_zero_point",
]

Array = Any
_E4M3 = get_format("E4M3")
_TWO_M127_BITS = 0x00400000  # fp32 bit pattern of 2^-127 (a subnormal)
_SIGN = -0x80000000  # int32 with only the sign bit set
#: the smallest positive value of each integer-recipe scale dtype: a block whose scale rounds to 0 in its dtype
#: divides by this instead (its codes are then the clamp's). Fast paths specialise on these same values.
ZERO_SCALE_SUBSTITUTE = {"fp32": 1.4e-45, "fp16": 6e-08, "bf16": 9.2e-41}


def int_scale_denominator(recipe: INT4Scaling | INT8Scaling) -> float:
    """What an integer recipe divides its block statistic by to get the scale: ``qmax`` (``"qmax"``) or half the
    code range (``"half_range"``) of ``amax`` when symmetric, the whole code range of ``max − min`` when not."""
    fmt = recipe.element
    if not recipe.symmetric:
        return float(fmt.qmax - fmt.qmin)
    return float(fmt.qmax) if recipe.symmetric_range == "qmax" else (fmt.qmax - fmt.qmin) / 2.0


def encode_float(ops: ArrayOps, v: Array, fmt: ElementFormat) -> Array:
    """RNE-encode fp32 ``v`` (already clamped to ±fmax) into int32 codes of float format ``fmt``.

    Branch-free: ``c`` is the power of two whose ulp is the target's step at ``|v|``'s exponent (floored at the
    target's smallest normal, which makes subnormals come out right), so ``(|v| + c) − c`` is ``|v|`` rounded to
    the target grid by the FPU's own round-to-nearest-even. Multiplying that exact value by ``2^(bias−127)``
    re-biases its exponent, so its fp32 bit pattern *is* the code shifted left by ``23 − mbits`` (target
    subnormals land on fp32 subnormals with the same structure). NaN inputs give an unspecified code; callers
    that let NaN through patch them (:func:`encode`).
    """
    m, bias = fmt.mbits, fmt.bias
    b, r = round_to_grid(ops, v, fmt)
    sign = b & _SIGN
    code = ops.bits(r * float(2.0 ** (bias - 127))) >> (23 - m)
    return (code | (sign >> (31 - fmt.ebits - m))) & ((1 << (fmt.ebits + m + 1)) - 1)


def round_to_grid(ops: ArrayOps, v: Array, fmt: ElementFormat) -> tuple[Array, Array]:
    """``(bits of v, |v| rounded to fmt's grid)``: the rounding step of :func:`encode_float` (FPU round-to-nearest-
    even through ``(|v| + c) − c``), shared with backends that assemble the code differently (breccia-jax, whose
    XLA:CPU flushes the fp32 subnormals the re-biasing multiply would produce)."""
    m, bias = fmt.mbits, fmt.bias
    b = ops.bits(v)
    a = b & 0x7FFFFFFF
    c = ops.from_bits(ops.maximum(a & 0x7F800000, (127 + 1 - bias) << 23) + ((23 - m) << 23))
    return b, (ops.from_bits(a) + c) - c


def decode_codes(ops: ArrayOps, code: Array, fmt: ElementFormat) -> Array:
    """Exact fp32 value of int32 float codes (small arrays: scale grids). NaN codes give NaN."""
    m, bias = fmt.mbits, fmt.bias
    sign = (code >> (fmt.ebits + m)) & 1
    mag = code & ((1 << (fmt.ebits + m)) - 1)
    e = mag >> m
    mant = mag & ((1 << m) - 1)
    normal = ops.from_bits(((e + (127 - bias)) << 23) | (mant << (23 - m)))
    sub = ops.f32(mant) * float(2.0 ** (1 - bias - m))
    val = ops.where(e == 0, sub, normal)
    val = ops.where(sign == 1, -val, val)
    if fmt.ieee_specials:
        top = e == (1 << fmt.ebits) - 1
        val = ops.where(top, ops.where(mant == 0, ops.where(sign == 1, -float("inf"), float("inf")), float("nan")), val)
    elif fmt.nan_code is not None:
        val = ops.where(mag == (fmt.nan_code & ((1 << (fmt.ebits + m)) - 1)), float("nan"), val)
    return val


def pow2_ceil_exponent(ops: ArrayOps, q: Array) -> Array:
    """int32 ``e`` with ``2^e`` the smallest power of two ≥ ``q`` (``q`` ≥ 0 finite; ``q`` ≤ 2^-127 → −127)."""
    b = ops.bits(q)
    e = ((b + 0x7FFFFF) >> 23) - 127
    return ops.where(b <= _TWO_M127_BITS, -127, e)


def floor_exponent(ops: ArrayOps, a: Array) -> Array:
    """int32 ``floor(log2(a))`` for normal ``a`` ≥ 0 (zero and subnormals give −127)."""
    return ((ops.bits(a) & 0x7FFFFFFF) >> 23) - 127


def pow2(ops: ArrayOps, e: Array) -> Array:
    """Exact fp32 ``2^e`` for int32 ``e`` in [−127, 127]."""
    return ops.where(e <= -127, ops.from_bits(e * 0 + _TWO_M127_BITS), ops.from_bits((e + 127) << 23))


@dataclass
class Scales:
    """What :func:`compute_scales` returns, all on the keepdims block grid.

    ``stored``: the scale as the ScaledTensor holds it, before the backend's storage cast (fp32 values, or int32
    E8M0 biased exponents, or int32 E4M3 codes). ``divisor``: fp32 per block, what elements are divided by
    (0 where the block quantizes to zeros). ``zero_point``: int32 or None. ``global_scale``: fp32 0-d or None.
    """

    stored: Array
    divisor: Array
    zero_point: Array | None = None
    global_scale: Array | None = None
    multiplier: Array | None = None  # set when the recipe scales data by multiplying with a reciprocal


def _fp8_scale(ops: ArrayOps, amax: Array, fmax: float, pow2_scales: bool, assume_finite: bool = False) -> Array:
    s = ops.div(amax, fmax)
    if pow2_scales and assume_finite:  # amax/fmax < 2^127 for finite amax and fmax > 2: no clamp, no where
        s = pow2(ops, pow2_ceil_exponent(ops, s))
    elif pow2_scales:
        finite = ops.isfinite(s)
        p = pow2(ops, ops.minimum(pow2_ceil_exponent(ops, ops.where(finite, s, 0.0)), 127))
        s = ops.where(finite, p, s)
    return ops.where(amax == 0, 1.0, s)


def _mx_scales_finite(ops: ArrayOps, recipe: Recipe, amax: Array) -> Scales:
    """MX E8M0 scales for finite, non-negative ``amax``: the general branch with its NaN/Inf handling dropped and the
    biased exponent computed directly (``rceil``: ``ceil(log2(amax / fmax)) + 127``, never above 254 because
    ``fmax`` > 2; ``floor``: ``floor(log2 amax) − emax + 127``), clamped at 0 (2^-127) as the general branch does."""
    fmt = recipe.element
    if recipe.scale_rounding == "rceil":  # type: ignore[attr-defined]
        e = pow2_ceil_exponent(ops, ops.div(amax, fmt.fmax))
    else:
        e = ops.maximum(floor_exponent(ops, amax) - fmt.emax, -127)
    return Scales(e + 127, pow2(ops, e))


def compute_scales(
    ops: ArrayOps,
    recipe: Recipe,
    amax: Array,
    *,
    vmin: Array | None = None,
    vmax: Array | None = None,
    global_amax: Array | None = None,
    history_amax: Array | None = None,
    assume_finite: bool = False,
) -> Scales:
    """Per-block scales from per-block statistics (``amax``; ``vmin``/``vmax`` for asymmetric integers).

    ``assume_finite=True`` is a promise from a caller that has already checked every ``amax`` for NaN/Inf: the
    non-finite branches are skipped (the same bytes for finite input, tested; fewer passes over a large grid)."""
    fmt = recipe.element
    amax = ops.from_bits(ops.bits(amax) & 0x7FFFFFFF)  # a −0 amax (max(x, −min) of zeros) must not sign a scale
    if isinstance(recipe, (Float8CurrentScaling, Float8BlockScaling)):
        a = amax
        if isinstance(recipe, Float8CurrentScaling) and recipe.amax_epsilon > 0:
            a = ops.maximum(a, float(recipe.amax_epsilon))
        s = _fp8_scale(ops, a, fmt.fmax, recipe.power_of_2_scales, assume_finite)
        return Scales(s, s)
    if isinstance(recipe, DelayedScaling):
        a = amax if history_amax is None else history_amax
        s = ops.where(a == 0, 1.0, ops.div(a, fmt.fmax) * float(2.0**recipe.margin))
        return Scales(s, s)
    if isinstance(recipe, (MXFP8BlockScaling, MXFP4BlockScaling, MXFP6BlockScaling)) and assume_finite:
        return _mx_scales_finite(ops, recipe, amax)
    if isinstance(recipe, (MXFP8BlockScaling, MXFP4BlockScaling, MXFP6BlockScaling)):
        finite = ops.where(ops.isfinite(amax), amax, 0.0)
        if recipe.scale_rounding == "rceil":
            e = pow2_ceil_exponent(ops, ops.div(finite, fmt.fmax))
        else:
            e = floor_exponent(ops, finite) - fmt.emax
        byte = ops.minimum(ops.maximum(e + 127, 0), 254)
        byte = ops.where(amax == float("inf"), 254, byte)  # saturate, as TE does
        byte = ops.where(ops.isnan(amax), 255, byte)
        div = pow2(ops, ops.minimum(byte, 254) - 127)
        div = ops.where(byte == 255, float("nan"), div)
        return Scales(byte, div)
    if isinstance(recipe, NVFP4BlockScaling):
        if recipe.per_tensor_scale:
            ga = ops.maximum(amax, 0.0) if global_amax is None else global_amax
            g = ops.where(ga == 0, 1.0, ops.div(ga, 2688.0))
            sbf = ops.div_blocks(ops.div(amax, 6.0), g)
        else:
            g = None
            sbf = ops.div(amax, 6.0)
        if recipe.block_scale_min > 0:
            sbf = ops.maximum(sbf, float(recipe.block_scale_min))
        clamped = ops.minimum(sbf, 448.0)
        native = ops.encode_float(clamped, _E4M3)  # a backend's exact native encoder (uint8 or int32 codes)
        code = encode_float(ops, clamped, _E4M3) if native is None else ops.i32(native)
        code = ops.where(ops.isnan(sbf), 0x7F, code)
        sb = decode_codes(ops, code, _E4M3)
        div = sb if g is None else sb * g
        mult = None
        if recipe.data_scaling == "reciprocal":  # x · ((1/g) / s_b), as torchao computes it
            one = ops.full(tuple(sb.shape), 1.0, sb)  # through div_blocks: a correctly rounded division everywhere
            mult = ops.div_blocks(one, sb) if g is None else ops.div_blocks(ops.div_blocks(one, g), sb)
            mult = ops.where(sb == 0, 0.0, mult)
        return Scales(code, div, global_scale=g, multiplier=mult)
    if isinstance(recipe, (INT4Scaling, INT8Scaling)):
        kind = scale_kind(recipe)
        if recipe.float_zero_point:
            assert vmin is not None and vmax is not None
            return _affine_scales(ops, fmt.qmax, vmin, vmax)
        if recipe.symmetric:
            s = ops.where(amax == 0, 1.0, ops.div(amax, int_scale_denominator(recipe)))
            zp = None
        else:
            assert vmin is not None and vmax is not None
            lo = ops.minimum(vmin, 0.0)
            hi = ops.maximum(vmax, 0.0)
            s = ops.div(hi - lo, int_scale_denominator(recipe))
            s = ops.where(s == 0, 1.0, s)
        s = ops.load_float(ops.store_float(s, kind))
        s = ops.where(s == 0, ZERO_SCALE_SUBSTITUTE[kind], s)
        if not recipe.symmetric:
            zp = ops.i32(ops.clip(float(fmt.qmin) - ops.rint(ops.div_blocks(lo, s)), fmt.qmin, fmt.qmax))
        return Scales(s, s, zero_point=zp)
    raise NotImplementedError(f"no math for recipe {recipe!r}")


def _affine_scales(ops: ArrayOps, qmax: int, lo: Array, hi: Array) -> Scales:
    """MLX's affine rule (``mx.quantize(mode="affine")``), per block in fp32: the edge of larger magnitude is hit
    exactly by an integer code, so the scale points from it (negative when the edge is the maximum) and the zero
    point *is* that edge. ``lo``/``hi`` are NaN-free (:func:`affine_stats`). Scales and zero points stay fp32 here;
    their storage rounds them to the scale dtype, while codes use the fp32 values, as MLX does."""
    neg = _abs(ops, lo) > _abs(ops, hi)
    s = ops.maximum(ops.div(hi - lo, float(qmax)), 1e-7)
    s = ops.where(neg, s, -s)
    edge = ops.where(neg, lo, hi)
    q0 = ops.rint(ops.div_blocks(edge, s))
    hit = q0 != 0
    s = ops.where(hit, ops.div_blocks(edge, ops.where(hit, q0, 1.0)), s)
    return Scales(s, s, zero_point=ops.where(hit, edge, 0.0))


def _abs(ops: ArrayOps, x: Array) -> Array:
    return ops.from_bits(ops.bits(x) & 0x7FFFFFFF)


def is_float_zp(recipe: Recipe) -> bool:
    """Whether ``recipe`` keeps a float zero point (``zero_point_domain="float"``, MLX's affine form)."""
    return isinstance(recipe, (INT4Scaling, INT8Scaling)) and recipe.float_zero_point


def affine_stats(ops: ArrayOps, x: Array, axes: tuple[int, ...]) -> tuple[Array, Array]:
    """Per-block ``(min, max)`` ignoring NaN (an all-NaN block gives ``(+inf, −inf)``), as ``mx.quantize`` reduces.

    Only needed where a block holds NaN (``nonfinite="propagate"``); NaN elements then encode as code 0."""
    nan = ops.isnan(x)
    return ops.vmin(ops.where(nan, float("inf"), x), axes), ops.vmax(ops.where(nan, -float("inf"), x), axes)


def refuse_multiplier_overflow(ops: ArrayOps, recipe: Recipe, sc: Scales, global_amax: Array | None) -> None:
    """Raise :class:`~breccia.RecipeError` where NVFP4's ``data_scaling="reciprocal"`` multiplier ``(1/g) / s_b``
    overflows fp32 in some block (a global scale ``g`` below about ``2^-128 / s_b``, from a tensor amax under
    ~10^-32; or ``g`` underflowed to 0). Those blocks' ±0 elements would encode ``0 · inf = NaN``, whose sign bit
    differs between platforms, and every other element would saturate at ±6; torchao, whose formula this is, encodes
    the NaN. One check and one wording for every backend's driver; a no-op where the recipe divides."""
    if sc.multiplier is None or not ops.any(sc.multiplier == float("inf")):
        return
    assert global_amax is not None  # only the two-level form has a multiplier that can overflow
    amax = float(ops.to_numpy(global_amax).max())  # an error path: the host copy is fine
    raise RecipeError(
        f"{recipe!r}: the tensor amax {amax:.6g} makes the global scale so small that its reciprocal data scaling "
        "overflows fp32 (torchao's formula would encode NaN); use data_scaling='divide' or scale the tensor up"
    )


def scale_overflow(ops: ArrayOps, recipe: Recipe, sc: Scales) -> Array:
    """Blocks whose fp16/bf16 scale (or float zero point) overflows storage: ``~isfinite`` per block."""
    if not is_float_zp(recipe):
        return ~ops.isfinite(sc.divisor)
    kind = scale_kind(recipe)
    assert sc.zero_point is not None
    s = ops.load_float(ops.store_float(sc.stored, kind))
    return ~ops.isfinite(s) | ~ops.isfinite(ops.load_float(ops.store_float(sc.zero_point, kind)))


def store_zero_point(ops: ArrayOps, recipe: Recipe, zp: Array) -> Array:
    """Backend storage of :attr:`Scales.zero_point`: int8/uint8 codes, or the scale dtype (float domain)."""
    if is_float_zp(recipe):
        return ops.store_float(zp, scale_kind(recipe))
    return ops.store_zero_point(zp, recipe.element.signed)


def _round_to(ops: ArrayOps, x: Array, kind: str) -> Array:
    return x if kind == "fp32" else ops.load_float(ops.store_float(x, kind))


def safe_divisor(ops: ArrayOps, recipe: Recipe, divisor: Array) -> Array:
    """NVFP4 blocks whose E4M3 scale rounded to zero quantize to zeros: dividing by +inf gives ±0."""
    if isinstance(recipe, NVFP4BlockScaling):
        return ops.where(divisor == 0, float("inf"), divisor)
    return divisor


def encode(ops: ArrayOps, recipe: Recipe, x: Array, sc: Scales, *, has_nan: bool) -> Array:
    """int32 codes of split-form fp32 ``x`` given its block scales (broadcast from the keepdims grid)."""
    fmt = recipe.element
    if fmt.kind == "int":
        if is_float_zp(recipe):  # MLX affine: q = rint((x − z) / s), z and s in fp32
            q = ops.rint(ops.div_blocks(x - sc.zero_point, sc.divisor))
        else:
            q = ops.rint(ops.div_blocks(x, sc.divisor))
        if sc.zero_point is not None and not is_float_zp(recipe):
            q = q + ops.f32(sc.zero_point)
        q = ops.clip(q, fmt.qmin, fmt.qmax)
        if has_nan:
            q = ops.where(ops.isnan(q), 0.0, q)
        return ops.i32(q) & ((1 << fmt.bits) - 1) if fmt.storage == "packed4" else ops.i32(q)
    if sc.multiplier is not None:
        v = ops.clip(x * sc.multiplier, -fmt.fmax, fmt.fmax)
    else:
        v = ops.clip(ops.div_blocks(x, safe_divisor(ops, recipe, sc.divisor)), -fmt.fmax, fmt.fmax)
    code = ops.encode_float(v, fmt)
    if code is None:
        code = encode_float(ops, v, fmt)
    if has_nan:
        code = ops.where(ops.isnan(v), fmt.nan_code if fmt.nan_code is not None else 0, code)
    return code


def dequant_values(ops: ArrayOps, recipe: Recipe, values: Array, scale: Array, zero_point: Array | None) -> Array:
    """``decode(q) · scale`` (``(q − zp) · scale`` for asymmetric integers); ``scale`` is the fp32 block scale.

    Float zero points (MLX affine): ``round_T(round_T(q·s) + z)`` in the scale dtype ``T``, exactly
    ``mx.dequantize``'s arithmetic. ``q·s`` is exact in fp32 for fp16/bf16 ``s`` (≤ 19 significant bits) and fp32
    has more than twice their precision plus two, so rounding an fp32 sum to ``T`` equals rounding the exact sum."""
    if zero_point is not None and is_float_zp(recipe):
        kind = scale_kind(recipe)
        return _round_to(ops, _round_to(ops, ops.mul_rounded(values, scale), kind) + ops.f32(zero_point), kind)
    if zero_point is not None:
        values = values - ops.f32(zero_point)
    return values * scale


def stored_scale_to_f32(ops: ArrayOps, recipe: Recipe, scale: Array, global_scale: Array | None) -> Array:
    """The fp32 dequantization multiplier per block, from the stored scale (and global scale)."""
    kind = scale_kind(recipe)
    if kind == "e8m0":
        b = ops.load_e8m0(scale)
        return ops.where(b == 255, float("nan"), pow2(ops, ops.minimum(b, 254) - 127))
    if kind == "e4m3":
        s = ops.decode(scale, _E4M3, 0)
        return s if global_scale is None else s * ops.f32(global_scale)
    return ops.load_float(scale)


def store_scale(ops: ArrayOps, recipe: Recipe, stored: Array) -> Array:
    """Backend storage of :attr:`Scales.stored` (fp32/fp16/bf16 floats, E8M0, E4M3)."""
    kind = scale_kind(recipe)
    if kind == "e8m0":
        return ops.store_e8m0(stored)
    if kind == "e4m3":
        return ops.store_codes(stored, _E4M3)
    return ops.store_float(stored, kind)
