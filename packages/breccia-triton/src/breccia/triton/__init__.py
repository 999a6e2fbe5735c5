"""breccia.triton — Triton GPU kernels for breccia: a fused one-pass quantize and FP8 scaled GEMMs.

``cast(x, recipe)`` quantizes a CUDA ``torch.Tensor`` (blocks along the last axis) with one Triton kernel and
returns the same ScaledTensor, byte for byte, that ``breccia.cast`` returns through breccia-torch; it returns None
where the kernel does not apply (``supports`` says which). breccia-torch routes CUDA casts here when this package is
installed (``BRECCIA_TRITON=0`` opts out). ``w4a16_matmul`` multiplies bf16/fp16 activations by an INT4 or NVFP4
weight, dequantizing in registers (the decode path; breccia-torch's ``breccia.matmul`` routes such CUDA products here).

Add-ons never ship ``breccia/__init__.py`` (DESIGN.md §1): this file is ``breccia/triton/__init__.py`` only, and
it imports neither torch nor triton until a function is called, so ``import breccia.triton`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from breccia._layouts import Layout
    from breccia._recipes import Recipe
    from breccia._tensor import ScaledTensor

__all__ = ["cast", "scaled_gemm", "supports", "w4a16_matmul"]


def cast(
    x: Any, recipe: Recipe, *, layout: Layout | None = None, axis: int = -1, nonfinite: str = "raise"
) -> ScaledTensor | None:
    """Quantize ``x`` with the Triton kernel (None where it does not apply); see :func:`breccia.cast`."""
    from ._cast import cast as _cast

    return _cast(x, recipe, layout=layout, axis=axis, nonfinite=nonfinite)


def scaled_gemm(
    a: Any, sa: Any, b: Any, sb: Any, mode: str, out_dtype: Any, *, config: dict[str, int] | None = None
) -> Any:
    """FP8 ``(a · sa) @ (b · sb)`` with FP32 accumulation: ``mode`` ``"tensor"``, ``"row"`` or ``"block"`` (DeepSeek
    1×128 activations · 128×128 weights, promoted to FP32 per 128-wide K block). See :mod:`breccia.triton._gemm`."""
    from ._gemm import scaled_gemm as _gemm

    return _gemm(a, sa, b, sb, mode, out_dtype, config=config)


def supports(x: Any, recipe: Recipe, layout: Layout | None = None, axis: int = -1) -> bool:
    """Whether :func:`cast` runs the kernel for ``x`` (a CUDA tensor, or CPU under ``TRITON_INTERPRET=1``)."""
    from ._cast import supports as _supports

    return _supports(x, recipe, layout, axis)


def w4a16_matmul(x: Any, w: ScaledTensor, *, out_dtype: Any = None) -> Any:
    """bf16/fp16 ``x[..., K]`` times a 4-bit (INT4 / NVFP4) weight along its blocked axis, FP32 accumulation; None
    where the kernel does not apply. See :mod:`breccia.triton._w4a16`."""
    from ._w4a16 import w4a16_matmul as _w4a16

    return _w4a16(x, w, out_dtype=out_dtype)
