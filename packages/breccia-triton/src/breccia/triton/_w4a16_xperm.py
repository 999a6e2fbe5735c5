"""x in the order the W4A16 fragment kernel's lanes read it (``XPERM``), written by one small kernel before it.

Why. In :mod:`._w4a16_mma` a thread holds, for its tokens g and g + 8, the 32 consecutive x values of each
128-wide chunk that its lane t of four owns (the K permutation that makes the weight fragments free). Read straight
from x, each 16-byte load of a warp touches 16 cache lines and uses half of every sector it fetches: Nsight Compute
put the M = 16 kernel's L1 at 80 % of its throughput with DRAM at 39 %. Permuted so that, per chunk and 16-byte
column q, the tokens' four lanes' 8 values lie next to each other, one warp's load reads 512 contiguous bytes.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

__all__ = ["permute_x"]

# Programmatic dependent launch (sm_90): the next kernel in the stream, launched with PDL, may start once every CTA of
# this one has run this (the fragment kernel signals it too, and imports it from here).
_GDC_LAUNCH = tl.constexpr("griddepcontrol.launch_dependents; // $0")


@triton.jit
def _xperm_kernel(x_ptr, o_ptr, M, K, s_xm, MT: tl.constexpr, BLOCK: tl.constexpr, PDL: tl.constexpr):
    """``o`` (K/128 chunks × 4 columns × MT tokens × 4 lanes × 8 values) from ``x`` (M × K): 16-byte pieces, BLOCK
    per program; tokens past M repeat token M − 1."""
    if PDL:  # the fragment kernel may start its weight-only prologue now; it waits for this one before reading x
        tl.inline_asm_elementwise(_GDC_LAUNCH, "=r", [], dtype=tl.int32, is_pure=False, pack=1)
    piece = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = piece < (K // 8) * MT
    t = piece % 4
    m = (piece // 4) % MT
    q = (piece // (4 * MT)) % 4
    chunk = piece // (16 * MT)
    src = tl.minimum(m, M - 1).to(tl.int64) * s_xm + chunk * 128 + t * 32 + q * 8
    e = tl.arange(0, 8)
    v = tl.load(x_ptr + src[:, None] + e[None, :], mask=ok[:, None])
    tl.store(o_ptr + piece.to(tl.int64)[:, None] * 8 + e[None, :], v, mask=ok[:, None])


def permute_x(x2: torch.Tensor, mt: int, pdl: bool = False) -> Any:
    """``x2`` (M × K, M ≤ ``mt``, K a multiple of 128, rows contiguous) permuted for ``XPERM`` into a new buffer.
    ``pdl``: the kernel lets the next one (launched with programmatic dependent launch) start at once."""
    m, k = x2.shape
    out = torch.empty((k // 128, 4, mt, 4, 8), dtype=x2.dtype, device=x2.device)
    block = 128
    grid = (triton.cdiv((k // 8) * mt, block),)
    _xperm_kernel[grid](x2, out, m, k, x2.stride(0), MT=mt, BLOCK=block, PDL=pdl, num_warps=4)
    return out
