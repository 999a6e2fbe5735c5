"""FP8 scaled GEMM with explicit warp specialisation (Gluon, Hopper sm_90 only).

Why a second TMA kernel: the Triton kernel of :mod:`._gemm_tma` issues its loads, its MMAs and its FP32 promotion
from the same warps, so a warpgroup's promotion of one 128-K block waits for that block's MMAs and the tensor cores
idle meanwhile. Here each CTA runs three partitions that synchronise only through mbarriers:

* a **producer** warp issues the TMA copies of the A and B tiles (and, for 1×128 · 128×128 recipes, the K block's
  128 activation scales) into a ring of ``STAGES`` shared-memory slots;
* two **consumer** warpgroups each own 64 rows of the CTA's 128-row tile. A consumer issues K block j + 1's
  ``wgmma`` into a fresh FP32 accumulator before it waits for block j's, then frees block j's slot and adds its
  partial product (scaled by ``sa · sb`` in block mode) into its running FP32 sum. So each promotion overlaps the
  warpgroup's own next MMAs as well as the other warpgroup's: the two are not in lockstep. In block mode a consumer
  reads the K block's activation scales from the slot right after issuing its MMAs (``early_scales``), so no
  shared-memory read sits between the MMA wait and the slot's release (+0.2–1.3 % on the blockwise geometric mean,
  −6–8 % at 16384×7168×16384 alone, so runs that long read them late: :data:`LONG_RUN`, benchmarks/NOTES.md).

The arithmetic is that of :mod:`._gemm` and :mod:`._gemm_tma` (same promotion interval, same order of the FP32
additions within a K block is the tensor core's), so the three kernels agree to the recipe's tolerance, not bitwise.
The grid is persistent (one CTA per SM, tiles in grouped order); the epilogue of a tile goes out through a TMA
store that overlaps the next tile's main loop.

Gluon has no CPU interpreter: CI checks the pointer and TMA Triton kernels under ``TRITON_INTERPRET=1``, and the
GPU tests check this kernel against an FP64 product of the dequantized operands (docs/architecture.md).
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any, NamedTuple

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    fence_async_shared,
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_wait,
)

from ._gemm_tma import _num_sms, _tile_coords, scale_operands  # the tile order is the Triton kernel's (same SASS)
from ._gluon_compat import tma_load, tma_store

__all__ = ["SMALL_M", "WS_CONFIGS", "WsConfig", "applies", "default_config", "gemm_ws"]

_HALF = 64  # rows per consumer warpgroup (one wgmma M extent)


@gluon.jit
def _producer(
    p, MODE: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr, STAGES: gl.constexpr, GROUP_M: gl.constexpr,
    G: gl.constexpr, EARLY: gl.constexpr,
):  # fmt: skip
    """One warp: walk the same tiles as the consumers and keep the slot ring full. (``G`` and ``EARLY`` are
    unused: Gluon wants one signature for every worker partition.)"""
    a_desc, b_desc, _c_desc, sa_desc, _sb_ptr, shape, _strides, bufs, bars, _c_smem = p
    M, N, K = shape
    a_bufs, b_bufs, sa_bufs = bufs
    ready, empty = bars
    BM: gl.constexpr = 2 * 64
    num_pid_m = gl.cdiv(M, BM)
    num_pid_n = gl.cdiv(N, BN)
    k_tiles = gl.cdiv(K, BK)
    # one K block's 128 activation scales (fp32) travel with its tiles in block mode
    nbytes: gl.constexpr = a_desc.block_type.nbytes + b_desc.block_type.nbytes + (512 if MODE == 2 else 0)
    m_pad = sa_desc.shape[0] // k_tiles if MODE == 2 else 0
    it = 0
    for tile in range(gl.program_id(0), num_pid_m * num_pid_n, gl.num_programs(0)):
        pid_m, pid_n = _tile_coords(tile, num_pid_m, num_pid_n, GROUP_M)
        om = pid_m * BM
        on = pid_n * BN
        for ki in range(k_tiles):
            s = it % STAGES
            mbarrier.wait(empty.index(s), ((it // STAGES) & 1) ^ 1)
            mbarrier.expect(ready.index(s), nbytes)
            tma_load(a_desc, [om, ki * BK], ready.index(s), a_bufs.index(s))
            tma_load(b_desc, [on, ki * BK], ready.index(s), b_bufs.index(s))
            if MODE == 2:  # the K block's 128 activation scales, (K/128, M) flattened
                tma_load(sa_desc, [ki * m_pad + om], ready.index(s), sa_bufs.index(s))
            it += 1


@gluon.jit
def _issue(a_bufs, b_bufs, sa_bufs, ready, it, zero, sb_ptr, kb, nb, strides, MODE: gl.constexpr,
           STAGES: gl.constexpr, G: gl.constexpr, EARLY: gl.constexpr, row_layout: gl.constexpr):  # fmt: skip
    """Wait for K block ``kb``'s slot and start its MMAs into a fresh accumulator; fetch its weight block scale and,
    with ``EARLY``, its activation scales from the slot now (the slot stays ours until :func:`_retire` frees it)."""
    _s_sam, _s_sak, s_sbk, s_sbn = strides
    s = it % STAGES
    mbarrier.wait(ready.index(s), (it // STAGES) & 1)
    a = a_bufs.index(s).slice(G * 64, 64, dim=0)
    part = warpgroup_mma(a, b_bufs.index(s).permute((1, 0)), zero, use_acc=False, is_async=True)
    sb = gl.load(sb_ptr + kb * s_sbk + nb * s_sbn) if MODE == 2 else nb
    sa = sa_bufs.index(s).slice(G * 64, 64).load(row_layout) if MODE == 2 and EARLY else sb  # else: not read
    return part, sb, sa


@gluon.jit
def _issue_at(q, it, kb, MODE: gl.constexpr, STAGES: gl.constexpr, G: gl.constexpr, EARLY: gl.constexpr,
              row_layout: gl.constexpr):  # fmt: skip
    """:func:`_issue` with the tile's loop-invariant arguments bundled (``q``)."""
    a_bufs, b_bufs, sa_bufs, ready, zero, sb_ptr, nb, strides = q
    return _issue(a_bufs, b_bufs, sa_bufs, ready, it, zero, sb_ptr, kb, nb, strides, MODE, STAGES, G, EARLY, row_layout)


@gluon.jit
def _retire(acc, part, sb, sa, sa_bufs, empty, it, PENDING: gl.constexpr, MODE: gl.constexpr,
            STAGES: gl.constexpr, G: gl.constexpr, EARLY: gl.constexpr, row_layout: gl.constexpr):  # fmt: skip
    """Wait until at most ``PENDING`` MMA groups are in flight (so ``part`` is done), free its slot, add it. Without
    ``EARLY`` the activation scales are read from the slot here, between the MMA wait and the slot's release."""
    part = warpgroup_mma_wait(PENDING, deps=(part,))
    if MODE == 2 and not EARLY:
        sa = sa_bufs.index(it % STAGES).slice(G * 64, 64).load(row_layout)
    mbarrier.arrive(empty.index(it % STAGES), count=1)
    if MODE == 2:
        acc += part * (sa * sb)[:, None]
    else:
        acc += part
    # Pin the additions here: LLVM would otherwise sink them to the sum's next use, past the next block's MMA
    # issue, and ptxas serialises every wgmma once other instructions touch accumulators inside a pipeline stage.
    return gl.inline_asm_elementwise("mov.b32 $0, $1;", "=r,r", [acc], dtype=gl.float32, is_pure=False, pack=1)


@gluon.jit
def _consumer(
    p, MODE: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr, STAGES: gl.constexpr, GROUP_M: gl.constexpr,
    G: gl.constexpr, EARLY: gl.constexpr,
):  # fmt: skip
    """One warpgroup: rows ``64·G … 64·G + 63`` of every tile; promotion to FP32 after each 128-K block.

    Two K blocks are in flight per warpgroup: block j + 1's MMAs are issued before block j's partial product is
    waited for and added, so the additions overlap this warpgroup's own MMAs as well as the other's. The loop is
    unrolled by two so each in-flight accumulator keeps its registers (a loop-carried swap would need a copy, and
    copying an in-flight accumulator waits for it)."""
    _a_desc, _b_desc, c_desc, sa_ptr, sb_ptr, shape, strides, bufs, bars, c_smem = p
    M, N, K = shape
    s_sam, _s_sak, _s_sbk, s_sbn = strides
    a_bufs, b_bufs, sa_bufs = bufs
    ready, empty = bars
    BM: gl.constexpr = 2 * 64
    HALF: gl.constexpr = 64
    acc_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, BN, 32])
    row_layout: gl.constexpr = gl.SliceLayout(1, acc_layout)
    col_layout: gl.constexpr = gl.SliceLayout(0, acc_layout)
    num_pid_m = gl.cdiv(M, BM)
    num_pid_n = gl.cdiv(N, BN)
    k_tiles = gl.cdiv(K, BK)
    my_c = c_smem.index(G)
    zero = gl.zeros((HALF, BN), gl.float32, acc_layout)
    it = 0
    for tile in range(gl.program_id(0), num_pid_m * num_pid_n, gl.num_programs(0)):
        pid_m, pid_n = _tile_coords(tile, num_pid_m, num_pid_n, GROUP_M)
        om = pid_m * BM + G * HALF
        on = pid_n * BN
        nb = on // 128
        rows = om + gl.arange(0, HALF, layout=row_layout)
        acc = gl.zeros((HALF, BN), gl.float32, acc_layout)
        q = (a_bufs, b_bufs, sa_bufs, ready, zero, sb_ptr, nb, strides)
        x, xb, xa = _issue_at(q, it, 0, MODE, STAGES, G, EARLY, row_layout)
        for j in range(1, k_tiles - 1, 2):
            y, yb, ya = _issue_at(q, it + j, j, MODE, STAGES, G, EARLY, row_layout)
            acc = _retire(acc, x, xb, xa, sa_bufs, empty, it + j - 1, 1, MODE, STAGES, G, EARLY, row_layout)
            x, xb, xa = _issue_at(q, it + j + 1, j + 1, MODE, STAGES, G, EARLY, row_layout)
            acc = _retire(acc, y, yb, ya, sa_bufs, empty, it + j, 1, MODE, STAGES, G, EARLY, row_layout)
        if k_tiles % 2 == 0:
            y, yb, ya = _issue_at(q, it + k_tiles - 1, k_tiles - 1, MODE, STAGES, G, EARLY, row_layout)
            acc = _retire(acc, x, xb, xa, sa_bufs, empty, it + k_tiles - 2, 1, MODE, STAGES, G, EARLY, row_layout)
            acc = _retire(acc, y, yb, ya, sa_bufs, empty, it + k_tiles - 1, 0, MODE, STAGES, G, EARLY, row_layout)
        else:
            acc = _retire(acc, x, xb, xa, sa_bufs, empty, it + k_tiles - 1, 0, MODE, STAGES, G, EARLY, row_layout)
        it += k_tiles
        if MODE == 0:
            acc = acc * (gl.load(sa_ptr) * gl.load(sb_ptr))
        elif MODE == 1:
            cols = on + gl.arange(0, BN, layout=col_layout)
            sa_r = gl.load(sa_ptr + rows * s_sam, mask=rows < M, other=0.0)
            sb_c = gl.load(sb_ptr + cols * s_sbn, mask=cols < N, other=0.0)
            acc = acc * sa_r[:, None] * sb_c[None, :]
        tma.store_wait(0)  # the previous tile's store has left this warpgroup's staging buffer
        my_c.store(acc.to(c_desc.dtype))
        fence_async_shared()
        tma_store(c_desc, [om, on], my_c)
    tma.store_wait(0)


@gluon.jit
def _gemm_ws_kernel(
    a_desc, b_desc, c_desc, sa_ptr, sb_ptr,
    M, N, K,
    s_sam, s_sak, s_sbk, s_sbn,
    MODE: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr, STAGES: gl.constexpr, GROUP_M: gl.constexpr,
    EARLY: gl.constexpr,
):  # fmt: skip
    a_bufs = gl.allocate_shared_memory(a_desc.dtype, [STAGES, 128, BK], a_desc.layout)
    b_bufs = gl.allocate_shared_memory(b_desc.dtype, [STAGES, BN, BK], b_desc.layout)
    c_smem = gl.allocate_shared_memory(c_desc.dtype, [2, 64, BN], c_desc.layout)  # one per consumer warpgroup
    sa_layout: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=0, element_bitwidth=32, rank=1)
    sa_bufs = gl.allocate_shared_memory(gl.float32, [STAGES, 128 if MODE == 2 else 1], sa_layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1)
        mbarrier.init(empty.index(i), count=2)  # one arrival per consumer warpgroup
    p = (
        a_desc, b_desc, c_desc, sa_ptr, sb_ptr, (M, N, K), (s_sam, s_sak, s_sbk, s_sbn),
        (a_bufs, b_bufs, sa_bufs), (ready, empty), c_smem,
    )  # fmt: skip
    gl.warp_specialize(
        [
            (_consumer, (p, MODE, BN, BK, STAGES, GROUP_M, 0, EARLY)),
            (_consumer, (p, MODE, BN, BK, STAGES, GROUP_M, 1, EARLY)),
            (_producer, (p, MODE, BN, BK, STAGES, GROUP_M, 0, EARLY)),
        ],
        [4, 1],
        [232, 40],
    )


class WsConfig(NamedTuple):
    """A tiling of the warp-specialised kernel: the CTA tile is 128 × ``bn`` (two 64-row consumer warpgroups)."""

    bn: int
    stages: int
    group_m: int = 8
    early_scales: bool = True  # block mode: read a K block's activation scales at its MMA issue, not at its retire


# The register budget fixes the tile: per consumer thread, a 64×128 FP32 sum and two 64×128 partial products in
# flight are 192 of its 232 registers, so BN stays 128; the configs differ in ring depth, tile order and (block mode)
# where the activation scales are read.
WS_CONFIGS: dict[str, WsConfig] = {
    "128x128 s5": WsConfig(128, 5),
    "128x128 s4": WsConfig(128, 4),
    "128x128 s5 g16": WsConfig(128, 5, 16),
    "128x128 s4 g16": WsConfig(128, 4, 16),
    "128x128 s5 late scales": WsConfig(128, 5, early_scales=False),
}


# Blockwise products of 65–128 rows: one 128-row tile row, so 128-wide N tiles leave SMs idle (56 tiles at N = 7168);
# 64-wide ones with six slots measured 0.96× cuBLAS at 128×7168×2048 and 1.17× at 128×4096×7168 on an H200, where
# the Triton split-K kernel gave 0.90× and 1.13× (benchmarks/probe_gemm_small_m.py, results/h200_gemm_small_m_ws.md).
# At 64 rows half of each tile is padding, and the Triton kernel stays faster (1.12–1.53×).
SMALL_M = WsConfig(64, 6)

FORCE: WsConfig | None = None  # the benchmarks' override


_TUNED: dict[tuple[Any, ...], WsConfig] = {}


# Block mode reads the activation scales late (main's kernel before the twenty-fourth session) once a CTA's run is this
# many K blocks long (~2 ms at the H100's power cap). Only 16384×7168×16384 of issue 5's shapes is that long (6 950
# blocks per CTA; the next is 2 234), and there the early read lost 6–8 % in each of three H100 runs while it won
# or tied the other nine shapes; yet in one cold, uncapped run under Nsight Compute it was the faster of the two
# there (benchmarks/NOTES.md, twenty-fifth session): what loses is sustained work at the cap, not the K loop.
LONG_RUN = 4096


def _grid(m: int, n: int, bn: int, sms: int) -> tuple[int, int]:
    """``(tiles, programs)``: the 128 × ``bn`` output tiles and the persistent grid, one CTA per SM at most."""
    tiles = -(-m // (2 * _HALF)) * -(-n // bn)
    return tiles, min(sms, tiles)


def default_config(mode: int = 0, m: int = 0, n: int = 0, k: int = 0, sms: int = 132) -> WsConfig:
    """The tiling without tuning: five slots, tiles in groups of 8 rows; in block mode, activation scales read at the
    MMA issue except for runs of :data:`LONG_RUN` K blocks per CTA or more. Over issue 5's large shapes on the H100
    five slots are the best single ring depth; other configs win single shapes by 1-3 %, which tuning finds."""
    if FORCE is not None:
        return FORCE
    tiles, progs = _grid(m, n, 128, sms)
    if mode == 2 and tiles and -(-tiles // progs) * -(-k // 128) >= LONG_RUN:
        return WS_CONFIGS["128x128 s5 late scales"]
    return WS_CONFIGS["128x128 s5"]


def _tuned_config(key: tuple[Any, ...], launch: Any, fallback: WsConfig) -> WsConfig:
    """With ``BRECCIA_TRITON_TUNE=1``: time every config once per shape class (GPU time of a CUDA graph, so the
    identical host cost does not decide) and keep the fastest; otherwise ``fallback`` (the default)."""
    cfg = _TUNED.get(key)
    if cfg is None:
        if os.environ.get("BRECCIA_TRITON_TUNE", "0") != "1" or torch.cuda.is_current_stream_capturing():
            return fallback
        timed = [
            (float(triton.testing.do_bench_cudagraph(lambda c=c: launch(c), rep=20)), c) for c in WS_CONFIGS.values()
        ]
        cfg = _TUNED[key] = min(timed)[1]
    return cfg


_GL = {
    torch.float8_e4m3fn: gl.float8e4nv,
    torch.float8_e5m2: gl.float8e5,
    torch.bfloat16: gl.bfloat16,
    torch.float16: gl.float16,
    torch.float32: gl.float32,
}


@cache
def _layouts(bn: int, a: torch.dtype, b: torch.dtype, c: torch.dtype) -> tuple[Any, ...]:
    """Shared-memory layouts of the A, B, C tiles and the scale run (built once: the launch is on the hot path)."""
    return (
        gl.NVMMASharedLayout.get_default_for([2 * _HALF, 128], _GL[a]),
        gl.NVMMASharedLayout.get_default_for([bn, 128], _GL[b]),
        gl.NVMMASharedLayout.get_default_for([_HALF, bn], _GL[c]),
        gl.NVMMASharedLayout(swizzle_byte_width=0, element_bitwidth=32, rank=1),
    )


def applies(a: torch.Tensor, b: torch.Tensor, out_dtype: torch.dtype) -> bool:
    """sm_90 exactly (wgmma; Blackwell has no wgmma), K-major operands with 16-byte aligned rows."""
    from . import _gemm_tma

    if not (a.is_cuda and b.is_cuda) or torch.cuda.get_device_capability(a.device) != (9, 0):
        return False
    return _gemm_tma.applies(a, b, out_dtype)


def gemm_ws(
    a: torch.Tensor, sa: torch.Tensor, b: torch.Tensor, sb: torch.Tensor, mode: int, c: torch.Tensor,
    config: WsConfig | None = None,
) -> None:  # fmt: skip
    """Launch into ``c``; operands and scales as :func:`._gemm_tma.gemm_tma` takes them. ``config=None``: the
    default, or with ``BRECCIA_TRITON_TUNE=1`` the fastest config for this shape class."""
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    bk = 128
    m, k = a.shape
    n = b.shape[1]
    sa_arg, sb2, strides = scale_operands(sa, sb, mode, m, n)
    if mode == 2:
        # (K/128, M) with M padded to a multiple of 4 (16-byte TMA strides), read as one flat run per K block
        kb = sa_arg.shape[1]
        mp = -(-m // 4) * 4
        if mp == m:
            sat = sa_arg.t().contiguous()
        else:
            sat = torch.zeros((kb, mp), dtype=torch.float32, device=a.device)
            sat[:, :m] = sa_arg.t()
        strides = (0, 0, *strides[2:])  # the kernel reads the activation scales from the TMA ring
    bt = b.t()

    def launch(cfg: WsConfig) -> None:
        a_layout, b_layout, c_layout, sa_layout = _layouts(cfg.bn, a.dtype, b.dtype, c.dtype)
        a_desc = TensorDescriptor(a, list(a.shape), list(a.stride()), [2 * _HALF, bk], a_layout)
        b_desc = TensorDescriptor(bt, list(bt.shape), list(bt.stride()), [cfg.bn, bk], b_layout)
        c_desc = TensorDescriptor(c, list(c.shape), list(c.stride()), [_HALF, cfg.bn], c_layout)
        sa_in = TensorDescriptor(sat, [kb * mp], [1], [2 * _HALF], sa_layout) if mode == 2 else sa_arg
        _tiles, progs = _grid(m, n, cfg.bn, _num_sms(a.device.index or 0))
        _gemm_ws_kernel[(progs,)](
            a_desc, b_desc, c_desc, sa_in, sb2, m, n, k, *strides,
            MODE=mode, BN=cfg.bn, BK=bk, STAGES=cfg.stages, GROUP_M=cfg.group_m, EARLY=cfg.early_scales,
            num_warps=4, maxnreg=168,
        )  # fmt: skip

    if config is None:
        key = (mode, 1 << max(0, (m - 1).bit_length()), n, k, a.dtype, b.dtype, c.dtype, a.device)
        dflt = default_config(mode, m, n, k, _num_sms(a.device.index or 0))
        config = FORCE if FORCE is not None else _tuned_config(key, launch, dflt)
    launch(config)
