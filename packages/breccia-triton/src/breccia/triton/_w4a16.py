"""Weight-only 4-bit matmul (W4A16) for decode: bf16/fp16 activations times an INT4 or NVFP4 ScaledTensor.

Decode reads every weight byte once per token and does almost no arithmetic per byte, so the time is the weight
bytes over the memory bandwidth: a 4-bit weight moves a quarter of bf16's bytes. The kernel streams the packed
codes once, dequantizes them in registers and multiplies on the tensor cores (``tl.dot`` in the activation dtype,
FP32 accumulation), with all rows of ``x`` (padded to 16) in each program. What made it fast on an H100 (issue 5's
bench): the weight tile is the MMA's A operand (``outᵀ = W · xᵀ``, so the big tile never has to be re-laid out as
a B operand); whole-tile shapes load without masks (``EVEN``), which lets the byte loads vectorize; and ``q − zp``
is built from float bits and narrowed to bf16 by a shift, not with the quarter-rate conversion instructions.

Exactness of the in-register dequantization (so the only roundings are FP32 accumulation and the output cast):

- INT4: ``q − zp`` is an integer of magnitude ≤ 135, exact in bf16/fp16. The group scale is *not* folded into the
  weight (``(q − zp) · s`` would round in bf16): each K tile lies inside one group (``BK`` divides the group), so
  the scale multiplies the tile's FP32 partial product instead, as the reference's ``Σ_k x·(q − zp)·s`` factors.
- NVFP4: an E2M1 value (2 significant bits) times an E4M3 block scale (4 bits) has ≤ 6 significant bits and lies
  in [2^-10, 2688], so it is exact in bf16 and fp16; the fp32 global scale multiplies the FP32 accumulator.

Split-K without atomics: program ``(n, s, m)`` covers K range ``s`` and writes its FP32 partial to a workspace
``(S, M, N)``; a second small kernel sums the ``S`` partials in a fixed order. Results are deterministic for a
given tile configuration. The tile (``BN``, ``SPLIT``, warps) is tuned on first use per (recipe form, M bucket,
N, K) by timing the whole launch, reduction included, as GPU time (CUDA-graph replay); nothing is probed at
import.

Weight orientation. The contraction axis is the one the blocks run along (DESIGN.md §4): a weight blocked along
axis 0 is breccia.matmul's ``b[K, N]`` (codes packed along N) and gives ``x @ dequantize(w)``; one blocked along
its last axis is an ``nn.Linear``-style ``(N, K)`` weight (codes packed along K) and gives
``x @ dequantize(w).T``. Both are read in place.
"""

from __future__ import annotations

import os
import weakref
from typing import Any, NamedTuple

import torch
import triton
import triton.language as tl

from breccia._errors import DTypeError, ShapeError
from breccia._layouts import PerBlock2D, PerBlockK, PerChannel
from breccia._recipes import INT4Scaling, NVFP4BlockScaling
from breccia._tensor import ScaledTensor

from ._kernel import _decode_e4m3, _from_bits

__all__ = ["w4a16_matmul"]

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
_ACT = (torch.bfloat16, torch.float16)
_OUT = (torch.float32, torch.bfloat16, torch.float16)


@triton.jit
def _e2m1(nib):
    """fp32 value of E2M1 codes (int32 0–15): 0, .5, 1, 1.5, 2, 3, 4, 6, bit 3 the sign."""
    mag = nib & 7
    e = mag >> 1
    m = mag & 1
    v = tl.where(e == 0, m.to(tl.float32) * 0.5, _from_bits(((e + 126) << 23) | (m << 22)))
    return tl.where(nib >= 8, -v, v)


@triton.jit
def _e4m3(code):
    """fp32 value of E4M3 scale bytes (sign and the NaN code 0x7F included, as ``_math.decode_codes``)."""
    mag = code & 0x7F
    v = _decode_e4m3(mag)
    v = tl.where(mag == 0x7F, float("nan"), v)
    return tl.where(code >= 0x80, -v, v)


@triton.jit
def _dot(a, b, F32: tl.constexpr):
    """``a @ b`` with FP32 accumulation. The interpreter (``F32``) multiplies bf16 operands wrongly, so there the
    exact bf16/fp16 values are widened to fp32 first: the same products, exact in both cases."""
    if F32:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), out_dtype=tl.float32, input_precision="ieee")
    return tl.dot(a, b, out_dtype=tl.float32)


@triton.jit
def _to_out(v, o_ptr, F32: tl.constexpr):
    """``v`` in the output dtype, rounded to nearest even. The interpreter truncates fp32 → bf16, so there the
    rounding is done on the bits first (then the conversion is exact), as ``_kernel`` does for bf16 scales."""
    if F32 and o_ptr.dtype.element_ty == tl.bfloat16:
        b = v.to(tl.int32, bitcast=True)
        v = ((b + 0x7FFF + ((b >> 16) & 1)) & -65536).to(tl.float32, bitcast=True)
    return v.to(o_ptr.dtype.element_ty)


@triton.jit
def _int4(nib, z, SIGNED: tl.constexpr, HAS_ZP: tl.constexpr):
    """``q − zp`` as fp32 (exact small integers); ``z`` is the tile's zero-point column (one per weight row).
    Built from the bits (2^23 + u, then one subtraction) rather than with an int→float conversion, which runs at a
    quarter of the ALU rate and would bound the kernel."""
    u = nib
    off = z * 0
    if SIGNED:  # two's complement nibble: q = (nib ^ 8) − 8
        u = nib ^ 8
        off = off + 8
    if HAS_ZP:
        off = off + z
    return _from_bits(u | 0x4B000000) - (off.to(tl.float32) + 8388608.0)[:, None]


@triton.jit
def _narrow(v, dt: tl.constexpr, BITS: tl.constexpr):
    """fp32 ``v``, exactly representable in ``dt``, converted to it. ``BITS`` (bf16 on a GPU): the high half of
    the bits, a shift instead of a conversion instruction; otherwise the plain conversion."""
    if BITS:  # noqa: SIM108  (a constexpr branch: only the taken side is compiled)
        out = (v.to(tl.int32, bitcast=True) >> 16).to(tl.int16).to(tl.bfloat16, bitcast=True)
    else:
        out = v.to(dt)
    return out


@triton.jit
def _nv(nib, sc, COLS: tl.constexpr, R: tl.constexpr, C: tl.constexpr):
    """E2M1 values times their E4M3 block scales: ``sc`` (R × C/COLS) holds one scale per ``COLS`` columns of
    ``nib`` (R × C); the product is broadcast through a reshape rather than gathered per element."""
    v = tl.reshape(_e2m1(nib), (R, C // COLS, COLS)) * _e4m3(sc)[:, :, None]
    return tl.reshape(v, (R, C))


@triton.jit
def _w4a16_kernel(
    x_ptr, w_ptr, s_ptr, zp_ptr, g_ptr, o_ptr,
    M, N, K, K_SPLIT, K_SPLIT_H, GK,
    s_xm, s_xk, s_wr, s_sk, s_sn, s_zk, s_zn, s_os, s_om, s_on,
    KIND: tl.constexpr, SIGNED: tl.constexpr, HAS_ZP: tl.constexpr, HAS_G: tl.constexpr, PACK_K: tl.constexpr,
    GN: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, F32: tl.constexpr,
    BITS: tl.constexpr, EVEN: tl.constexpr,
):  # fmt: skip
    """Computes the transposed tile ``outᵀ[n, m] = Σ_k W[n, k] · x[m, k]``: the big dequantized weight tile is the
    MMA's A operand, which the tensor cores take from registers, and the few rows of ``x`` (padded to ``BM`` ≥ 16)
    are the small B operand. Weight tiles are loaded with each row's bytes contiguous, so the loads vectorize.
    INT4's K tile lies in one group (``k0 // GK``); NVFP4's scales come every 16 along K."""
    pid_n = tl.program_id(0)
    pid_s = tl.program_id(1)
    pid_m = tl.program_id(2)
    DT = x_ptr.dtype.element_ty
    offs_m = pid_m * BM + tl.arange(0, BM)
    m_ok = offs_m < M
    x_col = x_ptr + offs_m[None, :].to(tl.int64) * s_xm
    k_lo = pid_s * K_SPLIT
    n_it = tl.cdiv(tl.minimum(K - k_lo, K_SPLIT), BK)
    offs_kb = tl.arange(0, BK // 16)  # NVFP4 scale columns of a K tile
    if PACK_K:
        # (N, K) weight, bytes [n, k // 2]: the low nibbles are the even k, the high nibbles the odd k
        offs_n = pid_n * BN + tl.arange(0, BN)
        n_ok = offs_n < N
        w_rows = w_ptr + offs_n[:, None].to(tl.int64) * s_wr
        acc = tl.zeros((BN, BM), dtype=tl.float32)
        for it in range(0, n_it):
            k0 = k_lo + it * BK
            h = pid_s * K_SPLIT_H + it * (BK // 2) + tl.arange(0, BK // 2)  # byte index along K
            ke = 2 * h
            ke_ok = ke < K
            ko_ok = ke + 1 < K
            if EVEN:  # N and K are whole tiles: no masks, so nothing stands in the way of vector loads
                byte = tl.load(w_rows + h[None, :]).to(tl.int32)
            else:
                byte = tl.load(w_rows + h[None, :], mask=n_ok[:, None] & ke_ok[None, :], other=0).to(tl.int32)
            if KIND == 0:
                z = offs_n * 0
                if HAS_ZP:
                    z = tl.load(zp_ptr + (k0 // GK) * s_zk + offs_n * s_zn, mask=n_ok, other=0).to(tl.int32)
                w_e = _narrow(_int4(byte & 15, z, SIGNED, HAS_ZP), DT, BITS)
                w_o = _narrow(_int4(byte >> 4, z, SIGNED, HAS_ZP), DT, BITS)
            else:
                kb = k0 // 16 + offs_kb
                sc = tl.load(s_ptr + (offs_n // GN)[:, None] * s_sn + kb[None, :] * s_sk,
                             mask=n_ok[:, None] & (kb * 16 < K)[None, :], other=0).to(tl.int32)  # fmt: skip
                w_e = _narrow(_nv(byte & 15, sc, 8, BN, BK // 2), DT, BITS)
                w_o = _narrow(_nv(byte >> 4, sc, 8, BN, BK // 2), DT, BITS)
            x_e = tl.load(x_col + ke[:, None] * s_xk, mask=ke_ok[:, None] & m_ok[None, :], other=0.0)
            x_o = tl.load(x_col + (ke + 1)[:, None] * s_xk, mask=ko_ok[:, None] & m_ok[None, :], other=0.0)
            part = _dot(w_e, x_e, F32) + _dot(w_o, x_o, F32)
            if KIND == 0:  # the tile lies in one group (BK divides the group): its scale factors out
                s = tl.load(s_ptr + (k0 // GK) * s_sk + offs_n * s_sn, mask=n_ok, other=0.0).to(tl.float32)
                part = part * s[:, None]
            acc += part
        if HAS_G:
            acc = acc * tl.load(g_ptr)
        o = o_ptr + pid_s * s_os + offs_m[None, :].to(tl.int64) * s_om + offs_n[:, None] * s_on
        tl.store(o, _to_out(acc, o_ptr, F32), mask=n_ok[:, None] & m_ok[None, :])
    else:
        # (K, N) weight, bytes [k, n // 2]: the low nibbles are the even n, the high nibbles the odd n. The tile
        # is loaded transposed, (bytes along N) × K, so that each weight row n is a row of the A operand.
        offs_b = pid_n * (BN // 2) + tl.arange(0, BN // 2)  # byte index along N
        ne = 2 * offs_b
        ne_ok = ne < N
        no_ok = ne + 1 < N
        acc_e = tl.zeros((BN // 2, BM), dtype=tl.float32)
        acc_o = tl.zeros((BN // 2, BM), dtype=tl.float32)
        for it in range(0, n_it):
            k0 = k_lo + it * BK
            offs_k = k0 + tl.arange(0, BK)
            k_ok = offs_k < K
            w_tile = w_ptr + k0.to(tl.int64) * s_wr
            w_ptrs = w_tile + offs_b[:, None] + tl.arange(0, BK)[None, :] * s_wr
            if EVEN:
                byte = tl.load(w_ptrs).to(tl.int32)
            else:
                byte = tl.load(w_ptrs, mask=ne_ok[:, None] & k_ok[None, :], other=0).to(tl.int32)
            if KIND == 0:
                z_e = offs_b * 0
                z_o = offs_b * 0
                if HAS_ZP:
                    z_row = zp_ptr + (k0 // GK) * s_zk
                    z_e = tl.load(z_row + ne * s_zn, mask=ne_ok, other=0).to(tl.int32)
                    z_o = tl.load(z_row + (ne + 1) * s_zn, mask=no_ok, other=0).to(tl.int32)
                w_e = _narrow(_int4(byte & 15, z_e, SIGNED, HAS_ZP), DT, BITS)
                w_o = _narrow(_int4(byte >> 4, z_o, SIGNED, HAS_ZP), DT, BITS)
            else:
                kb = k0 // 16 + offs_kb
                kb_ok = (kb * 16 < K)[None, :]
                s_cols = s_ptr + kb[None, :] * s_sk
                sc_e = tl.load(s_cols + (ne // GN)[:, None] * s_sn, mask=ne_ok[:, None] & kb_ok, other=0)
                sc_o = tl.load(s_cols + ((ne + 1) // GN)[:, None] * s_sn, mask=no_ok[:, None] & kb_ok, other=0)
                w_e = _narrow(_nv(byte & 15, sc_e.to(tl.int32), 16, BN // 2, BK), DT, BITS)
                w_o = _narrow(_nv(byte >> 4, sc_o.to(tl.int32), 16, BN // 2, BK), DT, BITS)
            xt = tl.load(x_col + offs_k[:, None] * s_xk, mask=k_ok[:, None] & m_ok[None, :], other=0.0)
            p_e = _dot(w_e, xt, F32)
            p_o = _dot(w_o, xt, F32)
            if KIND == 0:
                s_row = s_ptr + (k0 // GK) * s_sk
                p_e = p_e * tl.load(s_row + ne * s_sn, mask=ne_ok, other=0.0).to(tl.float32)[:, None]
                p_o = p_o * tl.load(s_row + (ne + 1) * s_sn, mask=no_ok, other=0.0).to(tl.float32)[:, None]
            acc_e += p_e
            acc_o += p_o
        if HAS_G:
            g = tl.load(g_ptr)
            acc_e = acc_e * g
            acc_o = acc_o * g
        o = o_ptr + pid_s * s_os + offs_m[None, :].to(tl.int64) * s_om + ne[:, None] * s_on
        tl.store(o, _to_out(acc_e, o_ptr, F32), mask=ne_ok[:, None] & m_ok[None, :])
        tl.store(o + s_on, _to_out(acc_o, o_ptr, F32), mask=no_ok[:, None] & m_ok[None, :])


@triton.jit
def _reduce_kernel(ws_ptr, o_ptr, MN, SPLIT, BLOCK: tl.constexpr, F32: tl.constexpr):
    """``out = Σ_s ws[s]`` over the K splits, in split order (deterministic; no atomics)."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < MN
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for s in range(0, SPLIT):
        acc += tl.load(ws_ptr + s * MN + offs, mask=ok, other=0.0)
    tl.store(o_ptr + offs, _to_out(acc, o_ptr, F32), mask=ok)


class Config(NamedTuple):
    """One tile configuration: rows per program, weight tile ``BN × BK``, K splits, warps and pipeline stages."""

    BM: int
    BN: int
    BK: int
    SPLIT: int
    num_warps: int = 4
    num_stages: int = 3


class _Plan(NamedTuple):
    """What the kernel needs to know about the weight, derived once per ScaledTensor (decode calls the same weight
    every token, and the host-side work is a visible part of a ~20 µs product)."""

    kind: int  # 0 INT4, 1 NVFP4
    pack_k: bool  # True: (N, K) weight packed along K; False: (K, N) packed along N
    n: int
    k: int
    gk: int  # K elements per scale (1 with a zero K stride for per-channel)
    gn: int  # N elements per scale (16 for NVFP4 16×16 tiles)
    bk_max: int  # the largest K tile that keeps the dequantization exact
    data: torch.Tensor  # packed codes, rows contiguous
    scale: torch.Tensor  # NVFP4: the E4M3 bytes as uint8
    zp: torch.Tensor  # the zero point (or any tensor, unread)
    g: torch.Tensor  # the global scale (or any tensor, unread)
    strides: tuple[int, int, int, int, int]  # data row; scale along K groups, along N; zero point likewise
    flags: tuple[bool, bool, bool]  # SIGNED, HAS_ZP, HAS_G


_PLANS: weakref.WeakKeyDictionary[ScaledTensor, _Plan | None] = weakref.WeakKeyDictionary()


def _plan(w: ScaledTensor) -> _Plan | None:
    """The kernel's view of ``w`` (cached per tensor), or None where the kernel does not apply."""
    try:
        return _PLANS[w]
    except KeyError:
        p = _PLANS[w] = _make_plan(w)
        return p


def _make_plan(w: ScaledTensor) -> _Plan | None:
    r, lay = w.recipe, w.layout
    if len(w.shape) != 2 or not isinstance(w.data, torch.Tensor) or w.data.element_size() != 1:
        return None
    if isinstance(r, INT4Scaling):
        if getattr(r, "zero_point_domain", "int") != "int" or not isinstance(lay, (PerBlockK, PerChannel)):
            return None
        kind = 0
    elif isinstance(r, NVFP4BlockScaling) and isinstance(lay, (PerBlockK, PerBlock2D)):
        kind = 1
    else:
        return None
    pack_k = lay.axis % 2 == 1
    k, n = (w.shape[1], w.shape[0]) if pack_k else w.shape
    if w.scale.ndim != 2:
        return None
    gn = lay.block_m if isinstance(lay, PerBlock2D) else 1
    if isinstance(lay, PerChannel):
        gk, bk_max = 1, 128
    else:
        gk = lay.block_k
        bk_max = 128 if kind == 1 else min(128, gk & -gk)  # INT4: the K tile must divide the group
    if bk_max < (32 if pack_k else 16):  # tl.dot needs K ≥ 16 (the (N, K) form splits a tile into even/odd k)
        return None

    def along_k_n(t: torch.Tensor) -> tuple[int, int]:
        sk, sn = (t.stride(1), t.stride(0)) if pack_k else (t.stride(0), t.stride(1))
        return (0 if gk == 1 else sk), sn  # per-channel: one group along K

    data = w.data if w.data.stride(1) == 1 else w.data.contiguous()  # rows read as contiguous bytes
    scale = w.scale.view(torch.uint8) if kind == 1 else w.scale
    zp = w.zero_point if w.zero_point is not None else scale
    g = w.global_scale if w.global_scale is not None else scale
    strides = (data.stride(0), *along_k_n(scale), *(along_k_n(zp) if w.zero_point is not None else (0, 0)))
    flags = (kind == 0 and r.element.signed, w.zero_point is not None, w.global_scale is not None)
    return _Plan(kind, pack_k, n, k, gk, gn, bk_max, data, scale, zp, g, strides, flags)


def _launch(x2: torch.Tensor, p: _Plan, out: torch.Tensor, cfg: Config) -> None:
    m = x2.shape[0]
    nk = triton.cdiv(p.k, cfg.BK)
    split = max(1, min(cfg.SPLIT, nk))
    k_split = triton.cdiv(nk, split) * cfg.BK
    split = triton.cdiv(p.k, k_split)  # every split non-empty
    target = out if split == 1 else torch.empty((split, m, p.n), dtype=torch.float32, device=out.device)
    os_ = 0 if split == 1 else target.stride(0)
    grid = (triton.cdiv(p.n, cfg.BN), split, triton.cdiv(m, cfg.BM))
    _w4a16_kernel[grid](
        x2, p.data, p.scale, p.zp, p.g, target,
        m, p.n, p.k, k_split, k_split // 2, p.gk,
        x2.stride(0), x2.stride(1), *p.strides, os_, out.stride(0), out.stride(1),
        KIND=p.kind, SIGNED=p.flags[0], HAS_ZP=p.flags[1], HAS_G=p.flags[2], PACK_K=p.pack_k, GN=p.gn,
        BM=cfg.BM, BN=cfg.BN, BK=cfg.BK, F32=_INTERPRET, BITS=x2.dtype == torch.bfloat16 and not _INTERPRET,
        EVEN=p.n % cfg.BN == 0 and p.k % cfg.BK == 0, num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )  # fmt: skip
    if split > 1:
        mn = m * p.n
        _reduce_kernel[(triton.cdiv(mn, 1024),)](target, out, mn, split, BLOCK=1024, F32=_INTERPRET)


def _bucket(m: int) -> int:
    return 1 << max(0, (m - 1).bit_length())


def _split_for(m: int, bm: int, bn: int, p: _Plan, nk: int, sms: int) -> int:
    """The smallest power-of-two K split whose programs cover every SM (at most 32, at most one per K tile)."""
    tiles = triton.cdiv(m, bm) * triton.cdiv(p.n, bn)
    s0 = 1
    while tiles * s0 < sms and s0 < min(nk, 32):
        s0 *= 2
    return s0


def _default_config(m: int, p: _Plan, sms: int) -> Config:
    """The tile a shape gets without tuning: what the tuner picked on an H100 for most decode shapes (INT4: BN 128;
    NVFP4: BN 256 for ``(K, N)`` weights, 64 for ``(N, K)``; BK 128, the split that fills the SMs, 3 stages;
    benchmarks/results/triton_w4a16_h100.md). Tuning every new shape on its first call cost seconds per shape
    (``BRECCIA_TRITON_TUNE=1`` still does it)."""
    bm = 16 if m <= 16 else 32 if m <= 32 else 64
    bk = min(p.bk_max, 128)
    bn = 128 if p.kind == 0 else 256 if not p.pack_k else 64  # NVFP4: the H100 tuner's choice per orientation
    warps = 8 if bm == 64 or bn == 256 else 4
    return Config(bm, bn, bk, _split_for(m, bm, bn, p, triton.cdiv(p.k, bk), sms), warps, 3)


def _candidates(m: int, p: _Plan, sms: int) -> list[Config]:
    """A few tiles per M bucket: BN 64/128/256, and the K split that fills the GPU (and twice that)."""
    bm = 16 if m <= 16 else 32 if m <= 32 else 64
    bk = min(p.bk_max, 128)
    nk = triton.cdiv(p.k, bk)
    out = []
    for bn in (64, 128, 256):
        s0 = _split_for(m, bm, bn, p, nk, sms)
        for split in sorted({s0, min(2 * s0, nk)} if m <= 64 else {s0}):
            for stages in (3, 5):
                out.append(Config(bm, bn, bk, split, 8 if bn == 256 or bm == 64 else 4, stages))
    return out


_TUNED: dict[tuple[Any, ...], Config] = {}


def _tuned_config(x2: torch.Tensor, p: _Plan, out: torch.Tensor) -> Config:
    key = (p.kind, p.pack_k, p.gk, p.gn, _bucket(x2.shape[0]), p.n, p.k, x2.dtype, out.dtype, x2.device)
    cfg = _TUNED.get(key)
    if cfg is None:
        sms = torch.cuda.get_device_properties(x2.device).multi_processor_count
        if os.environ.get("BRECCIA_TRITON_TUNE", "0") != "1":
            cfg = _TUNED[key] = _default_config(x2.shape[0], p, sms)
            return cfg
        timed = []
        for c in _candidates(x2.shape[0], p, sms):
            # GPU time only (a CUDA graph of repeated launches): eager timing would measure the host-side launch
            # cost, which is the same for every tile and would make the choice a coin toss
            ms = triton.testing.do_bench_cudagraph(lambda c=c: _launch(x2, p, out, c), rep=20)
            timed.append((float(ms), c))
        cfg = min(timed)[1]
        _TUNED[key] = cfg
    return cfg


def w4a16_matmul(
    x: torch.Tensor, w: ScaledTensor, *, out_dtype: torch.dtype | None = None, config: Config | None = None
) -> torch.Tensor | None:
    """``x[..., K]`` times the 4-bit weight ``w`` contracted along its blocked (K) axis, FP32 accumulation.

    ``x``: bf16/fp16 on the weight's device (CUDA, or CPU under ``TRITON_INTERPRET=1``). ``w``: INT4Scaling
    (groups or per-channel, symmetric or with an integer zero point, fp16/bf16/fp32 scales) or NVFP4BlockScaling
    (1×16 or 16×16, with or without the global scale), either ``(K, N)`` blocked along axis 0 (breccia.matmul's
    ``b``: returns ``x @ dequantize(w)``) or ``(N, K)`` blocked along its last axis (``x @ dequantize(w).T``).
    Returns ``(..., N)`` in ``out_dtype`` (default: ``x.dtype``), or None where the kernel does not apply: other
    recipes, float zero points, INT4 groups not a multiple of 16 (32 for ``(N, K)``), other devices or dtypes.
    ``config`` pins the tile instead of tuning (the interpreter always uses a small pinned tile).
    """
    if not isinstance(x, torch.Tensor) or not isinstance(w, ScaledTensor) or isinstance(x, ScaledTensor):
        return None
    if x.dtype not in _ACT or x.ndim < 1 or not isinstance(w.data, torch.Tensor) or x.device != w.data.device:
        return None
    if not (x.is_cuda or (_INTERPRET and x.device.type == "cpu")):
        return None
    p = _plan(w)
    if p is None:
        return None
    want = x.dtype if out_dtype is None else out_dtype
    if not isinstance(want, torch.dtype) or not want.is_floating_point:
        raise DTypeError(f"w4a16_matmul: out_dtype={out_dtype!r}; expected a torch float dtype (e.g. torch.bfloat16)")
    if x.shape[-1] != p.k:
        raise ShapeError(
            f"w4a16_matmul: x has K={x.shape[-1]} on its last axis but the weight of shape {tuple(w.shape)} "
            f"has K={p.k} along its blocked axis; pass x of shape (..., {p.k})"
        )
    x2 = x.reshape(-1, p.k)
    m = x2.shape[0]
    out = torch.empty((m, p.n), dtype=want if want in _OUT else torch.float32, device=x.device)
    if m and p.n:
        if p.k == 0:
            out.zero_()
        else:
            if config is None and _INTERPRET:
                config = Config(16, 32, min(32, p.bk_max), 2)
            cfg = config if config is not None else _tuned_config(x2, p, out)
            _launch(x2, p, out, cfg._replace(BK=min(cfg.BK, p.bk_max)))
    return out.reshape(*x.shape[:-1], p.n).to(want)
