"""FP8 scaled GEMM through TMA tensor descriptors on a persistent grid (Hopper and newer).

The same three modes and the same arithmetic as :mod:`._gemm` (per-tensor and rowwise scales applied once after
an accumulation promoted to FP32 every 128 K; 1×128 · 128×128 block scales applied to each 128-K partial product),
but the operand tiles arrive through the tensor memory accelerator: one bulk copy per tile, no per-thread address
arithmetic, zero fill past the tensor's edges (so tails need no masks), and the kernel stays resident on every SM,
walking output tiles in grouped order so consecutive tiles reuse A rows from L2.

TMA needs 16-byte aligned bases and strides (K a multiple of 16 for FP8 operands, N of 8 for a 16-bit output) and
a contiguous inner dimension; :func:`applies` says when the layouts allow it, and :mod:`._gemm` serves the rest.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any, NamedTuple

import torch
import triton
import triton.language as tl

__all__ = ["CONFIGS", "Config", "applies", "gemm_tma", "pick_config", "scale_operands"]


@triton.jit
def _tile_coords(tile, num_pid_m, num_pid_n, GROUP_M: tl.constexpr):
    """Grouped (L2-friendly) order: ``GROUP_M`` row tiles share each column sweep."""
    group = GROUP_M * num_pid_n
    first_m = (tile // group) * GROUP_M
    size_m = tl.minimum(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + (tile % group) % size_m
    pid_n = (tile % group) // size_m
    return pid_m, pid_n


@triton.jit
def _block_scale(sa_ptr, sb_ptr, rows, cols, on, M, N, kb, s_sam, s_sak, s_sbk, s_sbn, BN: tl.constexpr):
    """``sa[m, kb] · sb[kb, n]`` for the tile: activation scales arrive transposed, ``(K/128, M)``, so each K block's
    BM scales are one contiguous load; a tile at most 128 wide lies in one 128-wide weight block (one scalar)."""
    sa = tl.load(sa_ptr + kb * s_sak + rows * s_sam, mask=rows < M, other=0.0)
    if BN <= 128:
        return sa[:, None] * tl.load(sb_ptr + kb * s_sbk + (on // 128) * s_sbn)
    else:
        sb = tl.load(sb_ptr + kb * s_sbk + (cols // 128) * s_sbn, mask=cols < N, other=0.0)
        return sa[:, None] * sb[None, :]


@triton.jit
def _gemm_tma_kernel(
    a_desc, b_desc, c_desc, sa_ptr, sb_ptr,
    M, N, K,
    s_sam, s_sak, s_sbk, s_sbn,
    MODE: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP_M: tl.constexpr,
    NUM_SMS, WS: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BM)
    num_pid_n = tl.cdiv(N, BN)
    k_tiles = tl.cdiv(K, BK)
    num_tiles = num_pid_m * num_pid_n
    for tile in tl.range(pid, num_tiles, NUM_SMS, flatten=True, warp_specialize=WS):
        pid_m, pid_n = _tile_coords(tile, num_pid_m, num_pid_n, GROUP_M)
        om = pid_m * BM
        on = pid_n * BN
        rows = om + tl.arange(0, BM)
        cols = on + tl.arange(0, BN)
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for ki in range(k_tiles):
            a = a_desc.load([om, ki * BK])
            b = b_desc.load([on, ki * BK]).T  # the (N, K) weight's tile, K-major
            if MODE == 2:
                # (fetching the next K block's scales before this MMA was measured 10-18 % slower on an H200)
                s_k = _block_scale(sa_ptr, sb_ptr, rows, cols, on, M, N, ki, s_sam, s_sak, s_sbk, s_sbn, BN)
                acc += tl.dot(a, b, out_dtype=tl.float32) * s_k
            else:
                # promote to FP32 every BK: Hopper's FP8 MMA otherwise keeps ~14-bit sums over the whole K
                acc = tl.dot(a, b, acc, out_dtype=tl.float32, max_num_imprecise_acc=BK)
        if MODE == 0:
            acc = acc * (tl.load(sa_ptr) * tl.load(sb_ptr))
        elif MODE == 1:
            sa = tl.load(sa_ptr + rows * s_sam, mask=rows < M, other=0.0)
            sb = tl.load(sb_ptr + cols * s_sbn, mask=cols < N, other=0.0)
            acc = acc * (sa[:, None] * sb[None, :])
        c_desc.store([om, on], acc.to(c_desc.dtype))


class Config(NamedTuple):
    """One tiling of the persistent kernel. ``occ`` CTAs share each SM: with two single-warpgroup CTAs, one CTA's
    FP32 promotion runs while the other's tensor-core MMAs do, which one CTA alone cannot overlap (its promotion
    must wait for its own MMAs)."""

    bm: int
    bn: int
    warps: int
    stages: int
    group_m: int = 8
    occ: int = 1
    ws: bool = False


# BN 256 does not fit a promoted FP32 accumulator (64×256 spills 72 bytes of stack, 1.9 KB in block mode); BM 64 is
# one warpgroup, for decode-sized M and for two CTAs per SM; BN 64 doubles the tiles where M is small.
CONFIGS: dict[str, Config] = {
    "128x128 w8 s3": Config(128, 128, 8, 3),
    "128x128 w8 s4": Config(128, 128, 8, 4),
    "64x128 w4 s4": Config(64, 128, 4, 4),
    "64x128 w4 s3 occ2": Config(64, 128, 4, 3, occ=2),
    "64x128 w4 s4 occ2": Config(64, 128, 4, 4, occ=2),
    "64x64 w4 s4": Config(64, 64, 4, 4),
    "64x64 w4 s6 occ2": Config(64, 64, 4, 6, occ=2),
}
FORCE: Config | None = None  # the benchmarks' override: every launch uses this config


def pick_config(m: int, n: int, k: int) -> Config | None:
    """The config for a shape class, or None where the pointer kernel is faster (M ≤ 128: too few 128-row tiles to
    fill the SMs). Measured on an H200 (benchmarks/NOTES.md): 128×128 with 8 warps and 4 stages is best or within a
    few percent of best at every large shape of issue 5."""
    if FORCE is not None:
        return FORCE
    if m <= 128:
        return None
    return CONFIGS["128x128 w8 s4"]


_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@cache
def _num_sms(device: int) -> int:
    if _INTERPRET:
        return 4
    return int(torch.cuda.get_device_properties(device).multi_processor_count)


def _aligned(t: torch.Tensor) -> bool:
    return t.data_ptr() % 16 == 0 and all((s * t.element_size()) % 16 == 0 for s in t.stride()[:-1])


def applies(a: torch.Tensor, b: torch.Tensor, out_dtype: torch.dtype) -> bool:
    """Whether TMA descriptors can address these operands: a CUDA device of compute capability ≥ 9 (or CPU tensors
    under the Triton interpreter), row-major ``a``, ``b`` the ``(K, N)`` view of a row-major ``(N, K)`` weight
    (K-major, the only B layout Hopper's FP8 MMA reads), 16-byte aligned rows, and an output row of a multiple of 16
    bytes. A row-major ``(K, N)`` ``b`` takes the pointer kernel."""
    if _INTERPRET:
        if a.is_cuda or b.is_cuda:
            return False
    elif not (a.is_cuda and b.is_cuda) or torch.cuda.get_device_capability(a.device)[0] < 9:
        return False
    n = b.shape[1]
    out_bytes = torch.empty((), dtype=out_dtype).element_size()
    if a.stride(1) != 1 or not _aligned(a) or (n * out_bytes) % 16:
        return False
    return b.stride(0) == 1 and _aligned(b.t())


def scale_operands(sa: torch.Tensor, sb: torch.Tensor, mode: int, m: int, n: int) -> tuple[Any, Any, tuple[int, ...]]:
    """``(sa, sb, (s_sam, s_sak, s_sbk, s_sbn))`` as every GEMM kernel here reads the scales: fp32 scalars
    (tensor), an (M,) and an (N,) vector (row), or the (M, ⌈K/128⌉) and (⌈K/128⌉, ⌈N/128⌉) grids with their strides
    (block). Reshapes only, so applying it to its own output changes nothing (the launchers re-apply it)."""
    if mode == 2:
        sa2, sb2 = sa.reshape(m, -1), sb.reshape(-1, sb.shape[-1])
        return sa2, sb2, (sa2.stride(0), sa2.stride(1), sb2.stride(0), sb2.stride(1))
    if mode == 1:
        sa1, sb1 = sa.reshape(m), sb.reshape(n)
        return sa1, sb1, (sa1.stride(0), 0, 0, sb1.stride(0))
    return sa.reshape(()), sb.reshape(()), (0, 0, 0, 0)


def gemm_tma(
    a: torch.Tensor,
    sa: torch.Tensor,
    b: torch.Tensor,
    sb: torch.Tensor,
    mode: int,
    c: torch.Tensor,
    config: Config,
) -> None:
    """Launch the persistent TMA kernel into ``c``. ``sa``/``sb`` as :func:`._gemm.scaled_gemm` prepares them
    (block mode: ``sa`` is ``(M, K/128)``; it is transposed here so each K block's scales are contiguous)."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    bm, bn, warps, stages, group_m, occ, ws = config
    bk = 128
    m, k = a.shape
    n = b.shape[1]
    a_desc = TensorDescriptor.from_tensor(a, [bm, bk])
    b_desc = TensorDescriptor.from_tensor(b.t(), [bn, bk])
    c_desc = TensorDescriptor.from_tensor(c, [bm, bn])
    sa_arg, sb2, strides = scale_operands(sa, sb, mode, m, n)
    if mode == 2:
        sa_arg = sa_arg.t().contiguous()  # (K/128, M): each K block's BM scales are one contiguous load
        strides = (sa_arg.stride(1), sa_arg.stride(0), *strides[2:])
    tiles = triton.cdiv(m, bm) * triton.cdiv(n, bn)
    progs = min(occ * _num_sms(a.device.index or 0), tiles)
    if _INTERPRET:
        warps, stages = 1, 1
    _gemm_tma_kernel[(progs,)](
        a_desc, b_desc, c_desc, sa_arg, sb2, m, n, k, *strides,
        MODE=mode, BM=bm, BN=bn, BK=bk, GROUP_M=group_m, NUM_SMS=progs, WS=ws,
        num_warps=warps, num_stages=stages,
    )  # fmt: skip
