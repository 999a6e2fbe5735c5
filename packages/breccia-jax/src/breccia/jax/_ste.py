"""Straight-through estimator: forward ``dequantize(cast(x))``, backward the identity (a ``jax.custom_vjp``).

FP8/FP4 training sees quantization this way: the forward pass uses exactly the values the low-precision tensor
represents, and the gradient passes through the rounding unchanged (Bengio et al. 2013; TE and torchao do the
same). Recipe and layout are non-differentiable static arguments. The cast inside is the traced (sync-free) path,
since ``custom_vjp`` always traces its forward function: non-finite values propagate rather than raise.
"""

from __future__ import annotations

from functools import partial

import jax

from breccia._generic import cast_generic, dequantize_generic
from breccia._layouts import Layout
from breccia._recipes import Recipe
from breccia._tensor import ScaledTensor

from ._ops import TRACED_OPS

__all__ = ["cast_ste", "fake_quant"]


def fake_quant(x: jax.Array, recipe: Recipe, layout: Layout) -> jax.Array:
    """``dequantize(cast(x))`` in ``x``'s dtype, non-finite values propagated (no gradient rule of its own)."""
    st = cast_generic(TRACED_OPS, x, recipe, layout, nonfinite="propagate")
    assert isinstance(st, ScaledTensor)
    out: jax.Array = dequantize_generic(TRACED_OPS, st)
    return out.astype(x.dtype)


@partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _ste(x: jax.Array, recipe: Recipe, layout: Layout) -> jax.Array:
    return fake_quant(x, recipe, layout)


def _ste_fwd(x: jax.Array, recipe: Recipe, layout: Layout) -> tuple[jax.Array, None]:
    return fake_quant(x, recipe, layout), None


def _ste_bwd(recipe: Recipe, layout: Layout, res: None, g: jax.Array) -> tuple[jax.Array]:
    return (g,)


_ste.defvjp(_ste_fwd, _ste_bwd)


def cast_ste(x: jax.Array, recipe: Recipe, layout: Layout) -> jax.Array:
    """Fake-quantize ``x`` with a straight-through gradient (use :func:`breccia.cast_ste` for the default layout)."""
    out: jax.Array = _ste(x, recipe, layout)
    return out
