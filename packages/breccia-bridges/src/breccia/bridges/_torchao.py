"""torchao 0.18 ↔ breccia: the bits of torchao's quantized tensor subclasses, passed through unchanged.

torchao 0.18 removed ``AffineQuantizedTensor``; its quantized weights are now one subclass per format. The seed API
keeps its names (``from_torchao(aqt)`` / ``to_torchao(st)``) and maps:

============================================  =====================================================================
torchao 0.18                                  breccia
============================================  =====================================================================
``Float8Tensor`` per-tensor / ``PerRow``      ``Float8CurrentScaling`` + ``PerTensor`` / ``PerChannel(axis)``
``Float8Tensor`` ``PerBlock([1, B])``         ``Float8BlockScaling(block_k=B)`` (1×128 activations)
``Float8Tensor`` ``PerBlock([M, B])``         ``Float8BlockScaling(block_k=B, block_m=M)`` (128×128 weights)
``Int4Tensor`` (plain, groupwise)             ``INT4Scaling(group_size=g, signed=True, scale_dtype=…)``
``MXTensor`` fp8 / fp6 / fp4                  ``MXFP8BlockScaling`` / ``MXFP6BlockScaling`` / ``MXFP4BlockScaling``
``NVFP4Tensor`` with / without per-tensor     ``NVFP4BlockScaling(per_tensor_scale=True | False)`` with torchao's
scale                                         rounding rules (``block_scale_min=2**-6, data_scaling="reciprocal"``)
============================================  =====================================================================

Conventions converted (all lossless): torchao keeps Float8 scale rank (per-tensor ``(1, 1)``) where breccia's
per-tensor scale is 0-d; ``Int4Tensor`` stores scales and zeros transposed ``(K/g, N)`` and codes as packed ``int8``
(element 2i in the low nibble, as breccia) — breccia keeps ``(N, K/g)`` and ``uint8``; MX / NVFP4 scales may be
swizzled into cuBLAS 128×4 tiles (``is_swizzled_scales``) — breccia keeps them compact and row-major.

What cannot cross: ``Float8Tensor``, ``MXTensor`` and ``NVFP4Tensor`` have no partial blocks (K, and M for
128×128, must be multiples of the block; ``Int4Tensor``'s last group may be short, but K must be even).
``Int4Tensor``'s zero point is a float offset (``x = q·s + z``) where breccia's is an integer (``x = (q − zp)·s``),
so only zero points with ``z = −zp·s`` exactly cross (symmetric ``z = 0`` always does); a per-expert NVFP4 scale
``(E, 1, 1)`` has no breccia field. Each raises a breccia error rather than rounding.

Activation-side settings (``act_quant_kwargs``, ``act_per_tensor_scale``, ``act_pre_scale``, ``mm_config``,
``kernel_preference``, ``activation_dtype``, the high-precision ``dtype``) are not part of a weight's value and
breccia does not hold them: ``to_torchao(st, like=t)`` copies them from a torchao tensor ``t``.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

from breccia._errors import DTypeError, FormatError, RecipeError
from breccia._layouts import Layout, PerBlock2D, PerBlockK, PerChannel, PerTensor
from breccia._recipes import (
    Float8BlockScaling,
    Float8CurrentScaling,
    INT4Scaling,
    MXFP4BlockScaling,
    MXFP6BlockScaling,
    MXFP8BlockScaling,
    NVFP4BlockScaling,
    Recipe,
    scale_kind,
)
from breccia._tensor import ScaledTensor, dtype_name

from ._arrays import require

__all__ = ["from_torchao"]

_FP8 = {"float8_e4m3fn": "E4M3", "float8_e5m2": "E5M2"}
_FLOATS = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
_MX_ELEM = {"float8_e4m3fn": "E4M3", "float8_e5m2": "E5M2", "float4_e2m1fn_x2": "E2M1", "fp6_e2m3": "E2M3",
            "fp6_e3m2": "E3M2"}  # fmt: skip
_SUPPORTED = (
    "Float8CurrentScaling / DelayedScaling / Float8BlockScaling (-> Float8Tensor), INT4Scaling(signed=True) "
    "(-> Int4Tensor), MXFP8 / MXFP6 / MXFP4BlockScaling (-> MXTensor), NVFP4BlockScaling(block_m=1) (-> NVFP4Tensor)"
)


class _AO:
    """torchao's classes and helpers, imported on first use (importing breccia.bridges must not import torchao)."""

    def __init__(self, what: str) -> None:
        require("torchao", "torchao", what)
        q = importlib.import_module("torchao.quantization")
        mx = importlib.import_module("torchao.prototype.mx_formats.mx_tensor")
        self.utils = importlib.import_module("torchao.prototype.mx_formats.utils")
        self.Float8Tensor, self.Int4Tensor = q.Float8Tensor, q.Int4Tensor
        self.MXTensor, self.MXKwargs = mx.MXTensor, mx.QuantizeTensorToMXKwargs
        self.NVFP4Tensor = importlib.import_module("torchao.prototype.mx_formats.nvfp4_tensor").NVFP4Tensor
        self.Mode = importlib.import_module("torchao.prototype.mx_formats.config").ScaleCalculationMode
        self.KernelPreference = importlib.import_module("torchao.quantization.quantize_.common").KernelPreference


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in x.shape)


# --------------------------------------------------------------------------------------------- torchao → breccia
def from_torchao(t: Any, *, recipe: Recipe | None = None) -> ScaledTensor:
    """A ScaledTensor over the buffers of torchao tensor ``t`` (no copy where the layouts agree), on ``t``'s device.

    The recipe is read from ``t``: its element dtype, granularity and scale storage. Where several breccia recipes
    describe the same bits — per-row vs 1×128 when K = 128, MX ``rceil`` vs ``floor`` (an ``MXTensor`` records its
    scale rounding only in ``act_quant_kwargs``; absent, breccia's default ``rceil``), NVFP4 rounding options, INT4
    ``symmetric_range`` — ``recipe=`` picks one; a recipe that would change a bit raises :class:`RecipeError`.
    """
    ao = _AO("from_torchao")
    if recipe is not None and not isinstance(recipe, Recipe):
        raise RecipeError(f"from_torchao needs recipe to be a breccia recipe or None; got {recipe!r}")
    if isinstance(t, ao.Float8Tensor):
        st = _from_float8(t)
    elif isinstance(t, ao.Int4Tensor):
        st = _from_int4(t, None if recipe is None else recipe.has_zero_point)
    elif isinstance(t, ao.MXTensor):
        st = _from_mx(t, ao)
    elif isinstance(t, ao.NVFP4Tensor):
        st = _from_nvfp4(t, ao)
    else:
        raise DTypeError(
            f"from_torchao takes a torchao Float8Tensor, Int4Tensor, MXTensor or NVFP4Tensor; got "
            f"{type(t).__module__}.{type(t).__name__} (torchao 0.18 replaced AffineQuantizedTensor with these; for "
            f"other tensors, breccia.cast(t.dequantize(), recipe) re-quantizes)"
        )
    return st if recipe is None else _with_recipe(st, recipe, type(t).__name__)


def _with_recipe(st: ScaledTensor, recipe: Recipe, who: str) -> ScaledTensor:
    """``st`` relabelled with ``recipe`` — only if the recipe reads the very same bits (element, scale storage,
    global scale, zero point and which elements share a scale)."""
    base = st.recipe

    def sig(r: Recipe) -> tuple[object, ...]:
        return r.element.name, scale_kind(r), r.has_global_scale, r.has_zero_point

    layout: Layout = st.layout
    if sig(recipe) != sig(base):
        raise RecipeError(
            f"from_torchao: recipe={recipe!r} does not describe the bits of this {who}, which are "
            f"{base!r}; pass a recipe with the same element, scale storage and global scale / zero point"
        )
    alt = recipe.default_layout(layout.blocked_axis if layout.blocked_axis is not None else -1)
    if alt.block_shape(st.shape) == layout.block_shape(st.shape):
        layout = alt  # the recipe's own name for the same blocks (per-row K=128 ≡ 1×128, group K ≡ per-channel)
    else:
        try:
            recipe.check_layout(layout)
        except RecipeError as e:
            raise RecipeError(f"from_torchao: recipe={recipe!r} does not fit this {who} ({base!r}): {e}") from None
    want = layout.scale_shape(st.shape)
    zp = None if st.zero_point is None else st.zero_point.reshape(want)
    return ScaledTensor(st.data, st.scale.reshape(want), recipe, layout, st.shape, st.global_scale, zp)


def _float8_layout(shape: tuple[int, ...], block: list[int], fp8: str) -> tuple[Recipe, Layout]:
    """The breccia (recipe, layout) whose blocks are torchao's ``block_size``."""
    nd = len(shape)
    axes = [i for i in range(nd) if block[i] != 1]
    out: tuple[Recipe, Layout] | None = None
    if all(b == n for b, n in zip(block, shape)):
        out = Float8CurrentScaling(fp8), PerTensor()
    elif len(axes) == 1 and block[axes[0]] == shape[axes[0]]:
        out = Float8CurrentScaling(fp8), PerChannel(axes[0] - nd)
    elif len(axes) == 1:
        out = Float8BlockScaling(fp8, block_k=block[axes[0]]), PerBlockK(block[axes[0]], axes[0] - nd)
    elif axes == [nd - 2, nd - 1]:
        out = Float8BlockScaling(fp8, block_k=block[-1], block_m=block[-2]), PerBlock2D(block[-2], block[-1])
    if out is None or out[1].block_shape(shape) != tuple(block):
        raise FormatError(
            f"from_torchao: Float8Tensor block_size {block} for shape {list(shape)} is not per-tensor, "
            f"per-row, 1×B or B×B blocks over the last two axes"
        )
    return out


def _from_float8(t: Any) -> ScaledTensor:
    fp8, scale, shape = _FP8.get(dtype_name(t.qdata)), t.scale, _shape(t.qdata)
    if fp8 is None:
        raise DTypeError(
            f"from_torchao: Float8Tensor qdata must be float8_e4m3fn or float8_e5m2; got {dtype_name(t.qdata)}"
        )
    if dtype_name(scale) != "float32" or scale.dim() not in (0, len(shape)):
        raise FormatError(
            f"from_torchao: Float8Tensor scale must be float32 with the rank of qdata; got "
            f"{dtype_name(scale)} of shape {list(scale.shape)} for qdata {list(shape)}"
        )
    if t.block_size:
        block = [n if b == -1 else int(b) for b, n in zip(t.block_size, shape)]
    elif scale.numel() == 1:
        block = list(shape)
    else:
        block = [n // max(s, 1) for n, s in zip(shape, _shape(scale))]
    if len(block) != len(shape) or any(b < 1 or n % b for b, n in zip(block, shape)):
        raise FormatError(f"from_torchao: Float8Tensor block_size {t.block_size} does not tile shape {list(shape)}")
    if scale.numel() != math.prod(n // b for n, b in zip(shape, block)):
        raise FormatError(
            f"from_torchao: Float8Tensor scale of shape {list(scale.shape)} does not match "
            f"block_size {block} on shape {list(shape)}"
        )
    recipe, layout = _float8_layout(shape, block, fp8)
    return ScaledTensor(t.qdata, scale.reshape(layout.scale_shape(shape)), recipe, layout, shape)


def _from_int4(t: Any, want_zp: bool | None) -> ScaledTensor:
    import torch

    shape, q, scale, zero = _shape(t), t.qdata, t.scale, t.zero_point
    nd, block = len(shape), [int(b) for b in t.block_size]
    if nd < 2 or len(block) != nd or any(b != 1 for b in block[:-1]) or block[-1] < 1:
        raise FormatError(
            f"from_torchao: Int4Tensor needs groupwise block_size [1, …, g] on a ≥2-D shape; got "
            f"{block} for shape {list(shape)}"
        )
    g, kind = block[-1], _FLOATS.get(dtype_name(scale))
    grid = (*shape[:-2], -(-shape[-1] // g), shape[-2])
    if dtype_name(q) not in ("int8", "uint8") or _shape(q) != (*shape[:-1], (shape[-1] + 1) // 2):
        raise FormatError(
            f"from_torchao: Int4Tensor qdata must be int8 of shape {[*shape[:-1], (shape[-1] + 1) // 2]}"
            f" (two codes per byte); got {dtype_name(q)} {list(q.shape)}"
        )
    if kind is None or _shape(scale) != grid or _shape(zero) != grid or dtype_name(zero) != dtype_name(scale):
        raise FormatError(
            f"from_torchao: Int4Tensor scale and zero_point must be float arrays of one dtype and shape {list(grid)}; "
            f"got {dtype_name(scale)} {list(scale.shape)} and {dtype_name(zero)} {list(zero.shape)}"
        )
    s, z = scale.transpose(-1, -2).contiguous(), zero.transpose(-1, -2).contiguous()
    all_zero = not bool((z != 0).any())
    want_zp = not all_zero if want_zp is None else want_zp
    zp = None
    if want_zp:
        sd, zd = s.double(), z.double()
        k = torch.round(torch.where(sd == 0, torch.zeros_like(sd), -zd / sd))
        bad = (k < -128) | (k > 127) | (-k * sd != zd)
        if bool(bad.any()):
            raise FormatError(
                f"from_torchao: Int4Tensor's zero_point is a float offset (x = q·scale + zero) and in "
                f"{int(bad.sum())} of {bad.numel()} groups zero/scale is not an integer in [-128, 127], so breccia's "
                f"INT4Scaling(symmetric=False) (x = (q − zp)·scale, integer zp) cannot hold it exactly (torchao's "
                f"int4_row_quantize_zp sets zero = min + 8·scale); to approximate, re-quantize the high-precision "
                f"weight with breccia.cast(w, INT4Scaling(symmetric=False))"
            )
        zp = k.to(torch.int8)
    elif not all_zero:
        raise FormatError("from_torchao: recipe= is symmetric but this Int4Tensor has non-zero zero_point values")
    recipe = INT4Scaling(group_size=g, signed=True, scale_dtype=kind, symmetric=not want_zp)
    return ScaledTensor(q.view(torch.uint8), s, recipe, PerBlockK(g, -1), shape, zero_point=zp)


def _unswizzle(ao: _AO, t: Any, shape: tuple[int, ...], block: int) -> Any:
    """Compact row-major scales from torchao's cuBLAS tiles (rows padded to 128, columns to 4)."""
    scale = t.scale
    if not t.is_swizzled_scales:
        return scale
    rows, cols = math.prod(shape[:-1]), shape[-1] // block
    if len(shape) < 2 or scale.numel() != -(-rows // 128) * 128 * -(-cols // 4) * 4:
        raise FormatError(
            f"from_torchao: swizzled scale of shape {list(scale.shape)} does not fit shape "
            f"{list(shape)} with blocks of {block}"
        )
    return ao.utils.from_blocked(scale.contiguous(), rows, cols).reshape(*shape[:-1], cols).contiguous()


def _check_rowmajor(t: Any, who: str) -> None:
    if t.qdata.dim() >= 2 and t.qdata.stride(-2) < t.qdata.stride(-1):
        raise FormatError(
            f"from_torchao: this {who} is transposed (blocks run along dim -2); convert the "
            f"untransposed tensor and transpose afterwards"
        )


def _from_mx(t: Any, ao: _AO) -> ScaledTensor:
    import torch

    elem = _MX_ELEM.get(str(t.elem_dtype).rsplit(".", 1)[-1])
    if elem is None or t.block_size != 32:
        raise FormatError(
            f"from_torchao: MXTensor with elem_dtype {t.elem_dtype} and block_size {t.block_size} "
            f"has no breccia recipe (MX is fp8/fp6/fp4 with blocks of 32)"
        )
    _check_rowmajor(t, "MXTensor")
    mode = getattr(getattr(t, "act_quant_kwargs", None), "scaling_mode", None)
    rounding = {"floor": "floor", "rceil": "rceil"}.get(str(getattr(mode, "value", "")), "rceil")
    recipe: Recipe
    if elem in ("E4M3", "E5M2"):
        recipe = MXFP8BlockScaling(elem, scale_rounding=rounding)
    elif elem == "E2M1":
        recipe = MXFP4BlockScaling(scale_rounding=rounding)
    else:
        recipe = MXFP6BlockScaling(elem, scale_rounding=rounding)
    data = t.qdata if elem in ("E4M3", "E5M2") else t.qdata.view(torch.uint8)
    shape = _shape(t)
    return ScaledTensor(data, _unswizzle(ao, t, shape, 32), recipe, PerBlockK(32, -1), shape)


def _from_nvfp4(t: Any, ao: _AO) -> ScaledTensor:
    import torch

    pts = t.per_tensor_scale
    if t.block_size != 16:
        raise FormatError(f"from_torchao: NVFP4Tensor block_size must be 16; got {t.block_size}")
    if pts is not None and (pts.dim() != 0 or dtype_name(pts) != "float32"):
        raise FormatError(
            f"from_torchao: NVFP4Tensor per_tensor_scale must be one float32 scalar; got "
            f"{dtype_name(pts)} of shape {list(pts.shape)} (per-expert scales: convert each expert)"
        )
    _check_rowmajor(t, "NVFP4Tensor")
    # torchao's rounding rules, as breccia._recipes.NVFP4_TORCHAO: breccia.cast with this recipe gives torchao's bytes
    recipe = NVFP4BlockScaling(per_tensor_scale=pts is not None, block_scale_min=2.0**-6, data_scaling="reciprocal")
    shape = _shape(t)
    data = t.qdata.view(torch.uint8)
    return ScaledTensor(data, _unswizzle(ao, t, shape, 16), recipe, PerBlockK(16, -1), shape, global_scale=pts)
