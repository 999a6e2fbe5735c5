"""Training with breccia recipes: ``ScaledLinear``, ``convert_linears``, ``export_weights``.

``ScaledLinear`` is a drop-in ``nn.Linear`` whose forward multiplies the *quantized* input and weight (each cast
along its contraction axis with the layer's recipe) and whose backward follows the straight-through estimator:
``dL/dx = g_q · W_q`` and ``dL/dW = g_qᵀ · x_q``, with the output gradient ``g`` itself quantized to the recipe's
gradient format where the recipe has one (``fp8_format="HYBRID"``: E4M3 forward, E5M2 backward, as TE does).
With ``DelayedScaling`` the layer keeps the amax histories of its input and weight as buffers.

The recipe is data, so switching it is a constructor argument: train with ``MXFP8BlockScaling`` and export the same
weights with ``NVFP4BlockScaling`` (seed example 02), without touching model code.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

import breccia
from breccia._generic import cast_generic, dequantize_generic
from breccia._history import AmaxHistory
from breccia._recipes import DelayedScaling, Recipe
from breccia._tensor import ScaledTensor

from ._ops import TorchOps

__all__ = ["ScaledLinear", "apply_weights", "convert_linears", "export_weights", "grad_recipe_for"]

_OPS = TorchOps()


def grad_recipe_for(recipe: Recipe) -> Recipe | None:
    """The recipe gradients are quantized with: E5M2 for ``fp8_format="HYBRID"`` recipes, else none."""
    if getattr(recipe, "fp8_format", None) == "HYBRID":
        return dataclasses.replace(recipe, **{"fp8_format": "E5M2"})
    return None


def _fq(x: torch.Tensor, recipe: Recipe, history: torch.Tensor | None = None) -> torch.Tensor:
    """Fake-quantize along the last axis; with a history buffer, use and update it (DelayedScaling)."""
    layout = recipe.default_layout(-1)
    if history is not None:
        res = cast_generic(
            _OPS, x.detach(), recipe, layout, nonfinite="propagate", history=AmaxHistory(history.detach().cpu().numpy())
        )
        assert isinstance(res, tuple)
        st, h = res
        history.copy_(torch.as_tensor(h.amaxes, device=history.device))
    else:
        res = cast_generic(_OPS, x.detach(), recipe, layout, nonfinite="propagate")
        assert isinstance(res, ScaledTensor)
        st = res
    out: torch.Tensor = dequantize_generic(_OPS, st)
    return out.to(x.dtype)


class _ScaledLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        w: torch.Tensor,
        b: torch.Tensor | None,
        recipe: Recipe,
        grad_recipe: Recipe | None,
        hx: torch.Tensor | None,
        hw: torch.Tensor | None,
    ) -> torch.Tensor:
        xq = _fq(x, recipe, hx)
        wq = _fq(w, recipe, hw)
        ctx.save_for_backward(xq, wq)
        ctx.grad_recipe = grad_recipe
        ctx.has_bias = b is not None
        return torch.nn.functional.linear(xq, wq, b)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        xq, wq = ctx.saved_tensors
        gq = _fq(g, ctx.grad_recipe) if ctx.grad_recipe is not None else g
        grad_x = gq @ wq
        grad_w = gq.reshape(-1, gq.shape[-1]).t() @ xq.reshape(-1, xq.shape[-1])
        grad_b = g.reshape(-1, g.shape[-1]).sum(0) if ctx.has_bias else None
        return grad_x, grad_w, grad_b, None, None, None, None


class ScaledLinear(nn.Linear):
    """``nn.Linear`` computing with a breccia recipe (fake-quantized operands, straight-through gradients)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        recipe: Recipe,
        grad_recipe: Recipe | None = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        if not isinstance(recipe, Recipe):
            raise breccia.RecipeError(f"ScaledLinear needs a breccia recipe; got {recipe!r}")
        self.recipe = recipe
        self.grad_recipe = grad_recipe if grad_recipe is not None else grad_recipe_for(recipe)
        if isinstance(recipe, DelayedScaling):
            self.register_buffer("amax_history_x", torch.zeros(recipe.amax_history_len, device=device))
            self.register_buffer("amax_history_w", torch.zeros(recipe.amax_history_len, device=device))

    @classmethod
    def from_linear(cls, linear: nn.Linear, recipe: Recipe) -> ScaledLinear:
        """A ScaledLinear sharing ``linear``'s parameters (no copy)."""
        new = cls(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            recipe=recipe,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
        )
        new.weight = linear.weight
        new.bias = linear.bias
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hx = getattr(self, "amax_history_x", None)
        hw = getattr(self, "amax_history_w", None)
        return _ScaledLinearFn.apply(x, self.weight, self.bias, self.recipe, self.grad_recipe, hx, hw)  # type: ignore[no-any-return]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, recipe={self.recipe!r}"


def convert_linears(model: nn.Module, recipe: Recipe, *, skip: tuple[str, ...] = ()) -> nn.Module:
    """Replace every ``nn.Linear`` (not in ``skip``, by qualified name) with a ScaledLinear sharing its weights."""
    for name, child in list(model.named_children()):
        if name in skip:
            continue
        if isinstance(child, nn.Linear) and not isinstance(child, ScaledLinear):
            setattr(model, name, ScaledLinear.from_linear(child, recipe))
        elif isinstance(child, ScaledLinear):
            child.recipe, child.grad_recipe = recipe, grad_recipe_for(recipe)
        else:
            convert_linears(child, recipe, skip=tuple(s.split(".", 1)[1] for s in skip if s.startswith(name + ".")))
    return model


def export_weights(model: nn.Module, recipe: Recipe) -> dict[str, ScaledTensor]:
    """Every Linear weight of ``model`` cast with ``recipe`` (blocked along in_features), keyed by parameter name."""
    out: dict[str, ScaledTensor] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            st = breccia.cast(mod.weight.detach(), recipe, axis=-1)
            assert isinstance(st, ScaledTensor)
            out[f"{name}.weight" if name else "weight"] = st
    return out


def apply_weights(model: nn.Module, weights: dict[str, ScaledTensor]) -> nn.Module:
    """Load dequantized ``weights`` (from :func:`export_weights`) into ``model``'s Linear layers, in place."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, st in weights.items():
            if name not in params:
                raise breccia.ShapeError(f"apply_weights: model has no parameter {name!r}")
            params[name].copy_(breccia.dequantize(st).to(params[name].dtype))
    return model
