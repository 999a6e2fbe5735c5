"""TransformerEngine, the writing side: breccia → TE's attribute tensors (padding, transposes, cuBLAS swizzle) and
the real TE classes built over them. The layouts are described in :mod:`breccia.bridges._transformer_engine`."""

from __future__ import annotations

import importlib
import math
import re
from typing import Any

import numpy as np

from breccia._errors import BackendNotInstalledError, DTypeError, FormatError, LayoutError, RecipeError
from breccia._layouts import PerBlock2D, PerBlockK, PerTensor
from breccia._recipes import (
    DelayedScaling,
    Float8BlockScaling,
    Float8CurrentScaling,
    MXFP8BlockScaling,
    NVFP4BlockScaling,
)
from breccia._tensor import ScaledTensor

from ._arrays import convert, host_numpy, require
from ._transformer_engine import _EXTRA, _TE_NAME, Usage, _bytes, _cdiv, _check_usage, _rup, swizzle_scales

__all__ = ["te_buffers", "to_transformer_engine"]


def _te_kind(st: ScaledTensor) -> str:
    r, lay = st.recipe, st.layout
    if isinstance(r, (DelayedScaling, Float8CurrentScaling)) and isinstance(lay, PerTensor):
        return "fp8"
    if isinstance(r, MXFP8BlockScaling):
        return "mxfp8"
    if isinstance(r, Float8BlockScaling) and r.block_k == 128 and r.block_m in (1, 128):
        return "blockwise"
    if isinstance(r, NVFP4BlockScaling):
        return "nvfp4"
    raise RecipeError(
        f"TransformerEngine has no tensor class for {r!r} with {lay!r}; it holds per-tensor FP8 (DelayedScaling, "
        f"Float8CurrentScaling), MXFP8, FP8 1×128 / 128×128 blocks and NVFP4: breccia.requantize(st, <one of those>)"
    )


def _amax_for(g: np.float32, emax: int = 448) -> float:
    """The fp32 amax TE stores for ``global_scale`` g: one whose ``amax / (emax·6)`` rounds back to g exactly."""
    den = np.float32(emax * 6)
    a = np.float32(g * den)
    bits = int(np.array(a).view(np.int32))  # a and its two fp32 neighbours on each side
    for cand in np.array([bits, bits - 1, bits + 1, bits - 2, bits + 2], np.int32).view(np.float32):
        if np.float32(cand / den) == g or not np.isfinite(a):
            return float(cand)
    raise FormatError(
        f"global_scale {float(g)!r} is amax/{emax * 6} for no fp32 amax, so TE cannot hold it exactly; "
        f"re-quantize first: breccia.cast(breccia.dequantize(st), st.recipe)"
    )


def _pad(x: Any, rows: int, cols: int) -> Any:
    import torch

    out = torch.zeros((rows, cols), dtype=x.dtype, device=x.device)  # padding is defined: zeros
    out[: x.shape[0], : x.shape[1]] = x
    return out


def te_buffers(st: ScaledTensor, *, usage: Usage = "rowwise", swizzle: bool = False) -> dict[str, Any]:
    """TE's attribute tensors for ``st`` (``{"_rowwise_data": ..., "_rowwise_scale_inv": ...}`` etc.): uint8/fp32 with
    TE's padding (zeros) and, with ``swizzle=True`` (MXFP8, NVFP4), cuBLAS's tiled scales. Pure torch, no TE needed.

    ``usage="columnwise"`` takes the 2-D ``(K, M)`` ScaledTensor of the transposed operand (what
    :func:`from_transformer_engine` returns for it) and gives TE's columnwise attributes of the ``(M, K)`` tensor.
    """
    import torch

    _check_usage(usage)
    if not isinstance(st, ScaledTensor):
        raise DTypeError(f"te_buffers needs a ScaledTensor; got {type(st).__name__}")
    st = st if st.framework == "torch" else convert(st, "torch")
    kind = _te_kind(st)
    lay = st.layout
    if not st.shape or (usage == "columnwise" and st.ndim != 2):
        want = "the 2-D (K, M) transposed operand" if usage == "columnwise" else "at least one dimension"
        raise LayoutError(f"te_buffers(usage={usage!r}) needs {want}; got shape {st.shape}")
    if isinstance(lay, (PerBlockK, PerBlock2D)) and lay.axis not in (-1, st.ndim - 1):
        raise LayoutError(f"TE blocks run along the last axis; got {lay!r}: breccia.requantize(st, st.recipe, axis=-1)")
    if swizzle and kind not in ("mxfp8", "nvfp4"):
        raise LayoutError(f"swizzle=True applies to MXFP8 and NVFP4 scales only; got {st.recipe!r}")
    col = usage == "columnwise"
    lead, r, c = st.shape[:-1], math.prod(st.shape[:-1]), st.shape[-1]
    data = _bytes(st.data)
    if kind == "fp8":
        return {"_transpose" if col else "_data": data, "_scale_inv": st.scale.reshape(1)}
    p = f"_{usage}"
    if kind == "blockwise":
        cb = _cdiv(c, 128)
        if isinstance(lay, PerBlockK):
            buf = _pad(st.scale.reshape(r, cb).t(), cb, _rup(r, 4))
        elif st.ndim > 2 and lead[-1] % 128:
            raise LayoutError(f"TE tiles 128×128 over flattened rows; shape {st.shape} needs shape[-2] % 128 == 0")
        else:
            buf = _pad(st.scale.reshape(_cdiv(r, 128), cb), _cdiv(r, 128), _rup(cb, 4))
        return {f"{p}_data": data, f"{p}_scale_inv": buf}
    block = 32 if kind == "mxfp8" else 16
    cb = _cdiv(c, block)
    s = _bytes(st.scale)
    if isinstance(lay, PerBlock2D):  # NVFP4 16×16: TE stores one scale per row, repeated over the 16 rows
        s = s.repeat_interleave(16, dim=-2)[..., : st.shape[-2], :]
    lin = _pad(s.reshape(r, cb), _rup(r, 128), _rup(cb, 4))
    buf = swizzle_scales(lin) if swizzle else lin
    if kind == "mxfp8":
        if not col:
            return {f"{p}_data": data, f"{p}_scale_inv": buf}
        buf = buf.reshape(_rup(cb, 4), _rup(r, 128)) if swizzle else buf.t().contiguous()
        return {f"{p}_data": data.t().contiguous(), f"{p}_scale_inv": buf}
    if c % 2:
        raise LayoutError(f"TE's NVFP4 packs whole byte pairs; K = {c} is odd")
    g = np.float32(1.0) if st.global_scale is None else np.float32(host_numpy(st.global_scale))
    amax = torch.tensor([_amax_for(g)], dtype=torch.float32, device=data.device)
    return {f"{p}_data": data, f"{p}_scale_inv": buf, f"_amax_{usage}": amax}


def to_transformer_engine(
    st: ScaledTensor, *, usage: Usage = "rowwise", swizzle: bool = False, dtype: Any = None
) -> Any:
    """The real TE tensor (``Float8Tensor``, ``MXFP8Tensor``, ``Float8BlockwiseQTensor``, ``NVFP4Tensor``) over
    :func:`te_buffers` of ``st``, holding only the ``usage`` copy, nominal ``dtype`` (default ``torch.float32``) and no
    quantizer. Needs transformer-engine >= 2.12; raises :class:`BackendNotInstalledError` naming the pip extra.
    """
    require("transformer_engine.pytorch", _EXTRA, "to_transformer_engine")
    import torch

    te = importlib.import_module("transformer_engine")
    version = str(getattr(te, "__version__", "0"))
    if tuple(int(n) for n in re.findall(r"\d+", version)[:2]) < (2, 12):
        raise BackendNotInstalledError(
            f"to_transformer_engine needs transformer-engine>=2.12 (installed {version}): "
            f"pip install -U 'breccia-bridges[{_EXTRA}]'"
        )
    tex = importlib.import_module("transformer_engine_torch")
    bufs = te_buffers(st, usage=usage, swizzle=swizzle)
    kind, get = _te_kind(st), bufs.get
    if kind == "fp8":
        kw = {"data": get("_data"), "data_transpose": get("_transpose"), "fp8_scale_inv": bufs["_scale_inv"]}
    else:
        kw = {f"{u}_{p}": get(f"_{u}_{p}") for u in ("rowwise", "columnwise") for p in ("data", "scale_inv")}
    if kind == "nvfp4":
        kw.update(amax_rowwise=get("_amax_rowwise"), amax_columnwise=get("_amax_columnwise"))
        kw.update(fp4_dtype=tex.DType.kFloat4E2M1, with_gemm_swizzled_scales=swizzle)
    else:
        kw["fp8_dtype"] = getattr(tex.DType, "kFloat8" + st.recipe.element.name)
    if kind == "mxfp8":
        kw["with_gemm_swizzled_scales"] = swizzle
    if kind == "blockwise":
        kw["is_2D_scaled"] = isinstance(st.layout, PerBlock2D)
    cls = getattr(importlib.import_module("transformer_engine.pytorch.tensor"), _TE_NAME[kind])
    shape = list(st.shape) if usage == "rowwise" else [st.shape[1], st.shape[0]]
    device = next(iter(bufs.values())).device
    return cls(shape=shape, dtype=dtype or torch.float32, requires_grad=False, device=device, quantizer=None, **kw)
