"""Fused scaled matmul on CUDA: ``torch._scaled_mm`` where cuBLAS supports the operands, else ``None``.

cuBLAS FP8 GEMM takes E4M3/E5M2 operands with ``a`` row-major and ``b`` column-major, K and N multiples of 16, and
dequantization scales per tensor (0-d) or per row/column (rowwise, bf16 output). Anything else — other recipes,
block layouts, CPU tensors, unaligned shapes — returns ``None`` and the caller dequantizes (always correct).
"""

from __future__ import annotations

from typing import Any

import torch
from breccia._layouts import PerChannel, PerTensor
from breccia._recipes import DelayedScaling, Float8BlockScaling, Float8CurrentScaling
from breccia._tensor import ScaledTensor

__all__ = ["fused_matmul"]

_FP8_RECIPES = (Float8CurrentScaling, DelayedScaling, Float8BlockScaling)


def _fp8(x: Any) -> bool:
    return isinstance(x, ScaledTensor) and isinstance(x.recipe, _FP8_RECIPES) and x.data.is_cuda


def fused_matmul(a: Any, b: Any, out_dtype: torch.dtype) -> torch.Tensor | None:
    if not (_fp8(a) and _fp8(b)) or a.ndim < 2 or b.ndim != 2:
        return None
    if a.data.dtype == torch.float8_e5m2 and b.data.dtype == torch.float8_e5m2:
        return None  # cuBLAS has no E5M2 x E5M2 kernel
    k, n = b.shape
    if k % 16 or n % 16:
        return None
    a2 = a.data.reshape(-1, k)
    lead = a.shape[:-1]
    if isinstance(a.layout, PerTensor) and isinstance(b.layout, PerTensor):
        out = torch._scaled_mm(
            a2,
            b.data.t().contiguous().t(),
            scale_a=a.scale.reshape(()).float(),
            scale_b=b.scale.reshape(()).float(),
            out_dtype=out_dtype,
        )
        return out.reshape(*lead, n)
    rowwise_a = isinstance(a.layout, PerChannel) and a.layout.axis in (-1, a.ndim - 1)
    rowwise_b = isinstance(b.layout, PerChannel) and b.layout.axis in (0, -2)
    if rowwise_a and rowwise_b and a.ndim == 2:
        out = torch._scaled_mm(
            a2,
            b.data.t().contiguous().t(),
            scale_a=a.scale.reshape(-1, 1).float(),
            scale_b=b.scale.reshape(1, -1).float(),
            out_dtype=torch.bfloat16,
        )
        return out.reshape(*lead, n).to(out_dtype)
    return None
