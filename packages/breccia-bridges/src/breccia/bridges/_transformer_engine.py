"""TransformerEngine: TE's quantized tensors ↔ ScaledTensor, bytes passed through, padding and swizzle undone.

TE (2.x, ``transformer_engine/pytorch/tensor/``) keeps every format as raw ``uint8`` buffers plus dequantization
scales (``scale_inv``: the same direction as breccia), laid out for cuBLAS:

- ``Float8Tensor``: ``_data`` (the tensor's shape), ``_scale_inv`` fp32 ``(1,)``, ``_transpose`` ``(K, *lead)``.
- ``MXFP8Tensor``: E8M0 bytes ``(roundup(M,128), roundup(K/32,4))`` rowwise; the columnwise copy keeps the data
  untransposed and stores its scales ``(roundup(M/32,4), roundup(K,128))``; ``_with_gemm_swizzled_scales`` says the
  scales sit in cuBLAS's 128×4 tiles (:func:`swizzle_scales`).
- ``Float8BlockwiseQTensor``: fp32 scales, 1×128 stored transposed ``(ceil(K/128), roundup(M,4))``, 128×128
  ``(ceil(M/128), roundup(ceil(K/128),4))``; columnwise data transposed ``(K, *lead)``.
- ``NVFP4Tensor``: packed E2M1 ``(M, K/2)`` (element 2i in the low nibble, as breccia), E4M3 scale bytes
  ``(roundup(M,128), roundup(K/16,4))``, fp32 ``_amax_rowwise``; columnwise ``(K, M/2)``.

TE flattens leading axes (M = prod(lead)). The *columnwise* copy always reads as the 2-D ScaledTensor of
``x.reshape(-1, K).T`` — shape ``(K, M)``, blocked along its last axis (M, the axis a wgrad/dgrad GEMM contracts).
Padding is written as zeros and ignored on read. NVFP4's per-tensor scale converts as ``global_scale =
amax / (e4m3_max·6)`` (fp32 division); TE's own dequantize computes ``(s8·amax)·fl(1/2688)`` instead, so breccia's
dequantize of a TE NVFP4 tensor may differ from TE's by up to 2 fp32 ulps (no single fp32 global scale matches it).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from breccia._errors import FormatError, LayoutError, RecipeError
from breccia._layouts import Layout, PerBlock2D, PerBlockK, PerTensor
from breccia._recipes import (
    DelayedScaling,
    Float8BlockScaling,
    Float8CurrentScaling,
    MXFP8BlockScaling,
    NVFP4BlockScaling,
    Recipe,
    scale_kind,
)
from breccia._tensor import ScaledTensor, array_framework, dtype_name

from ._arrays import host_numpy

__all__ = ["from_transformer_engine", "swizzle_scales", "unswizzle_scales"]

Usage = Literal["rowwise", "columnwise"]
_EXTRA = "transformer-engine"
_FP8 = {"kFloat8E4M3": "E4M3", "kFloat8E5M2": "E5M2"}
_NATIVE = {"E4M3": "float8_e4m3fn", "E5M2": "float8_e5m2"}
_TE_NAME = {
    "fp8": "Float8Tensor",
    "mxfp8": "MXFP8Tensor",
    "blockwise": "Float8BlockwiseQTensor",
    "nvfp4": "NVFP4Tensor",
}
# The tensor classes and their storage bases (``*Storage`` since TE 2.10, ``*Base`` before): all hold the attributes.
_CLASSES = {n + suffix: k for k, n in _TE_NAME.items() for suffix in ("", "Storage", "Base")}
_MISSING = object()


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _rup(a: int, b: int) -> int:
    return _cdiv(a, b) * b


def _retile(scale: Any, who: str, forward: bool) -> Any:
    """Swap the 128-row block index ``a`` (rows 32a+b) with the 4-col tile index ``u`` (torch or numpy)."""
    dims = tuple(int(n) for n in getattr(scale, "shape", ()))
    if len(dims) != 2 or dims[0] % 128 or dims[1] % 4:
        raise LayoutError(f"{who} needs a 2-D scale with rows % 128 == 0 and cols % 4 == 0 (TE pads so); got {dims}")
    r, c = dims
    tiles = scale.reshape((r // 128, 4, 32, c // 4, 4) if forward else (r // 128, c // 4, 32, 4, 4))
    axes = (0, 3, 2, 1, 4)
    return (tiles.permute(*axes) if hasattr(tiles, "permute") else tiles.transpose(axes)).reshape(r, c)


def swizzle_scales(scale: Any) -> Any:
    """Padded row-major ``(R, C)`` block scales → cuBLAS's GEMM layout (same shape, torch or numpy).

    cuBLAS reads MX/NVFP4 scales in 128×4 tiles, tiles row-major, each tile 32×16 bytes: scale ``[128t+32a+b,
    4u+c]`` lands at byte ``(t·C/4 + u)·512 + 16b + 4a + c`` (TE ``gemm_swizzled_scale_idx``).
    """
    return _retile(scale, "swizzle_scales", True)


def unswizzle_scales(scale: Any) -> Any:
    """Inverse of :func:`swizzle_scales`: cuBLAS 128×4-tiled scales back to padded row-major ``(R, C)``."""
    return _retile(scale, "unswizzle_scales", False)


# ---------------------------------------------------------------- reading TE objects


def _kind(t: Any) -> str:
    for cls in type(t).__mro__:
        kind = _CLASSES.get(cls.__name__)
        if kind is not None:
            return kind
    raise FormatError(
        f"from_transformer_engine needs a TransformerEngine Float8Tensor, MXFP8Tensor, Float8BlockwiseQTensor or "
        f"NVFP4Tensor (or its *Storage base); got {type(t).__module__}.{type(t).__name__}"
    )


def _attr(t: Any, name: str, attr: str) -> Any:
    value = getattr(t, attr, _MISSING)
    if value is _MISSING:
        raise FormatError(f"{name} has no attribute {attr}: not a TransformerEngine 2.x {name} layout")
    return value


def _tensor(t: Any, name: str, attr: str, dtypes: tuple[str, ...], shape: tuple[int, ...] | None = None) -> Any:
    """``t.<attr>`` checked against TE's dtype and (padded) shape; any mismatch names the attribute."""
    v = _attr(t, name, attr)
    if v is None:
        raise FormatError(f"{name}.{attr} is None: this tensor holds no such copy (try the other usage=)")
    if array_framework(v) != "torch" or not hasattr(v, "shape"):
        raise FormatError(f"{name}.{attr} must be a torch.Tensor; got {type(v).__name__}")
    if dtype_name(v) not in dtypes:
        raise FormatError(f"{name}.{attr} must have dtype {' or '.join(dtypes)}; got {dtype_name(v)}")
    if shape is not None and tuple(int(n) for n in v.shape) != shape:
        raise FormatError(f"{name}.{attr} must have TE's padded shape {shape}; got {tuple(int(n) for n in v.shape)}")
    return v


def _dtype_attr(t: Any, name: str, attr: str, allowed: dict[str, str]) -> str:
    """TE's ``DType`` enum (``transformer_engine.pytorch.DType`` or the pybind ``tex.DType``) or its name."""
    value = _attr(t, name, attr)
    key = value if isinstance(value, str) else getattr(value, "name", None)
    fmt = allowed.get(key.rsplit(".", 1)[-1] if isinstance(key, str) else "")
    if fmt is None:
        raise FormatError(f"{name}.{attr} must be DType.{' or DType.'.join(allowed)} (or its name); got {value!r}")
    return fmt


def _flag(t: Any, name: str, attr: str, required: bool = False) -> bool:
    value = _attr(t, name, attr) if required else getattr(t, attr, False)
    if not isinstance(value, bool):
        raise FormatError(f"{name}.{attr} must be True or False; got {value!r}")
    return value


def _one(t: Any, name: str, attr: str) -> Any:
    v = _tensor(t, name, attr, ("float32",))
    if v.numel() != 1:
        raise FormatError(f"{name}.{attr} must hold one fp32 value (per-tensor); got shape {tuple(v.shape)}")
    return v.reshape(())


def _operand(t: Any, name: str, usage: str, dtypes: tuple[str, ...], untransposed: bool = False) -> tuple[Any, ...]:
    """The usage's data as breccia sees it, with its leading shape, rows R and blocked length C.

    Rowwise: ``(*lead, K)``, R = prod(lead). Columnwise: the ``(K, M)`` operand; TE stores it ``(K, *lead)``, except
    MXFP8 (``untransposed``), whose columnwise data keeps ``(*lead, K)``."""
    attr = f"_{usage}_data"
    d = _tensor(t, name, attr, dtypes)
    if d.ndim == 0:
        raise FormatError(f"{name}.{attr} is 0-d; TE tensors have at least one dimension")
    if usage == "rowwise":
        return d, tuple(d.shape[:-1]), math.prod(d.shape[:-1]), int(d.shape[-1])
    data = d.reshape(-1, d.shape[-1]).t() if untransposed else d.reshape(d.shape[0], -1)
    return data, (int(data.shape[0]),), int(data.shape[0]), int(data.shape[1])


def _bytes(x: Any) -> Any:
    import torch

    return x if x.dtype == torch.uint8 else x.view(torch.uint8)


def _as(x: Any, dtype: str) -> Any:
    import torch

    return _bytes(x.contiguous()).view(getattr(torch, dtype))


def _all_pow2(scale: Any) -> bool:
    import torch

    s = scale.float()
    return bool(((s.view(torch.int32) & 0x7FFFFF) == 0).logical_and(s > 0).logical_and(s.isfinite()).all())


def _cublas_scales(t: Any, name: str, usage: str, r: int, cb: int, transposed: bool = False) -> Any:
    """MX/NVFP4 scale bytes ``(R, Cb)`` out of TE's padded ``(roundup(R,128), roundup(Cb,4))`` buffer (stored
    transposed for columnwise MXFP8), undoing cuBLAS's swizzle when ``_with_gemm_swizzled_scales``."""
    swz = _flag(t, name, "_with_gemm_swizzled_scales")
    padded = (_rup(r, 128), _rup(cb, 4))
    ok = ("uint8", "float8_e8m0fnu" if name == "MXFP8Tensor" else "float8_e4m3fn")
    buf = _bytes(_tensor(t, name, f"_{usage}_scale_inv", ok, padded[::-1] if transposed else padded))
    if swz:
        return unswizzle_scales(buf.reshape(padded))[:r, :cb]
    return (buf.t() if transposed else buf)[:r, :cb]


def _read_fp8(t: Any, name: str, usage: str) -> tuple[Any, ...]:
    fmt = _dtype_attr(t, name, "_fp8_dtype", _FP8)
    ok, scale = ("uint8", _NATIVE[fmt]), _one(t, name, "_scale_inv")
    transpose = None if getattr(t, "_transpose_invalid", False) else getattr(t, "_transpose", None)
    if usage == "rowwise" or transpose is None:  # without a transpose cache (Blackwell) one copy serves both usages
        data = _tensor(t, name, "_data", ok)
        if usage == "columnwise":
            data = data.reshape(-1, data.shape[-1] if data.ndim else 1).t()
    else:
        data = _tensor(t, name, "_transpose", ok)
        data = data.reshape(data.shape[0] if data.ndim else 1, -1)  # (K, *lead) → (K, M)
    q = getattr(t, "_quantizer", None)
    if type(q).__name__ == "Float8CurrentScalingQuantizer":
        pow2 = bool(getattr(q, "force_pow_2_scales", False)) and _all_pow2(scale)
        recipe: Recipe = Float8CurrentScaling(fmt, pow2, float(getattr(q, "amax_epsilon", 0.0)))
    else:
        recipe = DelayedScaling(fmt)  # TE's Float8Quantizer, or unknown: the seed's default
    return _as(data, _NATIVE[fmt]), scale, recipe, PerTensor(), tuple(data.shape), None


def _read_mxfp8(t: Any, name: str, usage: str) -> tuple[Any, ...]:
    fmt = _dtype_attr(t, name, "_fp8_dtype", _FP8)
    data, lead, r, c = _operand(t, name, usage, ("uint8", _NATIVE[fmt]), untransposed=True)
    scale = _cublas_scales(t, name, usage, r, _cdiv(c, 32), transposed=usage == "columnwise")
    data, scale = _as(data, _NATIVE[fmt]), _as(scale.reshape(*lead, -1), "float8_e8m0fnu")
    return data, scale, MXFP8BlockScaling(fmt), PerBlockK(32), tuple(data.shape), None


def _read_blockwise(t: Any, name: str, usage: str) -> tuple[Any, ...]:
    fmt = _dtype_attr(t, name, "_fp8_dtype", _FP8)
    is_2d = _flag(t, name, "_is_2D_scaled", required=True)
    form = getattr(t, "_data_format", None)
    if form is not None and "GEMM_READY" not in str(form):
        raise FormatError(f"{name}._data_format is {form!r}; only GEMM_READY scales are read (TE's all-gather format)")
    data, lead, r, c = _operand(t, name, usage, ("uint8", _NATIVE[fmt]))
    cb, attr = _cdiv(c, 128), f"_{usage}_scale_inv"
    layout: Layout
    if not is_2d:  # 1×128 scales stored transposed, (Cb, roundup(R, 4))
        scale = _tensor(t, name, attr, ("float32",), (cb, _rup(r, 4)))[:, :r].t().reshape(*lead, cb)
        layout = PerBlockK(128)
    else:  # 128×128 tiles over the flattened rows, (ceil(R/128), roundup(Cb, 4))
        buf = _tensor(t, name, attr, ("float32",), (_cdiv(r, 128), _rup(cb, 4)))
        if data.ndim < 2 or (data.ndim > 2 and lead[-1] % 128):
            raise FormatError(
                f"{name} is 128×128-scaled over its flattened rows, which a {data.ndim}-D breccia tensor of shape "
                f"{tuple(data.shape)} cannot hold; reshape the TE tensor to 2-D first (t.view(-1, K))"
            )
        scale, layout = buf[:, :cb].reshape(*lead[:-1], _cdiv(lead[-1], 128), cb), PerBlock2D(128, 128)
    q = getattr(t, "_quantizer", None)
    pow2 = bool(getattr(q, "force_pow_2_scales", True)) and _all_pow2(scale)  # TE's default: power-of-two scales
    recipe = Float8BlockScaling(fmt, 128, 128 if is_2d else 1, pow2)
    return _as(data, _NATIVE[fmt]), scale.contiguous(), recipe, layout, tuple(data.shape), None


def _read_nvfp4(t: Any, name: str, usage: str) -> tuple[Any, ...]:
    import torch

    _dtype_attr(t, name, "_fp4_dtype", {"kFloat4E2M1": "E2M1"})
    if _flag(t, name, "_row_scaled_nvfp4"):
        raise FormatError(f"{name}._row_scaled_nvfp4 is True: one amax per row has no breccia form (one global scale)")
    emax = getattr(t, "_nvfp4_e4m3_max", 448)
    if emax not in (448, 256):
        raise FormatError(f"{name}._nvfp4_e4m3_max must be 448 or 256; got {emax!r}")
    if usage == "columnwise" and getattr(getattr(t, "_quantizer", None), "with_rht", False):
        raise FormatError(f"{name}'s columnwise copy holds Hadamard-transformed values (quantizer.with_rht=True)")
    data, lead, r, half = _operand(t, name, usage, ("uint8",))  # packed: (…, K/2); columnwise (K, M/2)
    scale = _cublas_scales(t, name, usage, r, _cdiv(2 * half, 16)).reshape(*lead, -1)
    amax = np.float32(host_numpy(_one(t, name, f"_amax_{usage}")))
    g = torch.tensor(amax / np.float32(emax * 6), dtype=torch.float32, device=data.device)
    return data, _as(scale, "float8_e4m3fn"), NVFP4BlockScaling(), PerBlockK(16), (*lead, 2 * half), g


_READERS = {"fp8": _read_fp8, "mxfp8": _read_mxfp8, "blockwise": _read_blockwise, "nvfp4": _read_nvfp4}


def _check_usage(usage: object) -> None:
    if usage not in ("rowwise", "columnwise"):
        raise LayoutError(f"usage must be 'rowwise' or 'columnwise'; got {usage!r}")


def _override(recipe: Recipe | None, inferred: Recipe, scale: Any) -> Recipe:
    """``recipe=`` may relabel the tensor only with a recipe that stores exactly the same bits."""
    if recipe is None:
        return inferred
    if not isinstance(recipe, Recipe):
        raise RecipeError(f"recipe must be a breccia recipe or None; got {recipe!r}")
    fp8 = (DelayedScaling, Float8CurrentScaling)
    same = (
        (type(recipe) is type(inferred) or (isinstance(recipe, fp8) and isinstance(inferred, fp8)))
        and recipe.element.name == inferred.element.name
        and scale_kind(recipe) == scale_kind(inferred)
        and recipe.default_layout() == inferred.default_layout()
        and recipe.has_global_scale == inferred.has_global_scale
    )
    if not same:
        raise RecipeError(f"recipe={recipe!r} does not store this TE tensor's bits; it reads as {inferred!r}")
    if getattr(recipe, "power_of_2_scales", False) and not _all_pow2(scale):
        raise RecipeError(
            f"recipe={recipe!r} claims power-of-two scales, but this tensor's scales are not all powers of 2"
        )
    return recipe


def from_transformer_engine(t: Any, *, usage: Usage = "rowwise", recipe: Recipe | None = None) -> ScaledTensor:
    """A ScaledTensor over a TE tensor's ``usage`` copy: data bytes shared, scales unpadded/unswizzled (small copy).

    ``"columnwise"`` gives the 2-D ``(K, M)`` tensor ``x.reshape(-1, K).T`` blocked along its last axis. The recipe
    is inferred (Float8Tensor: ``Float8CurrentScaling`` when its quantizer says so, else ``DelayedScaling``;
    blockwise ``power_of_2_scales`` from the quantizer, TE's default True); ``recipe=`` relabels with another recipe
    that stores the same bits. Raises :class:`FormatError` naming the attribute that does not match TE's layout.
    """
    _check_usage(usage)
    kind = _kind(t)
    data, scale, inferred, layout, shape, g = _READERS[kind](t, type(t).__name__, usage)
    return ScaledTensor(data, scale, _override(recipe, inferred, scale), layout, shape, global_scale=g)


# ---------------------------------------------------------------- writing TE buffers
