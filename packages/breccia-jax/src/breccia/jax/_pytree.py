"""ScaledTensor as a JAX pytree node: buffers are leaves, recipe/layout/logical shape are static aux data.

So a ScaledTensor can be returned from and passed into ``jax.jit``, carried through ``lax.scan``, sharded, and
mapped over with ``vmap``. JAX rebuilds nodes from leaves that are not arrays (``None`` placeholders, ``object()``
sentinels, ``in_axes`` specs, tracers with a batch axis added or removed), so unflattening must not validate: it
reconstructs the value without ``__post_init__``. The logical shape is re-derived from the data leaf when it has
one, which keeps it right when ``vmap`` adds or strips leading batch axes (only the packed last axis is taken from
the aux data).
"""

from __future__ import annotations

from typing import Any

import jax

from breccia._tensor import ScaledTensor

__all__ = ["register"]

_FIELDS = ("data", "scale", "global_scale", "zero_point")
_REGISTERED: list[bool] = []


def _flatten(st: ScaledTensor) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    return (st.data, st.scale, st.global_scale, st.zero_point), (st.recipe, st.layout, st.shape)


def _flatten_with_keys(st: ScaledTensor) -> tuple[tuple[tuple[Any, Any], ...], tuple[Any, ...]]:
    children, aux = _flatten(st)
    return tuple((jax.tree_util.GetAttrKey(k), c) for k, c in zip(_FIELDS, children)), aux


def _logical_shape(data: Any, recipe: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    dshape = getattr(data, "shape", None)
    if not isinstance(dshape, tuple) or not all(isinstance(n, int) for n in dshape):
        return shape
    if recipe.element.storage == "packed4" and dshape and shape:
        return (*dshape[:-1], shape[-1])
    return dshape


def _unflatten(aux: tuple[Any, ...], children: Any) -> ScaledTensor:
    recipe, layout, shape = aux
    data, scale, glob, zp = children
    st = object.__new__(ScaledTensor)
    for name, value in (
        ("data", data),
        ("scale", scale),
        ("recipe", recipe),
        ("layout", layout),
        ("shape", _logical_shape(data, recipe, shape)),
        ("global_scale", glob),
        ("zero_point", zp),
    ):
        object.__setattr__(st, name, value)
    return st


def register() -> None:
    """Idempotent: JAX refuses to register a type twice."""
    if _REGISTERED:
        return
    jax.tree_util.register_pytree_with_keys(ScaledTensor, _flatten_with_keys, _unflatten, _flatten)
    _REGISTERED.append(True)
