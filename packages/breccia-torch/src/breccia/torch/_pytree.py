"""Register ScaledTensor with ``torch.utils._pytree`` so it flows through ``torch.compile``, ``torch.func`` and
anything else that flattens containers: buffers are leaves, recipe/layout/shape are static context."""

from __future__ import annotations

from typing import Any

import torch.utils._pytree as pytree

from breccia._tensor import ScaledTensor

__all__ = ["register"]

_FIELDS = ("data", "scale", "global_scale", "zero_point")


def _flatten(st: ScaledTensor) -> tuple[list[Any], Any]:
    return [st.data, st.scale, st.global_scale, st.zero_point], (st.recipe, st.layout, st.shape)


def _unflatten(children: Any, ctx: Any) -> ScaledTensor:
    data, scale, glob, zp = children
    recipe, layout, shape = ctx
    return ScaledTensor(data, scale, recipe, layout, shape, global_scale=glob, zero_point=zp)


def _flatten_with_keys(st: ScaledTensor) -> tuple[list[tuple[Any, Any]], Any]:
    children, ctx = _flatten(st)
    return [(pytree.GetAttrKey(k), c) for k, c in zip(_FIELDS, children)], ctx


def register() -> None:
    """Idempotent: registering twice would raise inside torch."""
    if ScaledTensor in pytree.SUPPORTED_NODES:
        return
    pytree.register_pytree_node(
        ScaledTensor,
        _flatten,
        _unflatten,
        serialized_type_name="breccia.ScaledTensor",
        flatten_with_keys_fn=_flatten_with_keys,
    )
