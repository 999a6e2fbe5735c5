"""Host side of the Triton quantize: which casts the kernel covers, its launch, and the ScaledTensor it builds.

The kernel writes raw codes (uint8/int8), scale bits and a per-program flag; this module turns them into exactly
the buffers breccia-torch's ``cast`` returns (native float8 / e8m0 dtypes, fp16/bf16 scales rounded by torch the
way ``TorchOps.store_float`` does), so the two are byte-identical. Whenever the flag says the input held NaN/Inf
(or an fp16/bf16 integer scale overflowed) the cast is redone by breccia-torch, which owns those error messages
and the ``nonfinite="propagate"`` semantics; when it says only that a divisor left the fast division's range, the
kernel runs again with ``div.rn`` (``SAFE``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

import breccia
from breccia._api import _resolve
from breccia._layouts import Layout, PerBlock2D, PerBlockK, PerChannel, PerTensor
from breccia._recipes import (
    Float8BlockScaling,
    Float8CurrentScaling,
    INT4Scaling,
    INT8Scaling,
    MXFP4BlockScaling,
    MXFP6BlockScaling,
    MXFP8BlockScaling,
    NVFP4BlockScaling,
    Recipe,
    scale_kind,
)
from breccia._tensor import ScaledTensor

from ._cast_args import _kind_args, _needs_clamp, _use_mult

__all__ = ["cast", "supports"]

_INPUTS = (torch.float32, torch.float16, torch.bfloat16)
_FP8 = {"E4M3": torch.float8_e4m3fn, "E5M2": torch.float8_e5m2}
_FLOAT = {"fp16": torch.float16, "bf16": torch.bfloat16}
MAX_BLOCK = 16384  # one block is reduced in registers: PerChannel rows longer than this stay with breccia-torch
TILE = 8192  # elements per program: enough bytes in flight per SM without spilling
NUM_WARPS = 4  # 64 elements per thread at TILE: the per-program work (reductions, guards) amortised over more
LONG_BLOCK_WARPS = 8  # warps where one block fills a program (per-channel rows of TILE or more elements)
PAIR_CHUNKS = 4  # row chunks (2 or 4) of the one-pass FP8 2-D tile kernel (see _kernel2d.quant_tiles_pairs_kernel)
NV2D_SWAP = True  # NVFP4 16×16: grid x along the row's tiles (see _launch; H200, 8192² bf16: 44.9 → 44.0 µs)
NV2D_WARPS = 1  # NVFP4 16×16 programs of 16 rows × 256 that _row_tile picks: no cross-warp amax (44.0 µs, 50.2 at 2)
NV2D_OTHER_WARPS = 2  # the other NVFP4 16×16 launches (fp32, masked): 1 warp there takes 168-186 registers, unmeasured
# int64 offsets from this many elements: a padded last program reaches up to 2·TILE past the end (a test lowers it to
# run that path in the interpreter)
I64_FROM = 2**31 - 2 * TILE
GRID_Y_MAX = 65535  # CUDA's limit on grid y: NVFP4 16×16 keeps its rows on grid x beyond it (a test lowers it)
PAIR_WARPS = 8  # its warps: a 128×128 tile is then 32 words per thread, 64 registers (H200 sweep: 0.93 vs 0.91 at 4)


def _pow2ceil(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@dataclass(frozen=True)
class _Plan:
    k: int  # elements per row
    bk: int  # elements per block
    pack: int  # 2 for 4-bit formats (two codes per byte)
    per_tensor: bool = False  # one scale from a whole-tensor amax (Float8CurrentScaling's default layout)
    rb: int = 1  # rows per block: > 1 for PerBlock2D tiles
    half_tile: bool = False  # programs of TILE / 2 elements (see _tiling)


def _plan(x: Any, recipe: Recipe, layout: Layout) -> _Plan | None:
    """The kernel's view of the cast, or None where it does not apply (then breccia-torch is the path)."""
    if not isinstance(x, torch.Tensor) or x.dtype not in _INPUTS or x.ndim < 1 or x.numel() == 0:
        return None
    if not (x.is_cuda or (x.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1")):
        return None
    k = int(x.shape[-1])
    if isinstance(layout, PerTensor):  # one amax from torch, then the encode kernel tiles rows in 1024-chunks
        ok = isinstance(recipe, Float8CurrentScaling)
        return _Plan(k, min(k, 1024), 1, per_tensor=True) if ok else None
    pack = 2 if recipe.element.storage == "packed4" else 1
    if isinstance(layout, PerBlock2D):  # 2-D tiles over the last two axes (128×128 FP8, 16×16 NVFP4)
        if x.ndim < 2 or not isinstance(recipe, (Float8BlockScaling, NVFP4BlockScaling)):
            return None
        rb, cb = layout.block_shape(tuple(int(n) for n in x.shape))[-2:]
        too_big = _pow2ceil(rb) * _pow2ceil(-(-cb // pack)) * pack > 2 * MAX_BLOCK
        if too_big or (pack == 2 and cb % 2 and cb != k):
            return None
        return _Plan(k, cb, pack, rb=rb, half_tile=isinstance(recipe, NVFP4BlockScaling))
    if not isinstance(layout, (PerBlockK, PerChannel)) or layout.axis not in (-1, x.ndim - 1):
        return None
    if not isinstance(
        recipe,
        (
            Float8BlockScaling,
            Float8CurrentScaling,
            MXFP8BlockScaling,
            MXFP6BlockScaling,
            MXFP4BlockScaling,
            NVFP4BlockScaling,
            INT4Scaling,
            INT8Scaling,
        ),
    ):
        return None
    if isinstance(recipe, (INT4Scaling, INT8Scaling)) and recipe.float_zero_point:
        return None  # MLX's affine rule (float zero points) is not in the kernel: breccia-torch's driver casts it
    bk = k if isinstance(layout, PerChannel) else min(layout.block_k, k)
    if bk > MAX_BLOCK or (pack == 2 and bk % 2 and bk != k):  # nibble pairs must not straddle blocks
        return None
    return _Plan(k, bk, pack, half_tile=recipe.has_zero_point)


def supports(x: Any, recipe: Recipe, layout: Layout | None = None, axis: int = -1) -> bool:
    """Whether :func:`cast` runs the Triton kernel for this input (else it returns None)."""
    try:
        lay = _resolve(recipe, layout, axis, "breccia.triton.supports", getattr(x, "ndim", None))
    except breccia.BrecciaError:
        return False
    return _plan(x, recipe, lay) is not None


def _tiling(r: int, m: int, plan: _Plan) -> tuple[int, int, tuple[int, int], bool]:
    """``(rows, blocks, grid, full)`` of a launch over ``r`` rows (``m`` per matrix): each program takes ``rows`` ×
    ``blocks`` blocks of about :data:`TILE` elements; ``full`` when the programs tile the tensor exactly (no row,
    block or element past an edge), so the kernel can drop its masks. Plans marked ``half_tile`` (integer recipes
    with a zero point, NVFP4 2-D tiles) take ``TILE / 2``: their fast paths hold more per element (72 and more
    registers at ``TILE``); H200 sweeps: INT4 g128 asymmetric 43.3 µs against 45.9, NVFP4 16×16 (1 warp) 44.0
    against 46.4 at ``TILE`` and 2 warps (``benchmarks/NOTES.md``, ninth and sixteenth sessions)."""
    tile = TILE // 2 if plan.half_tile else TILE
    nb = -(-plan.k // plan.bk)
    bkp = _pow2ceil(-(-plan.bk // plan.pack))
    if plan.rb == 1:
        nbt = min(_pow2ceil(nb), max(1, tile // (bkp * plan.pack)))
        rows = min(_pow2ceil(r), max(1, tile // (nbt * bkp * plan.pack)))
        grid = (-(-r // rows), -(-nb // nbt))
        full = r % rows == 0
    else:
        rows = _pow2ceil(plan.rb)
        nbt = min(_pow2ceil(nb), max(1, tile // (rows * bkp * plan.pack)))
        grid = ((r // m) * -(-m // plan.rb), -(-nb // nbt))
        full = rows == plan.rb and m % plan.rb == 0
    return rows, nbt, grid, full and nb % nbt == 0 and plan.k % plan.bk == 0 and bkp * plan.pack == plan.bk


def _launch(
    x2: torch.Tensor, recipe: Recipe, plan: _Plan, gamax: torch.Tensor | None, m: int, safe: bool = False
) -> tuple[torch.Tensor, ...]:
    """Allocate the outputs and run the kernel over ``x2`` (``(R, K)``; ``m`` rows per matrix for 2-D tiles);
    ``safe``: ``div.rn`` for every element, for a launch whose fast division flagged its range (flag 4). Returns
    ``(data, scale, zp, flags)``, where ``zp`` is two-level NVFP4's 0-d float32 global scale, which the kernel
    writes (an INT4 recipe's zero points, else unread)."""
    from . import _kernel as K

    r, k = int(x2.shape[0]), plan.k
    nb = -(-k // plan.bk)
    nbr = -(-m // plan.rb)
    srows = r if plan.rb == 1 else (r // m) * nbr  # rows of the scale grid
    kd = -(-k // 2) if plan.pack == 2 else k
    fmt = recipe.element
    dev = x2.device
    ddtype = torch.int8 if fmt.storage == "int8" else torch.uint8
    data = torch.empty((r, kd), dtype=ddtype, device=dev)
    skind = scale_kind(recipe)
    scale = torch.empty(
        (1, 1) if plan.per_tensor else (srows, nb),
        dtype=torch.uint8 if skind in ("e8m0", "e4m3") else torch.float32,
        device=dev,
    )
    if recipe.has_zero_point:
        zp = torch.empty((srows, nb), dtype=torch.int32, device=dev)
    elif recipe.has_global_scale:  # the kernel's zp_ptr: NVFP4 has no zero point, and program (0, 0) stores g there
        zp = torch.empty((), dtype=torch.float32, device=dev)
    else:
        zp = scale
    rows, nbt, grid, full = _tiling(r, m, plan)
    bkp = _pow2ceil(-(-plan.bk // plan.pack))
    flags = torch.empty(grid, dtype=torch.int32, device=dev)
    g = gamax if gamax is not None else scale
    xin = x2.view(torch.int16) if x2.dtype == torch.bfloat16 else x2
    xw = _pair_words(x2, plan)
    row_tile = _row_tile(plan, full, xw is not None)
    # the specialisation and launch options both kernels share
    common: dict[str, Any] = dict(
        BK=plan.bk, BKP=bkp, NBT=nbt, IN_KIND=_IN_KIND[x2.dtype], NATIVE=x2.is_cuda, CLAMP=_needs_clamp(recipe),
        FULL=full, I64=x2.numel() >= I64_FROM, num_warps=_warps(x2, bkp * plan.pack, plan, row_tile),
        enable_fp_fusion=False,
    )  # fmt: skip
    a = _kind_args(recipe)
    if plan.rb != 1 and isinstance(recipe, Float8BlockScaling):  # FP8 2-D tiles: _kernel2d
        from . import _kernel2d as K2

        fmt_args = {n: a[n] for n in ("EBITS", "MBITS", "BIAS", "ENC_MUL", "FMAX", "POW2")}
        pw = _tile_words(x2, plan, rows, bkp)
        if pw is not None:  # 16-bit input: one pass, the tile held as pair words
            nbt2 = min(_pow2ceil(nb), max(1, 2 * TILE // (rows * bkp)))
            grid2 = (grid[0], -(-nb // nbt2))
            flags = torch.empty(grid2, dtype=torch.int32, device=dev)
            full2 = full and nb % nbt2 == 0
            common.update(NBT=nbt2, FULL=full2, num_warps=PAIR_WARPS if x2.is_cuda else 1)
            del common["BK"], common["BKP"]
            kw = _hidden_factor(k // 2, 16)
            K2.quant_tiles_pairs_kernel[grid2](
                pw, data.view(torch.int16), scale, flags, k // 2 // kw, nb, m, nbr, BW=plan.bk // 2, BWP=bkp // 2,
                RB=plan.rb, RBP=rows, NCH=min(PAIR_CHUNKS, rows), KV=kw, **fmt_args, **common,
            )  # fmt: skip
            return data, scale, zp, flags
        kt = _hidden_factor(k, 16)
        K2.quant_tiles_kernel[grid](
            xin, data, scale, flags, k // kt, nb, m, nbr, RB=plan.rb, RCH=min(rows, max(1, TILE // (nbt * bkp))),
            KV=kt, **fmt_args, **common,
        )  # fmt: skip
        return data, scale, zp, flags
    # for K or, with 4-bit codes, KD = K / 2 bytes; not NVFP4 16×16 (2.9× slower on an H200: 8192×5008)
    kv = _hidden_factor(k, 16 * plan.pack) if plan.rb == 1 else 1
    swap = plan.rb != 1 and NV2D_SWAP and grid[0] <= GRID_Y_MAX
    if swap:
        grid = (grid[1], grid[0])
        flags = flags.view(grid)
    K.quant_rows_kernel[grid](
        xin, xin if xw is None else xw, data, scale, zp, g, flags, r, k // kv, nb, kd, m, nbr, k // 2,
        PACK=plan.pack, KV=kv, ROWS=rows, **a, PAIRS=xw is not None, PER_TENSOR=plan.per_tensor, RB=plan.rb,
        USE_MULT=_use_mult(recipe), SAFE=safe, SWAP=swap, ROW_TILE=row_tile, **common,
    )  # fmt: skip
    return data, scale, zp, flags


_IN_KIND = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}


def _hidden_factor(n: int, multiple: int) -> int:
    """The power-of-two factor of a row length ``n`` that the launch's specialisation does not see: 1 where ``n``
    is a multiple of ``multiple`` (Triton marks integer arguments divisible by 16, and ``multiple`` is 16 times the
    elements per stored byte), else ``n``'s largest power-of-two divisor. The kernels take ``n`` divided by it and
    multiply back by the constexpr, so their address analysis knows the rows' alignment: without it a row length
    such as 5000 (8 bf16 = 16 B) costs the loads and stores their vectors (sm_90, Triton 3.6: the MXFP8 row kernel
    255 registers and 3 224 instructions at K = 5000 against 114 and 872 with it)."""
    return 1 if n % multiple == 0 else n & -n


def _row_tile(plan: _Plan, full: bool, pairs: bool) -> bool:
    """The kernel's ``ROW_TILE``: a 2-D tile (NVFP4 16×16) of pair words, tiled exactly, is loaded and stored along
    the row. From 16-bit input such a launch runs :data:`NV2D_WARPS` (one warp holds the tile, so the amax down its
    16 rows needs no shared memory); decided here once, for the kernel and for :func:`_warps`."""
    return plan.rb != 1 and full and plan.pack == 2 and pairs


def _warps(x2: torch.Tensor, block: int, plan: _Plan, row_tile: bool = False) -> int:
    """Warps per program: :data:`NUM_WARPS`, or :data:`LONG_BLOCK_WARPS` where one block spans the whole program
    (per-channel rows of ``TILE`` elements or more: the H200 sweep measured INT8 per channel at 53 µs with 8 warps
    and 54 µs with 4), or for NVFP4 2-D tiles :data:`NV2D_WARPS` (``row_tile``: :func:`_row_tile` from 16-bit input) or
    :data:`NV2D_OTHER_WARPS`; one in the CPU interpreter."""
    if not x2.is_cuda:
        return 1
    if plan.rb != 1 and plan.half_tile:
        return NV2D_WARPS if row_tile and x2.dtype != torch.float32 else NV2D_OTHER_WARPS
    return LONG_BLOCK_WARPS if block >= TILE else NUM_WARPS


def _tile_words(x2: torch.Tensor, plan: _Plan, rows: int, bkp: int) -> torch.Tensor | None:
    """For FP8 2-D tiles of a 16-bit input, ``x2`` viewed as int32 pair words, so one program holds whole tiles
    (:func:`._kernel2d.quant_tiles_pairs_kernel`); None where pairs would straddle a block or the tile is too big for
    registers (more than :data:`TILE` words), or the buffer is not word-aligned."""
    if x2.dtype == torch.float32 or plan.k % 2 or plan.bk % 2 or rows * bkp > 2 * TILE:
        return None
    if x2.data_ptr() % 4:
        return None
    return x2.view(torch.int32)


def _pair_words(x2: torch.Tensor, plan: _Plan) -> torch.Tensor | None:
    """For 4-bit formats, ``x2`` viewed as one integer word per element pair (int32 for 16-bit floats, int64 for
    fp32), so the kernel loads each pair at once; None where pairs would straddle a row or block (odd K or block)
    or the buffer is not word-aligned (then the kernel splits a contiguous load in registers)."""
    if plan.pack != 2 or plan.k % 2 or plan.bk % 2:
        return None
    word = torch.int64 if x2.dtype == torch.float32 else torch.int32
    if x2.data_ptr() % (2 * x2.element_size()):
        return None
    return x2.view(word)


def cast(
    x: Any, recipe: Recipe, *, layout: Layout | None = None, axis: int = -1, nonfinite: str = "raise"
) -> ScaledTensor | None:
    """Quantize ``x`` with the Triton kernel; byte-identical to ``breccia.cast`` on the same torch tensor.

    Returns None where the kernel does not apply (see :func:`supports`), and during CUDA graph capture: the call
    reads its non-finite flag on the host, a sync that capture forbids, while breccia-torch's own driver casts with
    ``nonfinite="propagate"`` without one. Non-finite input (and fp16/bf16 integer scale overflow) is redone by
    breccia-torch, so errors and ``nonfinite="propagate"`` match it exactly.
    """
    lay = _resolve(recipe, layout, axis, "breccia.triton.cast", getattr(x, "ndim", None))
    plan = _plan(x, recipe, lay)
    if plan is None or (x.is_cuda and torch.cuda.is_current_stream_capturing()):
        return None
    shape = tuple(int(n) for n in x.shape)
    lay.validate_shape(shape)
    with torch.no_grad():
        x2 = x.detach().contiguous().reshape(-1, plan.k)
        gamax = None
        if recipe.has_global_scale or plan.per_tensor:
            from . import _amax

            gamax = _amax.tensor_amax(x2)
        m = shape[-2] if len(shape) >= 2 else 1
        data, scale, zp, flags = _launch(x2, recipe, plan, gamax, m)
        flag = int(flags.max().item())
        if flag == 4:  # a divisor out of the one-reciprocal division's range (INT4, NVFP4 global): div.rn
            data, scale, zp, flags = _launch(x2, recipe, plan, gamax, m, safe=True)
            flag = int(flags.max().item())
        if flag:  # NaN/Inf or a scale overflow: the reference decides what happens
            return _fallback(x, recipe, lay, nonfinite)
        return _assemble(data, scale, zp, recipe, lay, shape)


def _fallback(x: torch.Tensor, recipe: Recipe, lay: Layout, nonfinite: str) -> ScaledTensor:
    """breccia-torch's cast, which raises NonFiniteError / RecipeError or propagates exactly as the reference."""
    from breccia.torch._backend import BACKEND  # its native driver: breccia.cast would route back here

    st = BACKEND.cast_native(x, recipe, lay, nonfinite=nonfinite, history=None)
    assert isinstance(st, ScaledTensor)
    return st


def _assemble(
    data: torch.Tensor,
    scale: torch.Tensor,
    zp: torch.Tensor,
    recipe: Recipe,
    lay: Layout,
    shape: tuple[int, ...],
) -> ScaledTensor:
    """The kernel's raw buffers as the ScaledTensor breccia-torch would build (same dtypes, shapes, bytes);
    ``zp`` is as :func:`_launch` returns it: the zero points, or two-level NVFP4's global scale."""
    fmt = recipe.element
    data = data.reshape(*shape[:-1], data.shape[-1])
    if fmt.storage == "fp8":
        data = data.view(_FP8[fmt.name])
    kind = scale_kind(recipe)
    sshape = lay.scale_shape(shape)
    scale = scale.reshape(sshape)
    if kind == "e8m0":
        scale = scale.view(torch.float8_e8m0fnu)
    elif kind == "e4m3":
        scale = scale.view(torch.float8_e4m3fn)
    elif kind in _FLOAT:
        scale = scale.to(_FLOAT[kind])
    zero_point = None
    if recipe.has_zero_point:
        zero_point = zp.reshape(sshape).to(torch.int8 if fmt.signed else torch.uint8)
    glob = zp if recipe.has_global_scale else None
    return ScaledTensor(data, scale, recipe, lay, shape, global_scale=glob, zero_point=zero_point)
