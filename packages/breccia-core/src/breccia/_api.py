"""The public operations: ``cast``, ``dequantize``, ``requantize``, ``matmul``, ``cast_ste`` (DESIGN.md §2).

Each validates its arguments once, framework-neutrally, then hands the arrays to the backend that owns them.
"""

from __future__ import annotations

from typing import Any, Literal, overload

from ._dispatch import backend_for
from ._errors import DTypeError, RecipeError, ShapeError
from ._history import AmaxHistory
from ._layouts import Layout
from ._recipes import Recipe
from ._requant import requantize_direct
from ._tensor import ScaledTensor

__all__ = ["cast", "cast_ste", "dequantize", "matmul", "requantize"]


def _resolve(recipe: Any, layout: Layout | None, axis: Any, who: str, ndim: int | None = None) -> Layout:
    if not isinstance(recipe, Recipe):
        raise RecipeError(f"{who} needs a breccia recipe (e.g. breccia.MXFP8BlockScaling()); got {recipe!r}")
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise RecipeError(f"{who} needs axis to be an int; got {axis!r}")
    if ndim is not None and 0 <= axis < ndim:
        axis -= ndim  # layouts record the blocked axis from the end, so it survives added batch axes
    lay = recipe.default_layout(axis) if layout is None else layout
    recipe.check_layout(lay)
    return lay


def _ndim(x: Any) -> int | None:
    shape = getattr(x, "shape", None)
    return len(shape) if shape is not None else None


@overload
def cast(
    x: Any,
    recipe: Recipe,
    *,
    layout: Layout | None = ...,
    axis: int = ...,
    nonfinite: Literal["raise", "propagate"] = ...,
    history: None = ...,
) -> ScaledTensor: ...


@overload
def cast(
    x: Any,
    recipe: Recipe,
    *,
    layout: Layout | None = ...,
    axis: int = ...,
    nonfinite: Literal["raise", "propagate"] = ...,
    history: AmaxHistory,
) -> tuple[ScaledTensor, AmaxHistory]: ...


def cast(
    x: Any,
    recipe: Recipe,
    *,
    layout: Layout | None = None,
    axis: int = -1,
    nonfinite: Literal["raise", "propagate"] = "raise",
    history: AmaxHistory | None = None,
) -> ScaledTensor | tuple[ScaledTensor, AmaxHistory]:
    """Quantize ``x`` with ``recipe``, blocking along ``axis`` (the contraction axis).

    ``layout`` overrides the recipe's default scope (e.g. ``PerChannel(-1)`` for rowwise FP8). ``nonfinite``:
    ``"raise"`` (default) raises :class:`NonFiniteError` naming the first block holding NaN/Inf; ``"propagate"``
    lets them flow as the format allows. ``history`` (DelayedScaling only) makes ``cast`` return
    ``(ScaledTensor, new_history)``.
    """
    lay = _resolve(recipe, layout, axis, "breccia.cast", _ndim(x))
    if nonfinite not in ("raise", "propagate"):
        raise RecipeError(f"breccia.cast got nonfinite={nonfinite!r}; expected 'raise' or 'propagate'")
    if history is not None and not isinstance(history, AmaxHistory):
        raise RecipeError(f"breccia.cast needs history to be a breccia.AmaxHistory; got {type(history).__name__}")
    return backend_for(x, who="breccia.cast").cast(x, recipe, lay, nonfinite=nonfinite, history=history)  # type: ignore[no-any-return]


def dequantize(st: ScaledTensor, dtype: Any = None) -> Any:
    """``decode(data) · scale`` block by block, as an array of ``st``'s framework (fp32 unless ``dtype``)."""
    if not isinstance(st, ScaledTensor):
        raise DTypeError(f"breccia.dequantize needs a ScaledTensor; got {type(st).__name__}")
    return backend_for(st, who="breccia.dequantize").dequantize(st, dtype)


def requantize(
    st: ScaledTensor, recipe: Recipe, *, layout: Layout | None = None, axis: int | None = None
) -> ScaledTensor:
    """Convert ``st`` to ``recipe``.

    Where the target represents the source exactly (same element format and every target block covered by
    source blocks of one power-of-two or identical scale, e.g. MXFP8 E4M3 → FP8 1×32/1×128 power-of-two, per-tensor
    → per-block), the codes are re-packed without an fp32 round trip and the values are preserved bit for bit.
    Otherwise it is ``cast(dequantize(st), recipe)``.
    """
    if not isinstance(st, ScaledTensor):
        raise DTypeError(f"breccia.requantize needs a ScaledTensor; got {type(st).__name__}")
    ax = axis if axis is not None else (st.layout.blocked_axis if st.layout.blocked_axis is not None else -1)
    lay = _resolve(recipe, layout, ax, "breccia.requantize")
    backend = backend_for(st, who="breccia.requantize")
    direct = requantize_direct(backend, st, recipe, lay)
    if direct is not None:
        return direct
    out = backend.cast(backend.dequantize(st, None), recipe, lay, nonfinite="propagate", history=None)
    assert isinstance(out, ScaledTensor)
    return out


def _k_axis(x: Any, who: str, side: str) -> int:
    shape = x.shape
    if len(shape) == 0:
        raise ShapeError(f"{who}: operand {side} is 0-d; matmul needs at least 1 dimension")
    return int(shape[-1] if side == "a" else shape[0])


def matmul(a: Any, b: Any, *, out_dtype: Any = None) -> Any:
    """``a[..., K] @ b[K, N]`` (NumPy semantics) with fp32 accumulation; either side a ScaledTensor or array.

    Uses a fused scaled-GEMM where the backend has one for the operands' layouts, else dequantizes: the result
    is always correct, and fast where it can be.
    """
    backend = backend_for(a, b, who="breccia.matmul")
    if backend.name == "numpy":  # lists and scalars behave as in np.matmul
        import numpy as np

        a = a if isinstance(a, ScaledTensor) else np.asarray(a)
        b = b if isinstance(b, ScaledTensor) else np.asarray(b)
    for side, x in (("a", a), ("b", b)):
        if not hasattr(x, "shape"):
            raise ShapeError(f"breccia.matmul: operand {side} has no shape ({type(x).__name__})")
    if len(b.shape) > 2:
        raise ShapeError(f"breccia.matmul needs b to be 1-D or 2-D ([K] or [K, N]); got shape {tuple(b.shape)}")
    ka, kb = _k_axis(a, "breccia.matmul", "a"), _k_axis(b, "breccia.matmul", "b")
    if ka != kb:
        raise ShapeError(
            f"breccia.matmul: a has K={ka} on its last axis but b has K={kb} on its first; "
            f"shapes {tuple(a.shape)} @ {tuple(b.shape)}"
        )
    return backend.matmul(a, b, out_dtype)


def cast_ste(x: Any, recipe: Recipe, *, layout: Layout | None = None, axis: int = -1) -> Any:
    """Fake-quantize with a straight-through gradient: the value of ``dequantize(cast(x))``, the gradient of
    identity (on frameworks with autograd). Returns an array of ``x``'s dtype and framework."""
    lay = _resolve(recipe, layout, axis, "breccia.cast_ste", _ndim(x))
    return backend_for(x, who="breccia.cast_ste").cast_ste(x, recipe, lay)
