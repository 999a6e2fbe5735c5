"""The whole-tensor driver every non-numpy backend runs (DESIGN.md §6: the math exists once, so does the driver).

Frameworks with their own allocator and kernels (torch, jax, mlx) process a tensor in one go: pad to whole blocks,
view it in split form, reduce per block, compute scales with :mod:`breccia._math`, encode, crop, store. The numpy
reference reaches the same bytes through its tiled driver (:mod:`breccia._reference`); a core test runs this driver
with :class:`~breccia._ops.NumpyOps` against it, and each add-on tests its own ops against the reference.
"""

from __future__ import annotations

from typing import Any

from . import _math as M
from ._errors import NonFiniteError, RecipeError
from ._history import AmaxHistory
from ._layouts import Layout
from ._ops import ArrayOps
from ._recipes import DelayedScaling, Recipe, scale_kind
from ._tensor import ScaledTensor

__all__ = ["cast_generic", "dequantize_generic", "split_plan"]

Array = Any


def split_plan(
    shape: tuple[int, ...], blocks: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(padded shape, split shape, reduction axes, keepdims grid shape) for a whole tensor."""
    padded, split, red, keep = [], [], [], []
    for n, b in zip(shape, blocks):
        g = -(-n // b)
        padded.append(g * b)
        if b == 1:
            split.append(n)
            keep.append(n)
        else:
            split.extend((g, b))
            red.append(len(split) - 1)
            keep.extend((g, 1))
    return tuple(padded), tuple(split), tuple(red), tuple(keep)


def _raise_nonfinite(ops: ArrayOps, bad: Array, layout: Layout, shape: tuple[int, ...]) -> None:
    import numpy as np

    flat = int(np.argmax(np.asarray(ops.to_numpy(bad)).reshape(-1)))
    grid = layout.scale_shape(shape)
    idx = tuple(int(i) for i in np.unravel_index(flat, grid)) if grid else ()
    raise NonFiniteError(
        f"breccia.cast: the input holds NaN or Inf in block {idx} of the scale grid {tuple(grid)}; "
        "clean the input or pass nonfinite='propagate' to let non-finite values through"
    )


def cast_generic(
    ops: ArrayOps,
    x: Array,
    recipe: Recipe,
    layout: Layout,
    *,
    nonfinite: str = "raise",
    history: AmaxHistory | None = None,
    amax_override: Array | None = None,
    global_amax: Array | None = None,
) -> ScaledTensor | tuple[ScaledTensor, AmaxHistory]:
    """Quantize a backend array (any float dtype) with the shared math; see :func:`breccia.cast`.

    ``amax_override`` (per-tensor layouts) and ``global_amax`` (NVFP4's tensor amax) let a caller that splits a
    tensor into row chunks give every chunk the statistic of the whole tensor, so the chunks' bytes concatenate to
    exactly the unsplit result.
    """
    shape = tuple(int(n) for n in x.shape)
    layout.validate_shape(shape)
    fmt = recipe.element
    if history is not None and not isinstance(recipe, DelayedScaling):
        raise RecipeError(f"history= is only for DelayedScaling; got recipe {recipe!r}")
    if 0 in shape:  # no elements: every block amax is 0, so every scale is the zero-block scale
        return _cast_empty(ops, x, recipe, layout, shape, history)
    blocks = layout.block_shape(shape)
    padded, split, red, keep = split_plan(shape, blocks)
    grid = keep  # keepdims grid in split form
    xs = ops.reshape(ops.pad_to(ops.f32(x), padded), split) if shape else ops.reshape(ops.f32(x), (1,))
    if not shape:
        red, grid = (0,), (1,)
    if recipe.has_zero_point:
        stats = [ops.vmin(xs, red), ops.vmax(xs, red)]
        amax = ops.maximum(stats[1], -stats[0])
    elif amax_override is not None:
        stats = [ops.reshape(ops.f32(amax_override), tuple(1 for _ in split))]
        amax = stats[0]
    else:
        stats = [ops.amax(xs, red)]
        amax = stats[0]
    has_nan = True
    if nonfinite == "raise" or not ops.prefer_no_sync:
        bad = ~ops.isfinite(stats[0])
        for s in stats[1:]:
            bad = bad | ~ops.isfinite(s)
        has_nan = ops.any(bad)
        if has_nan and nonfinite == "raise":
            _raise_nonfinite(ops, bad, layout, shape)
    if has_nan and M.is_float_zp(recipe):  # MLX's affine rule reduces past NaN (it encodes as code 0)
        stats = list(M.affine_stats(ops, xs, red))
    gamax = ops.amax(amax, tuple(range(len(split)))) if (recipe.has_global_scale or history is not None) else None
    if global_amax is not None:
        gamax = ops.reshape(ops.f32(global_amax), tuple(1 for _ in split))
    hist_amax = None
    if history is not None:
        hist_amax = ops.asarray(history.scale_amax(recipe), like=xs)
    sc = M.compute_scales(
        ops,
        recipe,
        amax,
        vmin=stats[0] if recipe.has_zero_point else None,
        vmax=stats[1] if recipe.has_zero_point else None,
        global_amax=gamax,
        history_amax=hist_amax,
    )
    kind = scale_kind(recipe)
    check = nonfinite == "raise" or not ops.prefer_no_sync  # a sync-free propagate cast lets inf scales through
    if check:
        M.refuse_multiplier_overflow(ops, recipe, sc, gamax)
    if check and kind in ("fp16", "bf16") and ops.any(M.scale_overflow(ops, recipe, sc) & ops.isfinite(amax)):
        raise RecipeError(f"{recipe!r}: a block amax overflows the {kind} scale; use scale_dtype='fp32'")
    codes = M.encode(ops, recipe, xs, sc, has_nan=has_nan)
    codes = ops.crop(ops.reshape(codes, padded), shape) if shape else ops.reshape(codes, ())
    sshape = layout.scale_shape(shape)
    stored = ops.reshape(ops.broadcast_to(sc.stored, grid), sshape)
    scale = M.store_scale(ops, recipe, stored)
    zp = None
    if sc.zero_point is not None:
        zp = M.store_zero_point(ops, recipe, ops.reshape(sc.zero_point, sshape))
    glob = None if sc.global_scale is None else ops.reshape(ops.f32(sc.global_scale), ())
    st = ScaledTensor(ops.store_codes(codes, fmt), scale, recipe, layout, shape, global_scale=glob, zero_point=zp)
    if history is not None:
        assert gamax is not None
        return st, history.push(ops.to_numpy(gamax))
    return st


def _cast_empty(
    ops: ArrayOps, x: Array, recipe: Recipe, layout: Layout, shape: tuple[int, ...], history: AmaxHistory | None
) -> ScaledTensor | tuple[ScaledTensor, AmaxHistory]:
    fmt = recipe.element
    sshape = layout.scale_shape(shape)
    zeros = ops.full(sshape, 0.0, like=x)
    sc = M.compute_scales(ops, recipe, zeros, vmin=zeros, vmax=zeros, global_amax=ops.full((), 0.0, like=x))
    data = ops.store_codes(ops.i32(ops.full(shape, 0.0, like=x)), fmt)
    st = ScaledTensor(
        data,
        M.store_scale(ops, recipe, sc.stored),
        recipe,
        layout,
        shape,
        global_scale=None if sc.global_scale is None else ops.reshape(ops.f32(sc.global_scale), ()),
        zero_point=None if sc.zero_point is None else M.store_zero_point(ops, recipe, sc.zero_point),
    )
    return (st, history.push(0.0)) if history is not None else st


def dequantize_generic(ops: ArrayOps, st: ScaledTensor) -> Array:
    """fp32 ``decode(data) · scale`` per block (``(q − zp) · scale`` for asymmetric integers)."""
    shape = st.shape
    fmt = st.recipe.element
    if 0 in shape:
        return ops.full(shape, 0.0, like=st.data)
    vals = ops.decode(st.data, fmt, shape[-1] if shape else 1)
    if not shape:
        s = M.stored_scale_to_f32(ops, st.recipe, st.scale, st.global_scale)
        return M.dequant_values(ops, st.recipe, vals, s, st.zero_point)
    padded, split, _, keep = split_plan(shape, st.layout.block_shape(shape))
    s = ops.reshape(M.stored_scale_to_f32(ops, st.recipe, st.scale, st.global_scale), keep)
    z = None if st.zero_point is None else ops.reshape(st.zero_point, keep)
    out = M.dequant_values(ops, st.recipe, ops.reshape(ops.pad_to(vals, padded), split), s, z)
    return ops.crop(ops.reshape(out, padded), shape)
