"""Row-chunked casts for large CPU tensors, and the fused CPU kernel path.

Where the optional C kernel (:mod:`._cpu_kernel`) is available, float-element recipes blocked along rows (FP8, MX,
NVFP4) run as two kernel passes around the shared scale math (:func:`_kernel_cast`), at any size above a small
threshold. Otherwise, on CPU every full-size temporary of the eager math is a fresh allocation that the kernel
page-faults in (on the reference VM a 64 MiB temporary costs more than the arithmetic). Casting row chunks of ~1M
elements keeps the temporaries small and reused. Rows are independent for the layouts that block along the last
axis, and per-tensor or NVFP4 two-level recipes get the whole tensor's amax passed to every chunk, so the
concatenated chunks are byte-identical to the unchunked cast (tested).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from breccia import _math as M
from breccia._errors import NonFiniteError
from breccia._generic import cast_generic
from breccia._layouts import Layout, PerBlock2D, PerBlockK, PerChannel, PerTensor
from breccia._recipes import (
    DelayedScaling,
    Float8BlockScaling,
    Float8CurrentScaling,
    MXFP8BlockScaling,
    Recipe,
)
from breccia._tensor import ScaledTensor

from . import _cpu_kernel
from ._ops import TorchOps

__all__ = ["CHUNK_ELEMS", "cast_chunked"]

CHUNK_ELEMS = 1 << 20
MIN_ELEMS = 1 << 20
_SCALE_CHUNK = 1 << 18
KERNEL_MIN_ELEMS = 1  # measured: the kernel path is never slower than the eager one, down to one 1×32 block


def _row_layout(layout: Layout, ndim: int) -> Layout | None:
    if isinstance(layout, PerTensor):
        return layout
    if isinstance(layout, (PerBlockK, PerChannel)) and layout.axis in (-1, ndim - 1):
        return PerBlockK(layout.block_k, -1) if isinstance(layout, PerBlockK) else PerChannel(-1)
    return None


def cast_chunked(ops: TorchOps, x: torch.Tensor, recipe: Recipe, layout: Layout, nonfinite: str) -> Any:
    """The cast of ``x`` by the CPU kernel or in row chunks, or ``None`` where neither applies (then cast whole)."""
    if x.device.type != "cpu" or x.ndim < 1 or recipe.has_zero_point:
        return None
    if x.numel() >= KERNEL_MIN_ELEMS:
        fused = _kernel_cast(ops, x, recipe, layout)
        if fused is not None:
            return fused
    if x.numel() < MIN_ELEMS:
        return None
    if isinstance(layout, PerBlock2D):  # 128×128 weight tiles: only the FP8 fast path chunks them (whole row tiles)
        tiles = _fp8_rows(ops, x, recipe, layout, layout) if nonfinite == "raise" and x.ndim == 2 else None
        return None if tiles is None else ScaledTensor(tiles[0], tiles[1], recipe, layout, tuple(x.shape))
    row_layout = _row_layout(layout, x.ndim)
    k = x.shape[-1]
    if row_layout is None or k == 0 or k > CHUNK_ELEMS:
        return None
    x2 = x.reshape(-1, k)
    if nonfinite == "raise":
        fast = _fp8_rows(ops, x2, recipe, layout, row_layout)
        if fast is not None:
            data, scale = fast
            return ScaledTensor(
                data.reshape(x.shape), scale.reshape(layout.scale_shape(tuple(x.shape))), recipe, layout, tuple(x.shape)
            )
    amax = None
    if isinstance(layout, PerTensor) or recipe.has_global_scale:
        lo, hi = torch.aminmax(x2.to(torch.float32) if x2.dtype != torch.float32 else x2)
        amax = torch.maximum(hi, -lo)
    rows = max(1, CHUNK_ELEMS // k)
    try:
        parts = [
            cast_generic(
                ops,
                x2[i : i + rows],
                recipe,
                row_layout,
                nonfinite=nonfinite,
                amax_override=amax if isinstance(layout, PerTensor) else None,
                global_amax=amax if recipe.has_global_scale else None,
            )
            for i in range(0, x2.shape[0], rows)
        ]
    except NonFiniteError:
        return None  # let the whole-tensor cast raise, naming the block in the tensor's own coordinates
    assert all(isinstance(p, ScaledTensor) for p in parts)
    lead = tuple(x.shape[:-1])
    data = torch.cat([p.data for p in parts]).reshape(*lead, parts[0].data.shape[-1])  # type: ignore[union-attr]
    if isinstance(layout, PerTensor):
        scale = parts[0].scale  # type: ignore[union-attr]
    else:
        scale = torch.cat([p.scale for p in parts]).reshape(*lead, parts[0].scale.shape[-1])  # type: ignore[union-attr]
    return ScaledTensor(data, scale, recipe, layout, tuple(x.shape), global_scale=parts[0].global_scale)  # type: ignore[union-attr]


def _kernel_tile(layout: Layout, shape: tuple[int, ...]) -> tuple[int, int] | None:
    """``(rows, columns)`` of one scale block for the kernel, which walks rows of the last axis: ``rows`` is 0 for
    one block over the whole tensor, 1 for blocks along rows, >1 for 2-D tiles. ``None`` where blocks run along
    another axis (the kernel would need a transpose; the eager path handles those)."""
    nd, k = len(shape), shape[-1]
    if isinstance(layout, PerTensor):
        return 0, k
    if isinstance(layout, PerChannel) and layout.axis in (-1, nd - 1):
        return 1, k
    if isinstance(layout, PerBlockK) and layout.axis in (-1, nd - 1):
        return 1, max(1, min(layout.block_k, k))
    if isinstance(layout, PerBlock2D) and nd >= 2:
        bm, b = layout.block_shape(shape)[-2:]
        return bm, b
    return None


def _f32_rows(x2: torch.Tensor) -> Iterator[tuple[int, int, torch.Tensor]]:
    """``(i, j, rows i..j of x2 as fp32 with unit column stride)``: the tensor itself where it already is that (a
    view with any row stride), else converted chunk by chunk into one reused buffer (each chunk is consumed before
    the next is yielded). fp16/bf16 widen exactly and fp64 rounds to nearest, as the reference converts."""
    r_all, k = x2.shape
    if x2.dtype == torch.float32 and (k == 1 or x2.stride(1) == 1) and not x2.is_neg():
        yield 0, r_all, x2
        return
    rows = max(1, CHUNK_ELEMS // k)
    buf = torch.empty(min(rows, r_all), k)
    for i in range(0, r_all, rows):
        j = min(i + rows, r_all)
        yield i, j, buf[: j - i].copy_(x2[i:j])


def _kernel_cast(ops: TorchOps, x: torch.Tensor, recipe: Recipe, layout: Layout) -> ScaledTensor | None:
    """The cast by the C kernel: block ``max |x|`` (pass 1), the scales from :func:`breccia._math.compute_scales`
    on the small grid (the same calls as :func:`_fp8_rows`), then divide/clamp/round/pack (pass 2). ``None`` where the
    kernel is unavailable or does not apply, or the input holds NaN/Inf (the general path then raises or propagates
    exactly as without the kernel)."""
    fmt = recipe.element
    if fmt.name not in _cpu_kernel.FORMATS or x.numel() == 0:  # float elements only: the scales come from _math
        return None
    if type(x) is not torch.Tensor or x.layout != torch.strided:  # subclasses (fake, distributed, ...), sparse
        return None
    try:  # functorch wrappers (vmap, grad) are plain Tensors with no storage: the eager ops handle them
        x.untyped_storage()
    except (RuntimeError, NotImplementedError):
        return None
    shape = tuple(int(n) for n in x.shape)
    tile = _kernel_tile(layout, shape)
    kern = _cpu_kernel.kernel() if tile is not None else None
    if kern is None or tile is None:
        return None
    bm, b = tile
    k = shape[-1]
    x2 = x.reshape(-1, k)
    r_all, nb = x2.shape[0], -(-k // b)
    grid = torch.empty(r_all, nb)
    for i, j, xc in _f32_rows(x2):
        if not kern.absmax_blocks(xc, b, grid[i:j]):
            return None
    rb, batch, rt = (shape[-2], r_all // shape[-2], -(-shape[-2] // bm)) if bm > 1 else (r_all, 1, r_all)
    if bm == 0:
        amax = grid.amax().reshape(1, 1)
    elif bm > 1:  # 2-D tiles: reduce the per-row block maxima over each tile's rows (a partial last tile: zeros)
        g = torch.nn.functional.pad(grid.view(batch, rb, nb), (0, 0, 0, rt * bm - rb))
        amax = g.view(batch * rt, bm, nb).amax(dim=1)
    else:
        amax = grid
    gamax = amax.amax().reshape(1, 1) if recipe.has_global_scale else None
    stored, per_block, multiply, glob = _grid_scales(ops, recipe, amax, gamax)
    scale = stored.reshape(layout.scale_shape(shape))
    if bm == 0:
        per_row = per_block.reshape(1, 1).expand(r_all, 1)
    elif bm > 1:
        per_row = per_block.view(batch, rt, 1, nb).expand(batch, rt, bm, nb).reshape(batch, rt * bm, nb)
        per_row = per_row[:, :rb].reshape(r_all, nb)
    else:
        per_row = per_block.reshape(r_all, nb).contiguous()
    cols = (k + 1) // 2 if fmt.storage == "packed4" else k
    out = torch.empty(r_all, cols, dtype=torch.uint8)
    for i, j, xc in _f32_rows(x2):
        kern.encode_blocks(xc, b, per_row[i:j], multiply, fmt.name, out[i:j])
    data = out.view(_NATIVE[fmt.name]) if fmt.storage == "fp8" else out
    return ScaledTensor(data.reshape(*shape[:-1], cols), scale, recipe, layout, shape, global_scale=glob)


def _grid_scales(
    ops: TorchOps, recipe: Recipe, amax: torch.Tensor, gamax: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, bool, torch.Tensor | None]:
    """``(stored scales, fp32 divisor or multiplier per block, whether it multiplies, global scale)`` for a 2-D grid of
    block amaxes, from :func:`breccia._math.compute_scales` run on row chunks of the grid.

    The scale math is elementwise per block (the global amax is passed in), so chunks give the same bytes. Chunks of
    ~256K blocks keep its ~30 temporaries (NVFP4) cache-sized: whole-grid temporaries of a large tensor would be
    fresh allocations the OS page-faults in, and would multiply the cast's peak memory."""
    g_rows, nb = amax.shape
    step = max(1, _SCALE_CHUNK // nb)
    stored = per = glob = None
    multiply = False
    for t in range(0, g_rows, step):
        sc = M.compute_scales(ops, recipe, amax[t : t + step], global_amax=gamax, assume_finite=True)
        M.refuse_multiplier_overflow(ops, recipe, sc, gamax)
        part = M.store_scale(ops, recipe, sc.stored)
        multiply = sc.multiplier is not None
        d = (sc.multiplier if sc.multiplier is not None else M.safe_divisor(ops, recipe, sc.divisor)).float()
        glob = None if sc.global_scale is None else sc.global_scale.reshape(()).float()
        if step >= g_rows:
            return part, d, multiply, glob
        if stored is None or per is None:
            stored, per = torch.empty((g_rows, nb), dtype=part.dtype), torch.empty(g_rows, nb)
        stored[t : t + step].copy_(part)
        per[t : t + step].copy_(d)
    assert stored is not None and per is not None
    return stored, per, multiply, glob


_FP8_FAST = (Float8CurrentScaling, DelayedScaling, Float8BlockScaling, MXFP8BlockScaling)
_NATIVE = {"E4M3": torch.float8_e4m3fn, "E5M2": torch.float8_e5m2}


def _fp8_rows(
    ops: TorchOps, x2: torch.Tensor, recipe: Recipe, layout: Layout, row_layout: Layout
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """FP8 recipes blocked along rows, in two chunked passes with reusable ``out=`` buffers and no per-element
    temporaries: the same IEEE operations as the shared math. ``None`` where it does not apply; NaN/Inf make it
    return ``None`` so the general path raises, naming the block.

    Pass 1 (:func:`_block_amax`) fills the small grid of block amaxes. The scales then come from
    :func:`breccia._math.compute_scales` once, on the whole grid (a handful of small ops instead of a handful per
    chunk: per-op dispatch dominated the scale math at 16+ chunks). Pass 2 divides and converts."""
    if not isinstance(recipe, _FP8_FAST):
        return None
    r_all, k = x2.shape
    b = k if isinstance(row_layout, (PerTensor, PerChannel)) else row_layout.block_k  # type: ignore[attr-defined]
    bm = 1
    if isinstance(row_layout, PerBlock2D):  # whole tiles per chunk: amax over (bm rows × b columns)
        if row_layout.axis != -1 or r_all % row_layout.block_m:
            return None
        bm = row_layout.block_m
    elif getattr(recipe, "block_m", 1) != 1:
        return None
    if k % b:
        return None
    fmt = recipe.element
    rows = max(1, CHUNK_ELEMS // k) // bm * bm or bm
    xin = torch.empty(rows, k) if x2.dtype != torch.float32 else None
    per_tensor = isinstance(row_layout, PerTensor)
    if per_tensor:
        lo, hi = torch.aminmax(x2)
        amax = torch.maximum(hi, -lo).float().reshape(1, 1, 1, 1)
        if not bool(torch.isfinite(amax)):
            return None
    else:
        blocks = _block_amax(x2, rows, b, bm)
        if blocks is None:
            return None
        amax = blocks
    sc = M.compute_scales(ops, recipe, amax, assume_finite=True)
    scale = M.store_scale(ops, recipe, sc.stored.reshape(()) if per_tensor else sc.stored.reshape(r_all // bm, k // b))
    divisor = sc.divisor
    clamp = _needs_clamp(recipe)
    buf = torch.empty(rows, k)
    out = torch.empty(r_all, k, dtype=_NATIVE[fmt.name])
    for i in range(0, r_all, rows):
        r = min(rows, r_all - i)
        xc = x2[i : i + r]
        if xin is not None:
            xin[:r].copy_(xc)
            xc = xin[:r]
        bv = buf[:r].view(r // bm, bm, k // b, b)
        d = divisor if per_tensor else divisor[i // bm : (i + r) // bm]
        torch.div(xc.reshape(r // bm, bm, k // b, b), d, out=bv)
        if clamp:
            bv.clamp_(-fmt.fmax, fmt.fmax)
        out[i : i + r].copy_(buf[:r])
    return out, scale


_MAGNITUDE = {  # the integer view of each float dtype and the mask that clears its sign bit
    torch.float32: (torch.int32, 0x7FFFFFFF),
    torch.float64: (torch.int64, 0x7FFFFFFFFFFFFFFF),
    torch.float16: (torch.int16, 0x7FFF),
    torch.bfloat16: (torch.int16, 0x7FFF),
}
_INF_BITS = 0x7F800000


def _block_amax(x2: torch.Tensor, rows: int, b: int, bm: int) -> torch.Tensor | None:
    """fp32 ``max |x|`` per (``bm`` × ``b``) block of the 2-D ``x2``, as a ``(R/bm, 1, K/b, 1)`` grid; ``None`` if any
    block holds NaN or ±Inf.

    ``|x|`` is taken on the bit pattern (clear the sign bit) and reduced as integers: for non-negative IEEE floats
    the integer order is the float order, and torch's CPU integer max is ~1.6× faster than its float max (which
    carries NaN checks), so a mask pass plus an int reduction beats both ``abs`` + float ``amax`` and ``amax`` +
    ``amin`` (measured on 4096×4096: 6.0 vs 8.0 and 9.3 ms for 32-blocks). NaN patterns sort above Inf, so the
    finiteness check is one comparison on the grid. Chunks of ``rows`` rows keep the masked copy cache-resident."""
    r_all, k = x2.shape
    ity, mask = _MAGNITUDE[x2.dtype]
    xi = x2.view(ity)
    mag = torch.empty(min(rows, r_all), k, dtype=ity)
    grid = torch.empty(r_all, k // b, dtype=ity)
    for i in range(0, r_all, rows):
        m = torch.bitwise_and(xi[i : i + rows], mask, out=mag[: min(rows, r_all - i)])
        torch.amax(m.view(-1, k // b, b), dim=-1, out=grid[i : i + rows])
    amax = grid.view(x2.dtype).float()
    if bm > 1:  # 2-D tiles: reduce the per-row block maxima over each tile's bm rows
        amax = amax.view(r_all // bm, bm, k // b).amax(dim=1)
    if bool((amax.view(torch.int32) >= _INF_BITS).any()):
        return None
    return amax.view(r_all // bm, 1, k // b, 1)


def _needs_clamp(recipe: Recipe) -> bool:
    """Whether ``x / s`` can leave the format's range, so the clamp pass must run.

    Where the scale is at least ``amax / fmax`` (current scaling, 1×128 blocks, MX ``rceil``), ``|x / s|`` exceeds
    ``fmax`` by at most two ulps of rounding, which torch's round-to-nearest-even FP8 conversion maps to ``±fmax``
    (the overflow threshold is ``fmax`` plus half its ulp): the clamp would change no byte, so it is skipped. A delayed
    scale (from history) or an MX ``floor`` scale (up to twice ``amax / fmax`` below) can put values far past it."""
    if isinstance(recipe, DelayedScaling):
        return True
    return isinstance(recipe, MXFP8BlockScaling) and recipe.scale_rounding != "rceil"
