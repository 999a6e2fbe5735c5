"""Lossless re-packing between recipes (DESIGN.md §2: ``requantize``).

When source and target share the element format and every target block is a union of source blocks, the target
block's scale can be the largest source scale it covers. If all scales involved are powers of two (E8M0, or
``power_of_2_scales``) — or all source scales inside each target block are equal — every source value ``q · s`` is
``q' · t`` for a code ``q'`` of the same format, found exactly. The path verifies that every value survived and
otherwise declines, so :func:`breccia.requantize` falls back to ``cast(dequantize(x))``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _math as M
from ._layouts import Layout
from ._recipes import Recipe, scale_kind
from ._tensor import ScaledTensor

__all__ = ["requantize_direct"]


def _aligned(src: tuple[int, ...], dst: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Along every axis a target block is a union of whole source blocks, or lies inside one source block."""
    return all(d % s == 0 or d >= n or s % d == 0 or s >= n for s, d, n in zip(src, dst, shape))


def _group_max(grid: np.ndarray, src: tuple[int, ...], dst: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """Max of the source scales each target block touches (one value where it lies inside one source block)."""
    out = grid
    for ax, (s, d, n) in enumerate(zip(src, dst, shape)):
        n_dst = -(-n // d)
        starts = (np.arange(n_dst) * d) // s  # first source block of each target block (repeats when inside one)
        out = np.maximum.reduceat(out, starts, axis=ax)
    return out


def requantize_direct(backend: Any, st: ScaledTensor, recipe: Recipe, layout: Layout) -> ScaledTensor | None:
    """The re-packed ScaledTensor, or ``None`` if no exact direct path applies."""
    if st.recipe == recipe and st.layout == layout:
        return st
    if backend.name != "numpy":
        return None  # other backends take the generic path (docs/architecture.md)
    src_kind, dst_kind = scale_kind(st.recipe), scale_kind(recipe)
    if src_kind not in ("fp32", "e8m0") or dst_kind not in ("fp32", "e8m0"):
        return None
    if st.recipe.element != recipe.element or st.recipe.element.kind != "float" or st.zero_point is not None:
        return None
    shape = st.shape
    sb, db = st.layout.block_shape(shape), layout.block_shape(shape)
    if not _aligned(sb, db, shape):
        return None
    from ._reference import OPS, cast_numpy, dequantize_numpy

    s = np.asarray(M.stored_scale_to_f32(OPS, st.recipe, np.asarray(st.scale), None), np.float32)
    s = s.reshape(st.layout.scale_shape(shape) or (1,) * max(len(shape), 1))
    if not np.all(np.isfinite(s)):
        return None
    t = _group_max(s.reshape(st.layout.grid_shape(shape)), sb, db, shape)
    pow2 = bool((np.asarray(M.pow2(OPS, M.floor_exponent(OPS, t))) == t).all())
    if (dst_kind == "e8m0" or getattr(recipe, "power_of_2_scales", False)) and not pow2:
        return None
    y = dequantize_numpy(st)
    out = cast_numpy(y, recipe, layout, fixed_scale=t.reshape(layout.scale_shape(shape)))
    assert isinstance(out, ScaledTensor)
    if not np.array_equal(dequantize_numpy(out), y):
        return None
    return out
