"""torchao 0.18, the writing side: breccia → torchao's tensor subclasses, the bits passed through unchanged (scales
swizzled into cuBLAS tiles on request, ``Int4Tensor``'s scales and zeros transposed). The mapping and what cannot
cross are described in :mod:`breccia.bridges._torchao`."""

from __future__ import annotations

import math
from typing import Any

from breccia._errors import DTypeError, FormatError, LayoutError, RecipeError
from breccia._recipes import (
    DelayedScaling,
    Float8BlockScaling,
    Float8CurrentScaling,
    INT4Scaling,
    INT8Scaling,
    MXFP4BlockScaling,
    MXFP6BlockScaling,
    MXFP8BlockScaling,
    NVFP4BlockScaling,
)
from breccia._tensor import ScaledTensor, dtype_name

from ._arrays import convert
from ._torchao import _AO, _SUPPORTED

__all__ = ["to_torchao"]


def to_torchao(st: ScaledTensor, *, dtype: Any = None, swizzled_scales: bool | None = None, like: Any = None) -> Any:
    """The torchao 0.18 tensor holding ``st``'s bits (no FP32 round trip), on ``st``'s device.

    ``dtype``: the high-precision dtype torchao records (``.dequantize()``'s default output); defaults to
    ``like``'s or ``torch.float32`` (``Int4Tensor``: its scale dtype). ``swizzled_scales``: store MX / NVFP4 scales in
    cuBLAS tiles, as torchao's inference configs do (default ``like``'s or False). ``like``: a torchao tensor of the
    same class whose activation-side settings are copied. An ``MXTensor`` without ``like`` gets the
    ``act_quant_kwargs`` torchao's ``MXDynamicActivationMXWeightConfig`` would give it (same element, the recipe's
    scale rounding), so it runs in ``F.linear`` and ``from_torchao`` reads the rounding back.
    """
    if not isinstance(st, ScaledTensor):
        raise DTypeError(f"to_torchao takes a breccia ScaledTensor; got {type(st).__name__}")
    ao = _AO("to_torchao")
    import torch

    st = st if st.framework == "torch" else convert(st, "torch")
    r, shape = st.recipe, st.shape
    if isinstance(r, (INT4Scaling, INT8Scaling)) and r.float_zero_point:
        raise RecipeError(
            f"to_torchao: {r!r} keeps a float zero point (zero_point_domain='float': unsigned codes, "
            "x = q·s + z rounded in the scale dtype, MLX's affine form); torchao's Int4Tensor holds signed codes, so "
            f"no torchao 0.18 tensor has these bits. It supports {_SUPPORTED}"
        )
    cls = (ao.Float8Tensor if isinstance(r, (Float8CurrentScaling, DelayedScaling, Float8BlockScaling)) else
           ao.Int4Tensor if isinstance(r, INT4Scaling) and r.signed else
           ao.MXTensor if isinstance(r, (MXFP8BlockScaling, MXFP4BlockScaling, MXFP6BlockScaling)) else
           ao.NVFP4Tensor if isinstance(r, NVFP4BlockScaling) and r.block_m == 1 else None)  # fmt: skip
    if cls is None:
        raise RecipeError(f"to_torchao has no torchao 0.18 tensor for {r!r}; it supports {_SUPPORTED}")
    if like is not None and not isinstance(like, cls):
        raise DTypeError(f"to_torchao: like= must be a torchao {cls.__name__} for {r.name}; got {type(like).__name__}")

    def attr(name: str, default: Any) -> Any:
        return default if like is None else getattr(like, name, default)

    hp = dtype if dtype is not None else attr("dtype", torch.float32)
    swz = bool(attr("is_swizzled_scales", False) if swizzled_scales is None else swizzled_scales)
    block = st.layout.block_shape(shape)
    if cls is not ao.Int4Tensor and any(n % b for n, b in zip(shape, block)):  # Int4Tensor's last group may be short
        raise LayoutError(
            f"to_torchao: torchao's {cls.__name__} has no partial blocks; {r.name} on shape "
            f"{list(shape)} has blocks {list(block)} (pad to a multiple, or keep it in breccia)"
        )
    if cls is ao.Float8Tensor:
        grid = tuple(n // b for n, b in zip(shape, block))
        return cls(st.data, st.scale.reshape(grid), list(block), attr("mm_config", None),
                   attr("act_quant_kwargs", None), attr("kernel_preference", ao.KernelPreference.AUTO), hp)  # fmt: skip
    if st.layout.blocked_axis not in (-1, len(shape) - 1) or len(shape) < (2 if swz or cls is not ao.MXTensor else 1):
        raise LayoutError(
            f"to_torchao: torchao's {cls.__name__} blocks the last axis of a ≥2-D tensor; got "
            f"{st.layout!r} on shape {list(shape)}"
        )
    if cls is ao.Int4Tensor:
        return _to_int4(st, ao, dtype, attr)
    data = st.data if dtype_name(st.data).startswith("float8") else st.data.view(torch.uint8)
    if cls is ao.NVFP4Tensor:
        scale = _swizzle(ao, st.scale, shape, 16) if swz else st.scale
        return cls(data, scale, 16, hp, st.global_scale, attr("act_per_tensor_scale", None), swz,
                   attr("use_triton_kernel", False), attr("act_quant_kwargs", None))  # fmt: skip
    elem = {"E4M3": torch.float8_e4m3fn, "E5M2": torch.float8_e5m2, "E2M1": torch.float4_e2m1fn_x2}.get(
        r.element.name, f"fp6_{r.element.name.lower()}"
    )
    emulated = ao.KernelPreference.EMULATED
    mode = ao.Mode.FLOOR if getattr(r, "scale_rounding", "rceil") == "floor" else ao.Mode.RCEIL
    kwargs = attr(
        "act_quant_kwargs",
        ao.MXKwargs(
            elem_dtype=elem, block_size=32, scaling_mode=mode, kernel_preference=emulated, is_swizzled_scales=swz
        ),
    )
    scale = _swizzle(ao, st.scale, shape, 32) if swz else st.scale
    return cls(data, scale, elem, 32, hp, attr("kernel_preference", emulated), kwargs, swz)


def _swizzle(ao: _AO, scale: Any, shape: tuple[int, ...], block: int) -> Any:
    """torchao's swizzled scale: the ``(prod(lead)·M, K/block)`` matrix in cuBLAS tiles, zero padded."""
    lead, m, k = shape[:-2], shape[-2], shape[-1]
    sm, sk = getattr(ao.utils, f"hp_data_dims_to_swizzled_scale_dims_{'mx' if block == 32 else 'nvfp4'}")(m, k)
    tiles = ao.utils.to_blocked(scale.reshape(math.prod(lead) * m, k // block))
    if tiles.numel() != math.prod(lead) * sm * sk:
        raise LayoutError(
            f"to_torchao: torchao swizzles the scales of a batched tensor only when M is a multiple "
            f"of 128; got shape {list(shape)} (pass swizzled_scales=False)"
        )
    return tiles.view(*lead, sm, sk)


def _to_int4(st: ScaledTensor, ao: _AO, dtype: Any, attr: Any) -> Any:
    import torch

    shape, s = st.shape, st.scale
    if shape[-1] % 2:
        raise LayoutError(f"to_torchao: Int4Tensor packs codes in pairs along K; K = {shape[-1]} is odd")
    if dtype is not None and dtype != s.dtype:
        raise RecipeError(f"to_torchao: an Int4Tensor's dtype is its scale dtype ({s.dtype}); got dtype={dtype}")
    if st.zero_point is None:
        zero = torch.zeros_like(s)
    else:
        exact = -st.zero_point.double() * s.double() + 0.0  # + 0.0: zp = 0 gives +0, as torchao's zeros
        zero = exact.to(s.dtype)
        bad = zero.double() != exact
        if bool(bad.any()):
            raise FormatError(
                f"to_torchao: Int4Tensor stores a float zero point in the scale dtype ({s.dtype}); −zp·scale is "
                f"not exact there in {int(bad.sum())} of {bad.numel()} groups, so torchao cannot hold these bits "
                f"exactly (use a symmetric INT4Scaling)"
            )
    g = st.layout.block_shape(shape)[-1]
    return ao.Int4Tensor(st.data.view(torch.int8), s.transpose(-1, -2).contiguous(),
                         zero.transpose(-1, -2).contiguous(), [1] * (len(shape) - 1) + [g], torch.Size(shape),
                         attr("act_pre_scale", None), attr("activation_dtype", None))  # fmt: skip
