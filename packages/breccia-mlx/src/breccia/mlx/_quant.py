"""Bit-exact re-packing between breccia ScaledTensors and MLX's quantized weights (``mx.quantize`` output).

Both sides store the same codes in the same order: MLX packs elements into uint32 words with element 0 in the
lowest bits, which on a little-endian machine (every MLX platform) is exactly breccia's byte order with element 2i
in the low nibble. So the data converts with a ``view`` — no arithmetic, no rounding. Scales convert as follows:

- ``mxfp8`` / ``mxfp4``: E8M0 bytes on both sides. ``nvfp4``: E4M3 bytes on both sides; MLX's optional
  ``global_scale`` is the tensor amax, breccia's is the dequantization factor ``amax / (448·6)`` (DESIGN.md §5).
- ``affine``: MLX computes ``scale·q + bias`` with unsigned ``q``, in the scale's dtype ``T`` (``s·q`` rounded to
  ``T``, then the sum). That is exactly breccia's ``zero_point_domain="float"`` (``INT4Scaling`` /
  ``INT8Scaling(granularity="group")`` with ``symmetric=False, signed=False``): the bias *is* the float zero point,
  so both directions are pure re-packs and always lossless. Integer-domain recipes, ``x = (q − zp)·s``, convert to
  MLX when ``bias = −zp·s`` reproduces every value: breccia → MLX always qualifies for fp16/bf16 scales (an 11-bit
  significand times an 8-bit integer fits fp32's 24 bits; scales and biases are emitted in fp32); signed symmetric
  codes become unsigned ones with ``zp = 2^(bits−1)``. Exactness is checked by comparing both dequantizations bit
  for bit, not by a sufficient condition. MLX → breccia always gives the float domain.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import mlx.core as mx
import numpy as np

from breccia._errors import LayoutError, RecipeError
from breccia._generic import dequantize_generic
from breccia._layouts import PerBlockK
from breccia._math import is_float_zp
from breccia._recipes import INT4Scaling, INT8Scaling, MXFP4BlockScaling, MXFP8BlockScaling, NVFP4BlockScaling, Recipe
from breccia._tensor import ScaledTensor

from ._ops import MLXOps

__all__ = ["MLXQuantized", "from_mlx_quantized", "mlx_mode", "to_mlx_quantized"]

_OPS = MLXOps()
_NV_GLOBAL = np.float32(448.0 * 6.0)
_FLOAT_DT = {"fp32": mx.float32, "fp16": mx.float16, "bf16": mx.bfloat16}
_DT_KIND = {mx.float32: "fp32", mx.float16: "fp16", mx.bfloat16: "bf16"}


class MLXQuantized(NamedTuple):
    """MLX's quantized form of a weight ``(…, N, K)``: pass ``w_q, scales, biases`` and :attr:`kwargs` to
    ``mx.dequantize`` or ``mx.quantized_matmul``. ``global_scale`` is MLX's nvfp4 convention (the tensor amax)."""

    w_q: mx.array
    scales: mx.array
    biases: mx.array | None
    global_scale: mx.array | None
    mode: str
    group_size: int
    bits: int

    @property
    def kwargs(self) -> dict[str, Any]:
        return {"mode": self.mode, "group_size": self.group_size, "bits": self.bits}


def mlx_mode(recipe: Recipe) -> tuple[str, int, int] | None:
    """``(mode, group_size, bits)`` of the MLX format that stores ``recipe``'s codes as they are, or ``None``."""
    if isinstance(recipe, MXFP8BlockScaling) and recipe.fp8_format == "E4M3" and recipe.block_size == 32:
        return "mxfp8", 32, 8
    if isinstance(recipe, MXFP4BlockScaling) and recipe.block_size == 32:
        return "mxfp4", 32, 4
    if isinstance(recipe, NVFP4BlockScaling) and recipe.block_m == 1:
        return "nvfp4", 16, 4
    if isinstance(recipe, INT4Scaling) and recipe.group_size in (32, 64, 128):
        return "affine", recipe.group_size, 4
    if isinstance(recipe, INT8Scaling) and recipe.granularity == "group" and recipe.group_size in (32, 64, 128):
        return "affine", recipe.group_size, 8
    return None


def _check_convertible(st: ScaledTensor, who: str) -> tuple[str, int, int]:
    found = mlx_mode(st.recipe)
    if found is None:
        raise RecipeError(
            f"{who}: recipe {st.recipe!r} has no MLX quantized form; MLX stores MXFP8BlockScaling(E4M3), "
            "MXFP4BlockScaling, NVFP4BlockScaling(block_m=1), INT4Scaling and INT8Scaling(granularity='group') with "
            "group_size 32/64/128. Re-cast with one of those recipes"
        )
    group = found[1]
    if st.framework != "mlx":
        raise LayoutError(f"{who} needs a ScaledTensor of mlx arrays; got framework {st.framework!r}")
    lay = st.layout
    if not (isinstance(lay, PerBlockK) and lay.axis in (-1, len(st.shape) - 1)):
        raise LayoutError(f"{who} needs blocks along the last axis (layout PerBlockK(axis=-1)); got {lay!r}")
    if len(st.shape) < 2 or st.shape[-1] % group:
        raise LayoutError(
            f"{who}: MLX needs a weight with ≥ 2 dims whose last dim is a multiple of group_size={group}; "
            f"got shape {st.shape}. Pad K to a multiple of {group} before casting"
        )
    return found


def _check_finite(x: mx.array, what: str, who: str) -> None:
    if not bool(mx.all(mx.isfinite(x)).item()):
        raise RecipeError(f"{who}: {what} holds non-finite values, which MLX affine cannot represent")


def to_mlx_quantized(st: ScaledTensor) -> MLXQuantized:
    """Re-pack a breccia ScaledTensor (mlx arrays, blocked along the last axis) as MLX quantized weights.

    Lossless: ``mx.dequantize(*q[:3], global_scale=q.global_scale, **q.kwargs)`` equals ``breccia.dequantize(st)``
    bit for bit (tested). Raises :class:`RecipeError` for a recipe MLX cannot hold and :class:`LayoutError` for a
    layout or shape it cannot hold."""
    mode, group, bits = _check_convertible(st, "to_mlx_quantized")
    if mode == "affine" and is_float_zp(st.recipe):  # MLX's own form: the zero point is the bias
        return MLXQuantized(st.data.view(mx.uint8).view(mx.uint32), st.scale, st.zero_point, None, mode, group, bits)
    if mode == "affine":
        return _int_to_affine(st, group, bits)
    glob = None if st.global_scale is None else _mlx_global(st.global_scale)
    # MLX's uint32 words hold element 0 in the lowest bits: on little-endian hosts, breccia's bytes as they are
    return MLXQuantized(st.data.view(mx.uint8).view(mx.uint32), st.scale.view(mx.uint8), None, glob, mode, group, bits)


def _mlx_global(g: mx.array) -> mx.array:
    """MLX's ``global_scale`` (an amax ``A`` with ``A / 2688 == g`` in fp32) for breccia's ``g``.

    ``g · 2688`` is the obvious candidate; when its division back does not reproduce ``g`` exactly, its fp32
    neighbours are tried. ``g`` came from ``amax / 2688`` in breccia's cast, so some ``A`` always exists then."""
    gv = np.float32(np.array(g.astype(mx.float32)))
    base = np.float32(gv * _NV_GLOBAL)
    for cand in (base, np.nextafter(base, np.float32(np.inf)), np.nextafter(base, np.float32(0))):
        if np.float32(cand / _NV_GLOBAL) == gv:
            return mx.array(float(cand), dtype=mx.float32)  # float32 → float → float32 is exact
    raise RecipeError(
        f"to_mlx_quantized: global_scale={float(gv)!r} is not amax/(448·6) for any fp32 amax, so MLX's nvfp4 "
        "(which takes the amax) cannot reproduce it; re-cast with NVFP4BlockScaling()"
    )


def _int_to_affine(st: ScaledTensor, group: int, bits: int) -> MLXQuantized:
    rec = st.recipe
    assert isinstance(rec, (INT4Scaling, INT8Scaling))
    fmt = rec.element
    if fmt.signed and st.zero_point is not None:
        raise RecipeError(
            "to_mlx_quantized: signed asymmetric integer codes have no MLX form (MLX codes are unsigned); "
            "re-cast with signed=False"
        )
    s = st.scale.astype(mx.float32)
    values = _OPS.decode(st.data, fmt, st.shape[-1])  # the integer values as fp32 (signed where signed)
    if st.zero_point is not None:
        zp = st.zero_point.astype(mx.float32)
        codes = values
    else:  # signed symmetric: q' = q + 2^(bits-1) is unsigned with zero point 2^(bits-1)
        half = float(1 << (bits - 1))
        zp = mx.full(s.shape, half, dtype=mx.float32)
        codes = values + half
    _check_finite(s, "the scale", "to_mlx_quantized")
    biases = -(zp * s)
    u = codes.astype(mx.uint8)
    if bits == 4:
        u = u[..., 0::2] | (u[..., 1::2] << 4)
    # scales and biases in fp32: -zp·s of an fp16/bf16 scale is exact in fp32, not in the scale's own dtype
    q = MLXQuantized(u.view(mx.uint32), s, biases, None, "affine", group, bits)
    ref = dequantize_generic(_OPS, st)
    got = mx.dequantize(q.w_q, q.scales, q.biases, group_size=group, bits=bits, mode="affine", dtype=mx.float32)
    if not bool(mx.array_equal(ref, got).item()):
        raise RecipeError(
            f"to_mlx_quantized: {rec!r} with these scales is not exactly representable as MLX affine "
            "(scale·q + bias rounds differently from (q − zp)·s); use scale_dtype='fp16' or 'bf16'"
        )
    return q


def from_mlx_quantized(
    w_q: mx.array,
    scales: mx.array,
    biases: mx.array | None = None,
    *,
    mode: str = "affine",
    group_size: int | None = None,
    bits: int | None = None,
    global_scale: mx.array | None = None,
) -> ScaledTensor:
    """A breccia ScaledTensor holding exactly the values of MLX quantized weights (``mx.quantize`` output).

    Every mode converts losslessly (the bytes are shared). ``"affine"`` gives ``INT4Scaling`` / ``INT8Scaling``
    with ``zero_point_domain="float"``: MLX's biases become the float zero point, in the scales' dtype."""
    defaults = {"affine": (64, 4), "mxfp4": (32, 4), "mxfp8": (32, 8), "nvfp4": (16, 4)}
    if mode not in defaults:
        raise RecipeError(f"from_mlx_quantized: mode={mode!r}; expected one of {sorted(defaults)}")
    group = defaults[mode][0] if group_size is None else int(group_size)
    nbits = defaults[mode][1] if bits is None else int(bits)
    if (mode != "affine" and (group, nbits) != defaults[mode]) or (mode == "affine" and nbits not in (4, 8)):
        raise RecipeError(
            f"from_mlx_quantized: mode={mode!r} with group_size={group}, bits={nbits} has no breccia recipe; "
            "breccia holds affine with bits 4 or 8 and the MLX defaults of the float modes"
        )
    if w_q.dtype != mx.uint32 or w_q.ndim < 2:
        raise LayoutError(f"from_mlx_quantized needs w_q as uint32 with ≥ 2 dims; got {w_q.dtype} {w_q.shape}")
    data = w_q.view(mx.uint8)
    k = data.shape[-1] * (2 if nbits == 4 else 1)
    shape = (*w_q.shape[:-1], k)
    layout = PerBlockK(group, -1)
    if mode == "affine":
        return _affine_to_float_zp(data, scales, biases, group, nbits, shape, layout)
    if biases is not None:
        raise LayoutError(f"from_mlx_quantized: mode={mode!r} has no biases; got an array")
    if scales.dtype != mx.uint8:
        raise LayoutError(f"from_mlx_quantized: mode={mode!r} needs uint8 scales (E8M0/E4M3 bytes); got {scales.dtype}")
    if global_scale is not None and mode != "nvfp4":
        raise LayoutError(f"from_mlx_quantized: global_scale is only for mode='nvfp4'; got mode={mode!r}")
    recipe: Recipe
    glob = None
    if mode == "mxfp8":
        recipe = MXFP8BlockScaling()
    elif mode == "mxfp4":
        recipe = MXFP4BlockScaling()
    else:
        recipe = NVFP4BlockScaling(per_tensor_scale=global_scale is not None)
        if global_scale is not None:
            glob = mx.reshape(mx.divide(global_scale.astype(mx.float32), mx.array(2688.0, dtype=mx.float32)), ())
    return ScaledTensor(data, scales.view(mx.uint8), recipe, layout, shape, global_scale=glob)


def _affine_to_float_zp(
    data: mx.array,
    scales: mx.array,
    biases: mx.array | None,
    group: int,
    bits: int,
    shape: tuple[int, ...],
    layout: PerBlockK,
) -> ScaledTensor:
    if biases is None:
        raise LayoutError("from_mlx_quantized: mode='affine' needs biases; got None")
    if scales.dtype not in _DT_KIND:
        raise LayoutError(f"from_mlx_quantized: affine scales must be float32/float16/bfloat16; got {scales.dtype}")
    if biases.dtype != scales.dtype or biases.shape != scales.shape:
        raise LayoutError(
            f"from_mlx_quantized: affine biases must match the scales' dtype and shape ({scales.dtype} "
            f"{tuple(scales.shape)}); got {biases.dtype} {tuple(biases.shape)}. Pass mx.quantize's biases unchanged"
        )
    kind = _DT_KIND[scales.dtype]
    recipe: Recipe
    if bits == 4:
        recipe = INT4Scaling(
            group_size=group, signed=False, symmetric=False, scale_dtype=kind, zero_point_domain="float"
        )
    else:
        recipe = INT8Scaling(
            granularity="group", group_size=group, signed=False, symmetric=False, scale_dtype=kind,
            zero_point_domain="float",
        )  # fmt: skip
    return ScaledTensor(data, scales, recipe, layout, shape, zero_point=biases)
