"""Fused scaled matmul on CUDA through cuBLAS, where cuBLAS supports the operands; else ``None``.

cuBLAS FP8 GEMM (``torch._scaled_mm`` / ``torch.nn.functional.scaled_mm``) wants ``a`` row-major and ``b``
column-major, K and N multiples of 16, not both E5M2, and dequantization scales that are per tensor (one fp32),
rowwise (``(M,1)`` and ``(1,N)``) or DeepSeek blockwise (``a`` 1×128 along K, ``b`` 128×128; E4M3 only; K and N
multiples of 128; scales outer-dim-major, ``b``'s padded to a multiple of 4 along K). Those layout conversions are
made here from breccia's compact row-major scale grids. A plain bf16/fp16 activation times an INT4/NVFP4 weight goes
to breccia-triton's W4A16 kernel when that add-on is installed, and so does a DeepSeek blockwise pair cuBLAS refuses
(K or N not a multiple of 128, or E5M2) or, on sm_90, a large one its warp-specialised kernel computes faster.
Anything else — MX recipes (cuBLAS on Hopper has no MX kernel), CPU tensors, unaligned shapes — returns ``None`` and
the caller dequantizes, which is always correct.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from functools import cache
from typing import Any

import torch
import torch.nn.functional as F

from breccia._layouts import PerBlock2D, PerBlockK, PerChannel, PerTensor
from breccia._recipes import DelayedScaling, Float8BlockScaling, Float8CurrentScaling, INT4Scaling, NVFP4BlockScaling
from breccia._tensor import ScaledTensor

__all__ = ["fused_matmul"]

_FP8_RECIPES = (Float8CurrentScaling, DelayedScaling, Float8BlockScaling)


def _fp8_cuda(x: Any) -> bool:
    return isinstance(x, ScaledTensor) and isinstance(x.recipe, _FP8_RECIPES) and x.data.is_cuda


def _col_major(t: torch.Tensor) -> torch.Tensor:
    """``t`` (K, N) as a column-major matrix: free if it already is (a transposed view), else one copy."""
    return t if t.stride() == (1, t.shape[0]) else t.t().contiguous().t()


def _deepseek_layouts(a: ScaledTensor, b: ScaledTensor) -> bool:
    """``a`` in 1×128 blocks along K, ``b`` in 128×128 tiles blocked along its K axis (DeepSeek-V3's pair)."""
    la, lb = a.layout, b.layout
    if not (isinstance(la, PerBlockK) and la.block_k == 128 and la.axis in (-1, a.ndim - 1)):
        return False
    return isinstance(lb, PerBlock2D) and lb.block_m == 128 and lb.block_k == 128 and lb.axis == -2


def _blockwise(a: ScaledTensor, b: ScaledTensor, out_dtype: torch.dtype) -> torch.Tensor | None:
    if not _deepseek_layouts(a, b):
        return None
    if a.data.dtype != torch.float8_e4m3fn or b.data.dtype != torch.float8_e4m3fn:
        return _triton_blockwise(a, b, out_dtype)
    scaled_mm = getattr(F, "scaled_mm", None)
    scaling = getattr(F, "ScalingType", None)
    k, n = b.shape
    if scaled_mm is None or scaling is None or k % 128 or n % 128:
        return _triton_blockwise(a, b, out_dtype)  # shapes cuBLAS refuses: breccia-triton's kernel takes any K, N
    a2 = a.data.reshape(-1, k)
    m = a2.shape[0]
    if _ws_wins(m, n, k, a2.device):
        out_ws = _triton_blockwise(a, b, out_dtype, k_major=True)
        if out_ws is not None:
            return out_ws
    sa = a.scale.reshape(m, k // 128).float().t().contiguous().t()  # (M, K/128), strides (1, M)
    nb, lk = n // 128, k // 128
    l4 = -(-lk // 4) * 4
    sw = F.pad(b.scale.float().t().contiguous(), (0, l4 - lk))  # (N/128, L4)
    out = scaled_mm(
        a2,
        _col_major(b.data),
        sa,
        scaling.BlockWise1x128,
        sw.t(),
        scaling.BlockWise128x128,
        output_dtype=out_dtype if out_dtype in (torch.bfloat16, torch.float16) else torch.float32,
    )
    assert out.shape == (m, nb * 128)
    result: torch.Tensor = out.reshape(*a.shape[:-1], n).to(out_dtype)
    return result


@cache
def _triton(module: str, name: str) -> Any:
    """``breccia.triton.<module>.<name>`` if that add-on is installed (and not disabled with ``BRECCIA_TRITON=0``);
    looked up on first use, so ``import breccia.torch`` never imports triton."""
    if os.environ.get("BRECCIA_TRITON", "1") == "0" or importlib.util.find_spec("breccia.triton") is None:
        return None
    return getattr(importlib.import_module(f"breccia.triton.{module}"), name)


def _triton_gemm() -> Any:
    return _triton("_gemm", "scaled_gemm")


def _triton_w4a16() -> Any:
    return _triton("_w4a16", "w4a16_matmul")


# From ~0.55 TFLOP per call (~0.5 ms of GPU time) the warp-specialised kernel's 130-220 µs Python launch (cuBLAS:
# ~30 µs) hides behind the GPU work, and its GPU-time lead over cuBLAS's blockwise GEMM (1.04× geometric mean on an
# H200) showed in whole eager calls too (1.01-1.08×); below that cuBLAS's eager calls are faster (benchmarks/NOTES.md).
_WS_MIN_FLOPS = 2**39


def _ws_wins(m: int, n: int, k: int, device: torch.device) -> bool:
    """Whether breccia-triton's warp-specialised blockwise GEMM beats cuBLAS here: sm_90, M > 128, a large call."""
    if m <= 128 or 2 * m * n * k < _WS_MIN_FLOPS:
        return False
    available = _triton("_gemm", "ws_available")
    return available is not None and bool(available(device))


def _triton_blockwise(
    a: ScaledTensor, b: ScaledTensor, out_dtype: torch.dtype, *, k_major: bool = False
) -> torch.Tensor | None:
    """The 1×128 · 128×128 product through breccia-triton: where cuBLAS has no kernel for it (K or N not a multiple
    of 128, E5M2 operands), and (``k_major``: ``b`` handed over K-contiguous, as its TMA kernels read it) where it
    is faster. Per-128-K promotion like cuBLAS, within the same tolerance; None without the add-on."""
    gemm = _triton_gemm()
    if gemm is None or torch.compiler.is_compiling() or a.data.dtype != b.data.dtype:
        return None
    k, n = b.shape
    a2 = a.data.reshape(-1, k)
    out_dt = out_dtype if out_dtype in (torch.float32, torch.bfloat16, torch.float16) else torch.float32
    bd = _col_major(b.data) if k_major else b.data
    out: torch.Tensor = gemm(a2, a.scale.reshape(a2.shape[0], -1), bd, b.scale, "block", out_dt)
    return out.reshape(*a.shape[:-1], n).to(out_dtype)


def _w4a16(a: Any, b: Any, out_dtype: torch.dtype) -> torch.Tensor | None:
    """A plain bf16/fp16 CUDA activation times a ``(K, N)`` INT4/NVFP4 weight blocked along K: breccia-triton's
    kernel dequantizes in registers and reads a quarter of bf16's weight bytes (decode); None where it does not."""
    if isinstance(a, ScaledTensor) or not isinstance(a, torch.Tensor) or a.dtype not in (torch.bfloat16, torch.float16):
        return None
    if not (a.is_cuda and isinstance(b, ScaledTensor) and isinstance(b.recipe, (INT4Scaling, NVFP4BlockScaling))):
        return None
    if b.ndim != 2 or b.layout.blocked_axis not in (0, -2) or torch.compiler.is_compiling():
        return None
    kernel = _triton_w4a16()
    out: torch.Tensor | None = None if kernel is None else kernel(a, b, out_dtype=out_dtype)
    return out


def fused_matmul(a: Any, b: Any, out_dtype: torch.dtype) -> torch.Tensor | None:
    w4 = _w4a16(a, b, out_dtype)
    if w4 is not None:
        return w4
    if not (_fp8_cuda(a) and _fp8_cuda(b)) or a.ndim < 2 or b.ndim != 2:
        return None
    if a.data.dtype == torch.float8_e5m2 and b.data.dtype == torch.float8_e5m2:  # cuBLAS has no E5M2 x E5M2 kernel
        return _blockwise(a, b, out_dtype) if _deepseek_layouts(a, b) else None
    k, n = b.shape
    if k % 16 or n % 16:
        return _blockwise(a, b, out_dtype) if _deepseek_layouts(a, b) else None
    a2 = a.data.reshape(-1, k)
    lead = a.shape[:-1]
    out_dt = out_dtype if out_dtype in (torch.float32, torch.bfloat16, torch.float16) else torch.float32
    if isinstance(a.layout, PerTensor) and isinstance(b.layout, PerTensor):
        out = torch._scaled_mm(
            a2,
            _col_major(b.data),
            scale_a=a.scale.reshape(()).float(),
            scale_b=b.scale.reshape(()).float(),
            out_dtype=out_dt,
        )
        return out.reshape(*lead, n).to(out_dtype)
    rowwise_a = isinstance(a.layout, PerChannel) and a.layout.axis in (-1, a.ndim - 1)
    rowwise_b = isinstance(b.layout, PerChannel) and b.layout.axis in (-2, 0)
    if rowwise_a and rowwise_b:
        out = torch._scaled_mm(
            a2,
            _col_major(b.data),
            scale_a=a.scale.reshape(-1, 1).float().contiguous(),
            scale_b=b.scale.reshape(1, -1).float(),
            out_dtype=out_dt,
        )
        return out.reshape(*lead, n).to(out_dtype)
    return _blockwise(a, b, out_dtype)
