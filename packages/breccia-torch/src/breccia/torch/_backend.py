"""The torch backend object: cast/dequantize/matmul/cast_ste on ``torch.Tensor``, natively on any device.

cast and dequantize run the shared driver (:mod:`breccia._generic`) with :class:`TorchOps`; nothing goes through
numpy. matmul takes a fused cuBLAS path on CUDA where one exists for the operands' layouts (:mod:`._mm`) and
otherwise dequantizes and multiplies in fp32 — always correct, fast where it can be.
"""

from __future__ import annotations

import importlib.util
import os
from functools import cache
from typing import Any

import torch

from breccia._errors import DTypeError, RecipeError
from breccia._generic import cast_generic, dequantize_generic
from breccia._layouts import Layout
from breccia._recipes import Recipe
from breccia._tensor import ScaledTensor

from ._chunked import cast_chunked
from ._ops import TorchOps

__all__ = ["BACKEND", "TorchBackend", "as_float_tensor", "torch_dtype"]

_FLOATS = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
_NAMES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def as_float_tensor(x: Any, who: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise DTypeError(f"{who} expected a torch.Tensor; got {type(x).__name__}")
    if x.dtype not in _FLOATS:
        raise DTypeError(
            f"{who} needs a floating-point tensor (float32, float16, bfloat16 or float64); got dtype {x.dtype}. "
            "Convert first, e.g. x.float()"
        )
    return x


def torch_dtype(dtype: Any, default: torch.dtype = torch.float32) -> torch.dtype:
    if dtype is None:
        return default
    if isinstance(dtype, torch.dtype):
        if dtype not in _FLOATS:
            raise DTypeError(f"dtype={dtype} is not a float dtype; expected one of {list(_NAMES)}")
        return dtype
    if isinstance(dtype, str) and dtype in _NAMES:
        return _NAMES[dtype]
    raise DTypeError(f"dtype={dtype!r}; expected a torch float dtype or one of {sorted(_NAMES)}")


@cache
def _triton_cast() -> Any:
    """breccia-triton's one-pass cast, if that add-on is installed (and not disabled with ``BRECCIA_TRITON=0``)."""
    if os.environ.get("BRECCIA_TRITON", "1") == "0" or importlib.util.find_spec("breccia.triton") is None:
        return None
    from breccia.triton._cast import cast

    return cast


def _check_capture(t: torch.Tensor, nonfinite: str) -> None:
    """``nonfinite="raise"`` must read whether any input was NaN/Inf on the host: a sync, which CUDA graph capture
    forbids. Refuse it before any kernel is queued, with the fix, rather than let torch invalidate the capture with
    an error that names neither breccia nor the argument. (``t.is_cuda`` first: the capture query raises on a
    machine without a CUDA driver.)"""
    if (
        nonfinite == "raise"
        and t.is_cuda
        and not torch.compiler.is_compiling()
        and torch.cuda.is_current_stream_capturing()
    ):
        raise RecipeError(
            "breccia.cast(nonfinite='raise') on a CUDA tensor while the current stream captures a CUDA graph: "
            "raising needs a host sync, which capture forbids. Pass nonfinite='propagate' inside the capture "
            "(NaN and Inf inputs then flow into the result as the format allows, as on every backend)"
        )


class TorchBackend:
    name = "torch"
    ops = TorchOps()

    def cast(self, x: Any, recipe: Recipe, layout: Layout, *, nonfinite: str, history: Any) -> Any:
        t = as_float_tensor(x, "breccia.cast")
        _check_capture(t, nonfinite)
        if t.is_cuda and history is None and not torch.compiler.is_compiling():
            fused = _triton_cast()  # byte-identical and 3-12x faster on an H100 (docs/benchmarks.md)
            if fused is not None:
                st = fused(t, recipe, layout=layout, nonfinite=nonfinite)
                if st is not None:
                    return st
        return self.cast_native(t, recipe, layout, nonfinite=nonfinite, history=history)

    def cast_native(self, x: Any, recipe: Recipe, layout: Layout, *, nonfinite: str, history: Any) -> Any:
        """The cast through breccia-torch's own driver (never routed to breccia-triton)."""
        t = as_float_tensor(x, "breccia.cast")
        with torch.no_grad():
            if history is None and not torch.compiler.is_compiling():
                chunked = cast_chunked(self.ops, t.detach(), recipe, layout, nonfinite)
                if chunked is not None:
                    return chunked
            return cast_generic(self.ops, t.detach(), recipe, layout, nonfinite=nonfinite, history=history)

    def dequantize(self, st: ScaledTensor, dtype: Any) -> torch.Tensor:
        out: torch.Tensor = dequantize_generic(self.ops, st)
        want = torch_dtype(dtype)
        return out if want == torch.float32 else out.to(want)

    def operand(self, x: Any) -> torch.Tensor:
        if isinstance(x, ScaledTensor):
            return self.dequantize(x, None)
        return as_float_tensor(x, "breccia.matmul").to(torch.float32)

    def matmul(self, a: Any, b: Any, out_dtype: Any) -> torch.Tensor:
        want = torch_dtype(out_dtype)
        from ._mm import fused_matmul

        fused = fused_matmul(a, b, want)
        if fused is not None:
            return fused
        return torch.matmul(self.operand(a), self.operand(b)).to(want)

    def cast_ste(self, x: Any, recipe: Recipe, layout: Layout) -> torch.Tensor:
        from ._ste import cast_ste

        return cast_ste(as_float_tensor(x, "breccia.cast_ste"), recipe, layout)


BACKEND = TorchBackend()
