"""The W4A16 kernels (see :mod:`._w4a16` for the host side, the exactness argument and the tile choice): the
split-K dequantize-in-registers matmul and the fixed-order reduction of its partials."""

from __future__ import annotations

import triton
import triton.language as tl

from ._kernel import _decode_e4m3, _from_bits

__all__ = ["reduce_kernel", "w4a16_kernel"]


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
def w4a16_kernel(
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
def reduce_kernel(ws_ptr, o_ptr, MN, SPLIT, BLOCK: tl.constexpr, F32: tl.constexpr):
    """``out = Σ_s ws[s]`` over the K splits, in split order (deterministic; no atomics)."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < MN
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for s in range(0, SPLIT):
        acc += tl.load(ws_ptr + s * MN + offs, mask=ok, other=0.0)
    tl.store(o_ptr + offs, _to_out(acc, o_ptr, F32), mask=ok)
