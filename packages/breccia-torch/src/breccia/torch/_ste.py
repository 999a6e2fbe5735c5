"""Straight-through estimator: forward ``dequantize(cast(x))``, backward the identity (a ``torch.autograd.Function``).

This is how FP8/FP4 training sees quantization: the forward pass uses exactly the values the low-precision tensor
represents, and the gradient passes through the rounding unchanged (Bengio et al. 2013; TE and torchao do the same).
"""

from __future__ import annotations

from typing import Any

import torch

from breccia._generic import cast_generic, dequantize_generic
from breccia._layouts import Layout
from breccia._recipes import Recipe
from breccia._tensor import ScaledTensor

from ._ops import TorchOps

__all__ = ["cast_ste", "fake_quant"]

_OPS = TorchOps()


def fake_quant(x: torch.Tensor, recipe: Recipe, layout: Layout, nonfinite: str = "propagate") -> torch.Tensor:
    """``dequantize(cast(x))`` in ``x``'s dtype, without autograd."""
    st = cast_generic(_OPS, x.detach(), recipe, layout, nonfinite=nonfinite)
    assert isinstance(st, ScaledTensor)
    out: torch.Tensor = dequantize_generic(_OPS, st)
    return out.to(x.dtype)


class _STE(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, recipe: Recipe, layout: Layout) -> torch.Tensor:
        return fake_quant(x, recipe, layout)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return grad, None, None


def cast_ste(x: torch.Tensor, recipe: Recipe, layout: Layout) -> torch.Tensor:
    """Fake-quantize ``x`` with a straight-through gradient."""
    return _STE.apply(x, recipe, layout)  # type: ignore[no-any-return]
