"""W4A16 tile shapes: the two config types, the defaults measured on an H200, the candidates
``BRECCIA_TRITON_TUNE=1`` times and the fragment kernels' K split (host-side Python only, so the CPU tests check
every rule)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import triton

from ._gemm import _split_buffers

if TYPE_CHECKING:
    from ._w4a16 import _Plan

__all__ = ["Config", "MmaConfig", "split_k"]


class Config(NamedTuple):
    """One tile configuration: rows per program, weight tile ``BN × BK``, K splits, warps and pipeline stages."""

    BM: int
    BN: int
    BK: int
    SPLIT: int
    num_warps: int = 4
    num_stages: int = 3  # the word kernel reads it as how many K steps ahead it loads the weight (at most 3)


class MmaConfig(NamedTuple):
    """A Gluon fragment kernel's shape: warps along K and along N, then for :mod:`._w4a16_mma` (``(N, K)`` weights)
    16-row tiles per N warp and for :mod:`._w4a16_mma_kn` (``(K, N)``) 32-bit words per thread and row (4 tiles each);
    how many steps ahead the weight words are loaded (1 or 2; the ``(K, N)`` kernel always 1), a register cap
    (None: the compiler's choice), and the K ranges the CTAs of a row block split K into (their partials meet in a
    workspace, the last CTA to finish adding them in a fixed order)."""

    WK: int
    WN: int
    RT: int
    AHEAD: int = 1
    maxnreg: int | None = None
    SPLIT: int = 1


def _split_for(m: int, bm: int, bn: int, p: _Plan, nk: int, sms: int) -> int:
    """The smallest power-of-two K split whose programs cover every SM (at most 32, at most one per K tile)."""
    tiles = triton.cdiv(m, bm) * triton.cdiv(p.n, bn)
    s0 = 1
    while tiles * s0 < sms and s0 < min(nk, 32):
        s0 *= 2
    return s0


def _k_ranges(nchunk: int, wk: int, split: int) -> tuple[int, int]:
    """``(chunks per range, ranges)``: ``nchunk`` chunks cut into at most ``split`` ranges of whole steps of the
    ``wk`` K warps (the last may be shorter), none empty."""
    steps = -(-nchunk // wk)
    cps = wk * -(-steps // max(1, min(split, steps)))
    return cps, -(-nchunk // cps)


def _default_mma_config(m: int, p: _Plan, sms: int) -> MmaConfig:
    """The fragment kernel's shape without tuning, from the H200 sweeps (``benchmarks/results/h200_w4a16_*``).

    ``(N, K)`` weights: 8 K warps × 32 rows per CTA capped at 128 registers (two CTAs per SM) for M ≤ 8, or 4 K
    warps with the words two steps ahead where K < 8192 (8 warps would take fewer than 8 steps each, and the CTA's
    fixed start and end then dominate); for M 9–16, whose second x column doubles the x registers, 4 K warps with
    the words one step ahead and a 255-register cap, 64-row CTAs where that still gives 1.5 CTAs per SM. The cap
    is not about spills: left to itself ptxas holds M = 16 at 175 registers by issuing the next step's loads after
    24 of the step's 32 ``HMMA``; at 191–207 it issues them after the first few, and two CTAs still fit an SM (H100,
    8192×8192 INT4: 22.9 → 21.4 µs, NVFP4 24.6 → 23.3; at M ≤ 8 the cap costs a CTA per SM and is slower:
    ``benchmarks/NOTES.md``, twenty-seventh session). Where 32-row CTAs would not give every SM one (N < 32 · SMs):
    16-row CTAs of 8 K warps for M ≤ 8, two K ranges per row block for M > 8 (NVFP4 with its words two ahead).
    ``(K, N)`` weights (``RT`` = words per thread and row, 64 outputs per CTA): 4 K warps where that gives 1.5
    CTAs per SM, else 8; where it gives at most half a CTA per SM (N = 4096), 4 K warps and K split in 2 or 4
    ranges (2 where that makes 1.5 CTAs per SM; more was not measured)."""
    if not p.pack_k:
        ctas = -(-p.n // 64)
        if 2 * ctas <= sms:
            split = 2 if 2 * ctas >= 1.5 * sms else 4
            return MmaConfig(4, 1, 1, SPLIT=split)
        return MmaConfig(4, 1, 1) if ctas >= 1.5 * sms else MmaConfig(8, 1, 1)
    if -(-p.n // 32) < sms:
        return MmaConfig(8, 1, 1, 1, 128) if m <= 8 else MmaConfig(4, 1, 2, 1 if p.kind == 0 else 2, 255, SPLIT=2)
    if m > 8:
        return MmaConfig(4, 1, 4, 1, 255) if p.n // 64 >= 1.5 * sms else MmaConfig(4, 1, 2, 1, 255)
    return MmaConfig(8, 1, 2, 1, 128) if p.k >= 8192 else MmaConfig(4, 1, 2, 2)


def _mma_candidates(m: int, pack_k: bool) -> list[MmaConfig]:
    """The fragment kernels' shapes ``BRECCIA_TRITON_TUNE=1`` times (``pack_k``: the ``(N, K)`` kernel's)."""
    if not pack_k:
        return [MmaConfig(8, 1, 1), MmaConfig(16, 1, 1), MmaConfig(4, 1, 1), MmaConfig(4, 1, 2),
                MmaConfig(4, 1, 1, SPLIT=2), MmaConfig(4, 1, 1, SPLIT=4)]  # fmt: skip
    return [MmaConfig(8, 1, 2, 1, 128), MmaConfig(8, 1, 1, 1, 128), MmaConfig(4, 1, 2, 2), MmaConfig(8, 2, 1, 1, 128),
            MmaConfig(4, 1, 1, 2), MmaConfig(4, 1, 4), MmaConfig(4, 1, 2, 2, SPLIT=2), MmaConfig(4, 1, 2, 1, 255),
            MmaConfig(4, 1, 4, 1, 255), MmaConfig(4, 1, 2, 1, 255, SPLIT=2),
            MmaConfig(4, 1, 2, 2, 255, SPLIT=2)]  # fmt: skip


def _default_config(m: int, p: _Plan, sms: int) -> Config:
    """The tile a shape gets without tuning (``BRECCIA_TRITON_TUNE=1`` tunes instead; that costs seconds per new
    shape). From the H200 sweeps of this kernel (``benchmarks/results/h200_w4a16_sweep*.md``): ``(N, K)`` word
    kernel, INT4 BN 64 × BK 128, NVFP4 BN 128 × BK 64; ``(K, N)`` byte kernel, BN 128 × BK 128, 3 stages; in all,
    twice the K split that gives every SM one program (1 → 2 programs per SM was worth 10–20 %; more was not)."""
    bm = 16 if m <= 16 else 32 if m <= 32 else 64
    bk = min(p.bk_max, 128)
    if p.words is not None:
        bn, bk = (64, bk) if p.kind == 0 else (128, 64)
    else:
        bn = 128 if p.kind == 0 or not p.pack_k else 64
    warps = 8 if bm == 64 else 4
    nk = triton.cdiv(p.k, bk)
    split = min(2 * _split_for(m, bm, bn, p, nk, sms), nk)
    return Config(bm, bn, bk, split, warps, 1 if p.words is not None else 3)


def _candidates(m: int, p: _Plan, sms: int) -> list[Config]:
    """A few tiles per M bucket: BN 64/128/256 (BK 64/128 for the word kernel), the K split that fills the GPU and
    twice that, and the look-ahead depth (word kernel) or pipeline stages (byte kernel)."""
    bm = 16 if m <= 16 else 32 if m <= 32 else 64
    out = []
    for bk in sorted({min(p.bk_max, 128), min(p.bk_max, 64)}) if p.words is not None else [min(p.bk_max, 128)]:
        nk = triton.cdiv(p.k, bk)
        for bn in (64, 128, 256):
            s0 = _split_for(m, bm, bn, p, nk, sms)
            for split in sorted({s0, min(2 * s0, nk)} if m <= 64 else {s0}):
                for stages in (1, 2) if p.words is not None else (3, 5):
                    out.append(Config(bm, bn, bk, split, 8 if bn == 256 or bm == 64 else 4, stages))
    return out


def split_k(nchunk: int, cfg: MmaConfig, m: int, n: int, out: Any) -> tuple[int, int, Any, Any]:
    """``(chunks per CTA, K ranges, workspace, counters)`` for ``cfg``'s split of ``nchunk`` chunks
    (:func:`_k_ranges`); one range needs neither buffer (``out`` stands in for both)."""
    cps, split = _k_ranges(nchunk, cfg.WK, cfg.SPLIT)
    if split == 1:
        return cps, 1, out, out
    ws, cnt = _split_buffers(out.device, split, m, n)  # counters: at least N / 16, one per row block
    return cps, split, ws, cnt
