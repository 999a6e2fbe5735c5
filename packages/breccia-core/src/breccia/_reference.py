"""The numpy reference backend: cast and dequantize, tiled (DESIGN.md §6).

This is the contract every other backend is tested against. It runs the shared math of :mod:`breccia._math`
tile by tile (:mod:`breccia._tiling`), so a 1 GiB tensor needs only its output plus a few cache-sized temporaries.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from . import _math as M
from ._errors import DTypeError, NonFiniteError, RecipeError
from ._fastnp import Scratch, amax_bits, encode_float_into
from ._formats import ElementFormat, decode_table, pack_nibbles, unpack_nibbles
from ._history import AmaxHistory
from ._layouts import Layout
from ._ops import NumpyOps
from ._recipes import DelayedScaling, NVFP4BlockScaling, Recipe, scale_kind
from ._tensor import ScaledTensor
from ._tiling import Plan, Tile, make_plan

__all__ = ["as_float_input", "cast_numpy", "dequantize_numpy"]

OPS = NumpyOps()
_FLOAT_NAMES = {"float16", "float32", "float64", "bfloat16", "float8_e4m3fn", "float8_e5m2"}
_OUT_DTYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "float64": np.float64,
}


def out_dtype(dtype: str, who: str = "dequantize") -> Any:
    """The numpy dtype for a result dtype name; raises :class:`DTypeError` naming it otherwise."""
    if dtype not in _OUT_DTYPES:
        raise DTypeError(f"{who} got dtype={dtype!r}; expected one of {sorted(_OUT_DTYPES)}")
    return _OUT_DTYPES[dtype]


def as_float_input(x: Any, who: str = "breccia.cast") -> np.ndarray:
    """``x`` as a numpy floating array; integer, bool, complex or object input raises :class:`DTypeError`."""
    arr = np.asarray(x)
    if arr.dtype.name not in _FLOAT_NAMES:
        raise DTypeError(
            f"{who} needs a floating-point array (float32, float16, bfloat16 or float64); got dtype {arr.dtype}. "
            "Convert first, e.g. x.astype(np.float32)"
        )
    return arr


def _locate(plan: Plan, flat: int, layout: Layout, shape: tuple[int, ...]) -> str:
    grid = layout.scale_shape(shape) or ()
    idx = np.unravel_index(flat, grid) if grid else ()
    return f"block {tuple(int(i) for i in idx)} of the scale grid {tuple(grid)}"


def _check_finite(
    stats: list[np.ndarray],
    plan: Plan,
    tile: Tile | None,
    layout: Layout,
    shape: tuple[int, ...],
    nonfinite: str,
) -> bool:
    """Raise on NaN/Inf in the (small) statistics arrays unless propagating; return whether NaN is present."""
    bad = np.zeros(stats[0].shape, bool)
    for s in stats:
        bad |= ~np.isfinite(s)
    if not bad.any():
        return False
    if nonfinite == "propagate":
        return True
    local = np.argwhere(bad.reshape(tile.grid_shape if tile else plan.grid))[0]
    offset = [sl.start for sl in tile.grid] if tile else [0] * len(plan.grid)
    flat = int(np.ravel_multi_index(tuple(int(a + b) for a, b in zip(local, offset)), plan.grid))
    raise NonFiniteError(
        f"breccia.cast: the input holds NaN or Inf in {_locate(plan, flat, layout, shape)}; "
        "clean the input or pass nonfinite='propagate' to let non-finite values through"
    )


def _scales(recipe: Recipe, stats: list[np.ndarray], **kw: Any) -> M.Scales:
    if recipe.has_zero_point:
        sc = M.compute_scales(OPS, recipe, OPS.maximum(stats[1], -stats[0]), vmin=stats[0], vmax=stats[1], **kw)
    else:
        sc = M.compute_scales(OPS, recipe, stats[0], **kw)
    M.refuse_multiplier_overflow(OPS, recipe, sc, kw.get("global_amax"))
    kind = scale_kind(recipe)
    if kind in ("fp16", "bf16"):
        bad = M.scale_overflow(OPS, recipe, sc) & np.isfinite(stats[0])
        if bad.any():
            vals = np.abs(np.concatenate([st.ravel() for st in stats]))
            amax = float(vals[np.isfinite(vals)].max())
            raise RecipeError(
                f"{recipe!r}: a block amax of {amax:.6g} overflows the {kind} scale; "
                "use scale_dtype='fp32'" + (" or 'bf16'" if kind == "fp16" else "")
            )
    return sc


def _scratch_size(plan: Plan) -> int:
    n = 1
    for t, b, size in zip(plan.tile, plan.blocks, plan.shape):
        n *= -(-t // b) * b if 1 < b < size else t
    return n


def _cast_empty(recipe: Recipe, layout: Layout, shape: tuple[int, ...], history: AmaxHistory | None) -> Any:
    """A tensor with no elements: every block's amax is 0, so every scale is the zero-block scale."""
    fmt = recipe.element
    sshape = layout.scale_shape(shape)
    zeros = [np.zeros(sshape, np.float32)] * (2 if recipe.has_zero_point else 1)
    sc = _scales(recipe, zeros, global_amax=np.float32(0), history_amax=None)
    dshape = (*shape[:-1], (shape[-1] + 1) // 2) if fmt.storage == "packed4" else shape
    data = OPS.store_codes(np.zeros(dshape, np.int32), fmt) if fmt.storage != "packed4" else np.zeros(dshape, np.uint8)
    st = ScaledTensor(
        data,
        M.store_scale(OPS, recipe, np.asarray(sc.stored)),
        recipe,
        layout,
        shape,
        global_scale=None if sc.global_scale is None else np.asarray(sc.global_scale, np.float32).reshape(()),
        zero_point=None if sc.zero_point is None else M.store_zero_point(OPS, recipe, sc.zero_point),
    )
    return (st, history.push(np.float32(0))) if history is not None else st


def cast_numpy(
    x: Any,
    recipe: Recipe,
    layout: Layout,
    *,
    nonfinite: str = "raise",
    history: AmaxHistory | None = None,
    fixed_scale: np.ndarray | None = None,
) -> ScaledTensor | tuple[ScaledTensor, AmaxHistory]:
    """Quantize a numpy array; see :func:`breccia.cast` for the contract.

    ``fixed_scale`` (internal, used by lossless requantize): an fp32 grid of per-block dequantization scales to
    use instead of computing them; E8M0 recipes require powers of two.
    """
    arr = as_float_input(x)
    shape = tuple(arr.shape)
    layout.validate_shape(shape)
    fmt = recipe.element
    packed = fmt.storage == "packed4"
    is_float = fmt.kind == "float"
    need_global = (
        (isinstance(recipe, NVFP4BlockScaling) and recipe.per_tensor_scale)
        or history is not None
        or fixed_scale is not None
    )
    if arr.size == 0:
        return _cast_empty(recipe, layout, shape, history)  # type: ignore[no-any-return]
    # two passes over the input only where a block spans several tiles (plan.two_pass, small grids); a tensor-wide
    # statistic (NVFP4's global amax, the history step's amax) is one cheap max pass before the fused tile loop
    plan = make_plan(shape, layout.block_shape(shape), keep_last=packed, need_global=False)
    xc = arr.reshape(plan.shape)
    work = Scratch(_scratch_size(plan))
    xbuf = np.empty(_scratch_size(plan), np.float32)
    out_shape = (*plan.shape[:-1], (plan.shape[-1] + 1) // 2) if packed else plan.shape
    out = np.empty(out_shape, np.int8 if fmt.storage == "int8" else np.uint8)
    stored = np.empty(plan.grid, np.uint8 if scale_kind(recipe) in ("e8m0", "e4m3") else np.float32)
    float_zp = M.is_float_zp(recipe)
    zp = np.empty(plan.grid, np.float32 if float_zp else np.int32) if recipe.has_zero_point else None
    glob = None
    hist_amax = None
    if history is not None:
        if not isinstance(recipe, DelayedScaling):
            raise RecipeError(f"history= is only for DelayedScaling; got recipe {recipe!r}")
        hist_amax = history.scale_amax(recipe)

    def load(tile: Tile) -> np.ndarray:
        xt = xc[tile.data]
        if xt.dtype == np.float32 and tuple(xt.shape) == tile.padded:
            return xt.reshape(tile.split)
        buf = xbuf[: int(np.prod(tile.padded))].reshape(tile.padded)
        if tuple(xt.shape) != tile.padded:
            buf[...] = 0
        np.copyto(buf[tuple(slice(0, d.stop - d.start) for d in tile.data)], xt, casting="unsafe")
        return buf.reshape(tile.split)

    def stats(xs: np.ndarray, tile: Tile, nan_free: bool = False) -> list[np.ndarray]:
        if nan_free:  # float zero points: MLX's affine rule reduces past NaN
            return list(M.affine_stats(OPS, xs, tile.red_axes))
        if recipe.has_zero_point:
            return [OPS.vmin(xs, tile.red_axes), OPS.vmax(xs, tile.red_axes)]
        return [amax_bits(xs, tile.red_axes, work)]

    def emit(tile: Tile, xs: np.ndarray, sc: M.Scales, has_nan: bool) -> None:
        if is_float:
            if sc.multiplier is not None:
                codes = encode_float_into(xs, sc.multiplier, fmt, work, has_nan, multiply=True)
            else:
                codes = encode_float_into(xs, M.safe_divisor(OPS, recipe, sc.divisor), fmt, work, has_nan)
            if fmt.storage == "byte":  # FP6: clear the sign-extension bits above the code
                np.bitwise_and(codes, np.int32((1 << fmt.bits) - 1), out=codes)
        else:
            codes = M.encode(OPS, recipe, xs, sc, has_nan=has_nan)
        codes = codes.reshape(tile.padded)[tuple(slice(0, s.stop - s.start) for s in tile.data)]
        if packed:
            last = tile.data[-1]
            dst = (*tile.data[:-1], slice(last.start // 2, (last.stop + 1) // 2))
            out[dst] = pack_nibbles(codes)
        else:
            out[tile.data] = codes

    gamax = None
    if need_global and not plan.two_pass:
        gamax = np.float32(0)
        for tile in plan.tiles():
            xs = load(tile)
            gamax = np.maximum(gamax, amax_bits(xs, tuple(range(xs.ndim)), work).reshape(()))
        gamax = np.asarray(gamax, np.float32)

    if not plan.two_pass:
        for tile in plan.tiles():
            xs = load(tile)
            st = stats(xs, tile)
            has_nan = _check_finite(st, plan, tile, layout, shape, nonfinite)
            if has_nan and float_zp:
                st = stats(xs, tile, nan_free=True)
            if fixed_scale is not None:
                t = np.asarray(fixed_scale, np.float32).reshape(plan.grid)[tile.grid].reshape(tile.keep)
                sc = M.Scales(M.floor_exponent(OPS, t) + 127 if scale_kind(recipe) == "e8m0" else t, t)
            else:
                sc = _scales(recipe, st, global_amax=gamax, history_amax=hist_amax)
            glob = sc.global_scale
            stored[tile.grid] = np.broadcast_to(sc.stored, tile.keep).reshape(tile.grid_shape)
            if zp is not None and sc.zero_point is not None:
                zp[tile.grid] = sc.zero_point.reshape(tile.grid_shape)
            emit(tile, xs, sc, has_nan)
        if history is not None:
            assert gamax is not None
            history = history.push(gamax)
    else:
        grid_stats = _grid_stats(plan, recipe, lambda t: stats(load(t), t))
        has_nan = _check_finite(grid_stats, plan, None, layout, shape, nonfinite)
        if has_nan and float_zp:
            grid_stats = _grid_stats(plan, recipe, lambda t: stats(load(t), t, nan_free=True))
        gamax = np.asarray(np.max(grid_stats[0]) if grid_stats[0].size else 0.0, np.float32)
        if fixed_scale is not None:
            t = np.asarray(fixed_scale, np.float32).reshape(plan.grid)
            sc = M.Scales(M.floor_exponent(OPS, t) + 127 if scale_kind(recipe) == "e8m0" else t, t)
        else:
            sc = _scales(recipe, grid_stats, global_amax=gamax, history_amax=hist_amax)
        stored[...] = sc.stored
        if zp is not None and sc.zero_point is not None:
            zp[...] = sc.zero_point
        glob = sc.global_scale
        divisor = np.broadcast_to(np.asarray(sc.divisor, np.float32), plan.grid)  # history scales are 0-d
        mult = None if sc.multiplier is None else np.broadcast_to(np.asarray(sc.multiplier, np.float32), plan.grid)
        for tile in plan.tiles():
            div = divisor[tile.grid].reshape(tile.keep)
            tsc = M.Scales(
                div,
                div,
                None if zp is None else zp[tile.grid].reshape(tile.keep),
                multiplier=None if mult is None else mult[tile.grid].reshape(tile.keep),
            )
            emit(tile, load(tile), tsc, has_nan)
        if history is not None:
            history = history.push(gamax)

    data = out.reshape((*shape[:-1], (shape[-1] + 1) // 2) if packed else shape)
    if fmt.storage == "fp8":
        data = data.view(ml_dtypes.float8_e4m3fn if fmt.name == "E4M3" else ml_dtypes.float8_e5m2)
    sshape = layout.scale_shape(shape)
    scale = M.store_scale(OPS, recipe, stored.reshape(sshape))
    result = ScaledTensor(
        data,
        scale,
        recipe,
        layout,
        shape,
        global_scale=None if glob is None else np.asarray(glob, np.float32).reshape(()),
        zero_point=None if zp is None else M.store_zero_point(OPS, recipe, zp.reshape(sshape)),
    )
    if history is not None:
        return result, history
    return result


def _grid_stats(plan: Plan, recipe: Recipe, stats: Any) -> list[np.ndarray]:
    """Per-block statistics over the whole grid, accumulated tile by tile (blocks spanning several tiles)."""
    grid_stats = [np.full(plan.grid, np.inf if recipe.has_zero_point else 0.0, np.float32)]
    if recipe.has_zero_point:
        grid_stats.append(np.full(plan.grid, -np.inf, np.float32))
    for tile in plan.tiles():
        st = stats(tile)
        g = tile.grid
        if recipe.has_zero_point:
            grid_stats[0][g] = np.minimum(grid_stats[0][g], st[0].reshape(tile.grid_shape))
            grid_stats[1][g] = np.maximum(grid_stats[1][g], st[1].reshape(tile.grid_shape))
        else:
            grid_stats[0][g] = np.maximum(grid_stats[0][g], st[0].reshape(tile.grid_shape))
    return grid_stats


def _pair_table(fmt: ElementFormat, scale: np.ndarray | None) -> np.ndarray:
    """Decode table over *pairs* of codes, as float64 words holding two fp32 values (element 2i first).

    Packed 4-bit formats index it with a byte (two nibbles), byte formats with a uint16 (two bytes); one gather
    then writes two outputs. A single per-tensor scale is folded in, so FP8 per-tensor dequantize is one pass.
    """
    table = decode_table(fmt.name)
    bits = 8 if fmt.storage == "packed4" else 16
    half = bits // 2
    if table.size < (1 << half):  # FP6: bytes above 63 are not codes
        table = np.concatenate([table, np.full((1 << half) - table.size, np.nan, np.float32)])
    idx = np.arange(1 << bits)
    pairs = np.empty((1 << bits, 2), np.float32)
    pairs[:, 0] = table[idx & ((1 << half) - 1)]
    pairs[:, 1] = table[idx >> half]
    if scale is not None:
        pairs *= scale
    return pairs.reshape(-1).view(np.float64)


def _fast_dest(ov: np.ndarray, rv: np.ndarray, packed: bool, n_last: int) -> bool:
    return bool(
        ov.flags.c_contiguous
        and rv.flags.c_contiguous
        and ov.size % 2 == 0
        and ov.ctypes.data % 8 == 0
        and (not packed or n_last % 2 == 0)
        and (packed or rv.size % 2 == 0)
    )


def dequantize_numpy(st: ScaledTensor, dtype: str = "float32") -> np.ndarray:
    """``decode(data) · scale`` per block (``(q − zp) · scale`` for asymmetric integers), tiled."""
    want = out_dtype(dtype)
    recipe, layout, shape = st.recipe, st.layout, st.shape
    fmt = recipe.element
    packed = fmt.storage == "packed4"
    if st.size == 0:
        return np.zeros(shape, want)
    plan = make_plan(shape, layout.block_shape(shape), keep_last=packed, need_global=False, tile_elems=1 << 18)
    sgrid = M.stored_scale_to_f32(OPS, recipe, np.asarray(st.scale), st.global_scale).reshape(plan.grid)
    zgrid = None if st.zero_point is None else np.asarray(st.zero_point).astype(np.float32).reshape(plan.grid)
    raw = np.asarray(st.data).view(np.uint8)
    dc = raw.reshape((*plan.shape[:-1], (plan.shape[-1] + 1) // 2) if packed else plan.shape)
    out = np.empty(plan.shape, np.float32)
    single = sgrid.size == 1 and zgrid is None
    float_zp = M.is_float_zp(recipe)
    pairs = _pair_table(fmt, sgrid.reshape(()) if single else None) if out.size else None
    table = decode_table(fmt.name)
    n_last = plan.shape[-1]
    for tile in plan.tiles():
        ov = out[tile.data]
        if packed:
            last = tile.data[-1]
            src = (*tile.data[:-1], slice(last.start // 2, (last.stop + 1) // 2))
            rv = dc[src]
        else:
            rv = dc[tile.data]
        whole = tuple(s.stop - s.start for s in tile.data) == tile.padded
        if pairs is not None and whole and _fast_dest(ov, rv, packed, n_last):
            idx = rv.reshape(-1) if packed else rv.reshape(-1).view(np.uint16)
            np.take(pairs, idx, out=ov.reshape(-1).view(np.float64), mode="wrap")
            if not single:
                ovs = ov.reshape(tile.split)
                if zgrid is not None and float_zp:
                    zt = zgrid[tile.grid].reshape(tile.keep)
                    ovs[...] = M.dequant_values(OPS, recipe, ovs, sgrid[tile.grid].reshape(tile.keep), zt)
                    continue
                if zgrid is not None:
                    np.subtract(ovs, zgrid[tile.grid].reshape(tile.keep), out=ovs)
                np.multiply(ovs, sgrid[tile.grid].reshape(tile.keep), out=ovs)
            continue
        vals = table[unpack_nibbles(rv, tile.data[-1].stop - tile.data[-1].start) if packed else rv]
        vals = OPS.pad_to(vals, tile.padded).reshape(tile.split)
        z = None if zgrid is None else zgrid[tile.grid].reshape(tile.keep)
        res = M.dequant_values(OPS, recipe, vals, sgrid[tile.grid].reshape(tile.keep), z).reshape(tile.padded)
        out[tile.data] = res[tuple(slice(0, d.stop - d.start) for d in tile.data)]
    res = out.reshape(shape)
    return res if dtype == "float32" else res.astype(want)
