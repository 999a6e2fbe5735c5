"""The W4A16 kernels (see :mod:`._w4a16` for the host side, the exactness argument and the tile choice): the
split-K dequantize-in-registers matmul, its word-loading form for ``(N, K)`` weights, and the fixed-order reduction
of the partials. The 4-bit decoders live in :mod:`._w4a16_decode`."""

from __future__ import annotations

import triton
import triton.language as tl

from ._w4a16_decode import (
    _asm_bias,
    _asm_scale,
    _int4,
    _int4_asm,
    _narrow,
    _nv,
    _nvfp4_asm,
    _per_element,
    _words_int4,
    _words_nvfp4,
)

__all__ = ["reduce_kernel", "w4a16_kernel", "w4a16_words_kernel"]


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
def _program(M, BM: tl.constexpr):
    """A W4A16 program's place in its ``(N tiles, K splits, M tiles)`` grid: ``(pid_n, pid_s, its rows of x, their
    mask)``."""
    offs_m = tl.program_id(2) * BM + tl.arange(0, BM)
    return tl.program_id(0), tl.program_id(1), offs_m, offs_m < M


@triton.jit
def _finish(acc, g_ptr, KIND: tl.constexpr, HAS_G: tl.constexpr, ASM: tl.constexpr):
    """The FP32 accumulator times what the MMAs left out: the 2^26 the packed NVFP4 decode takes from every weight
    (exact) and the NVFP4 global scale."""
    if ASM and KIND == 1:
        acc = acc * 67108864.0
    if HAS_G:
        acc = acc * tl.load(g_ptr)
    return acc


@triton.jit
def _store_rows(acc, o, rows, rows_ok, m_ok, s_on, F32: tl.constexpr):
    """Stores the transposed tile ``acc`` (weight rows × rows of x) at ``o`` (the program's split and x rows) +
    ``rows · s_on``, in the output dtype."""
    tl.store(o + rows[:, None] * s_on, _to_out(acc, o, F32), mask=rows_ok[:, None] & m_ok[None, :])


@triton.jit
def w4a16_kernel(
    x_ptr, w_ptr, s_ptr, zp_ptr, g_ptr, o_ptr,
    M, N, K, K_SPLIT, K_SPLIT_H, GK,
    s_xm, s_xk, s_wr, s_sk, s_sn, s_zk, s_zn, s_os, s_om, s_on,
    KIND: tl.constexpr, SIGNED: tl.constexpr, HAS_ZP: tl.constexpr, HAS_G: tl.constexpr, PACK_K: tl.constexpr,
    GN: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, F32: tl.constexpr,
    BITS: tl.constexpr, EVEN: tl.constexpr, ASM: tl.constexpr = False,
):  # fmt: skip
    """Computes the transposed tile ``outᵀ[n, m] = Σ_k W[n, k] · x[m, k]``: the big dequantized weight tile is the
    MMA's A operand, which the tensor cores take from registers, and the few rows of ``x`` (padded to ``BM`` ≥ 16)
    are the small B operand. Weight tiles are loaded with each row's bytes contiguous, so the loads vectorize.
    INT4's K tile lies in one group (``k0 // GK``); NVFP4's scales come every 16 along K."""
    pid_n, pid_s, offs_m, m_ok = _program(M, BM)
    DT = x_ptr.dtype.element_ty
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
                byte = tl.load(w_rows + h[None, :])
            else:
                byte = tl.load(w_rows + h[None, :], mask=n_ok[:, None] & ke_ok[None, :], other=0)
            if KIND == 0:
                z = offs_n * 0
                if HAS_ZP:
                    z = tl.load(zp_ptr + (k0 // GK) * s_zk + offs_n * s_zn, mask=n_ok, other=0).to(tl.int32)
                if ASM:
                    bias = _asm_bias(z, DT, SIGNED)[:, None]
                    w_e, w_o = _int4_asm(byte, bias, bias, SIGNED, BITS, True)
                else:
                    w_e = _narrow(_int4(byte.to(tl.int32) & 15, z, SIGNED, HAS_ZP), DT, BITS)
                    w_o = _narrow(_int4(byte.to(tl.int32) >> 4, z, SIGNED, HAS_ZP), DT, BITS)
            else:
                kb = k0 // 16 + offs_kb
                sc = tl.load(s_ptr + (offs_n // GN)[:, None] * s_sn + kb[None, :] * s_sk,
                             mask=n_ok[:, None] & (kb * 16 < K)[None, :], other=0).to(tl.int32)  # fmt: skip
                if ASM:
                    s_full = _per_element(_asm_scale(sc), 8, BN, BK // 2)
                    w_e, w_o = _nvfp4_asm(byte, s_full, s_full, True)
                else:
                    w_e = _narrow(_nv(byte.to(tl.int32) & 15, sc, 8, BN, BK // 2), DT, BITS)
                    w_o = _narrow(_nv(byte.to(tl.int32) >> 4, sc, 8, BN, BK // 2), DT, BITS)
            x_e = tl.load(x_col + ke[:, None] * s_xk, mask=ke_ok[:, None] & m_ok[None, :], other=0.0)
            x_o = tl.load(x_col + (ke + 1)[:, None] * s_xk, mask=ko_ok[:, None] & m_ok[None, :], other=0.0)
            part = _dot(w_e, x_e, F32) + _dot(w_o, x_o, F32)
            if KIND == 0:  # the tile lies in one group (BK divides the group): its scale factors out
                s = tl.load(s_ptr + (k0 // GK) * s_sk + offs_n * s_sn, mask=n_ok, other=0.0).to(tl.float32)
                part = part * s[:, None]
            acc += part
        o = o_ptr + pid_s * s_os + offs_m[None, :].to(tl.int64) * s_om
        _store_rows(_finish(acc, g_ptr, KIND, HAS_G, ASM), o, offs_n, n_ok, m_ok, s_on, F32)
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
            if EVEN:  # noqa: SIM108  (a constexpr branch: only the taken side is compiled)
                byte = tl.load(w_ptrs)
            else:
                byte = tl.load(w_ptrs, mask=ne_ok[:, None] & k_ok[None, :], other=0)
            if KIND == 0:
                z_e = offs_b * 0
                z_o = offs_b * 0
                if HAS_ZP:
                    z_row = zp_ptr + (k0 // GK) * s_zk
                    z_e = tl.load(z_row + ne * s_zn, mask=ne_ok, other=0).to(tl.int32)
                    z_o = tl.load(z_row + (ne + 1) * s_zn, mask=no_ok, other=0).to(tl.int32)
                if ASM:
                    w_e, w_o = _int4_asm(byte, _asm_bias(z_e, DT, SIGNED)[:, None], _asm_bias(z_o, DT, SIGNED)[:, None],
                                         SIGNED, BITS, False)  # fmt: skip
                else:
                    w_e = _narrow(_int4(byte.to(tl.int32) & 15, z_e, SIGNED, HAS_ZP), DT, BITS)
                    w_o = _narrow(_int4(byte.to(tl.int32) >> 4, z_o, SIGNED, HAS_ZP), DT, BITS)
            else:
                kb = k0 // 16 + offs_kb
                kb_ok = (kb * 16 < K)[None, :]
                s_cols = s_ptr + kb[None, :] * s_sk
                sc_e = tl.load(s_cols + (ne // GN)[:, None] * s_sn, mask=ne_ok[:, None] & kb_ok, other=0)
                sc_o = tl.load(s_cols + ((ne + 1) // GN)[:, None] * s_sn, mask=no_ok[:, None] & kb_ok, other=0)
                if ASM:
                    s_e = _per_element(_asm_scale(sc_e.to(tl.int32)), 16, BN // 2, BK)
                    s_o = _per_element(_asm_scale(sc_o.to(tl.int32)), 16, BN // 2, BK)
                    w_e, w_o = _nvfp4_asm(byte, s_e, s_o, False)
                else:
                    w_e = _narrow(_nv(byte.to(tl.int32) & 15, sc_e.to(tl.int32), 16, BN // 2, BK), DT, BITS)
                    w_o = _narrow(_nv(byte.to(tl.int32) >> 4, sc_o.to(tl.int32), 16, BN // 2, BK), DT, BITS)
            xt = tl.load(x_col + offs_k[:, None] * s_xk, mask=k_ok[:, None] & m_ok[None, :], other=0.0)
            p_e = _dot(w_e, xt, F32)
            p_o = _dot(w_o, xt, F32)
            if KIND == 0:
                s_row = s_ptr + (k0 // GK) * s_sk
                p_e = p_e * tl.load(s_row + ne * s_sn, mask=ne_ok, other=0.0).to(tl.float32)[:, None]
                p_o = p_o * tl.load(s_row + (ne + 1) * s_sn, mask=no_ok, other=0.0).to(tl.float32)[:, None]
            acc_e += p_e
            acc_o += p_o
        o = o_ptr + pid_s * s_os + offs_m[None, :].to(tl.int64) * s_om
        _store_rows(_finish(acc_e, g_ptr, KIND, HAS_G, ASM), o, ne, ne_ok, m_ok, s_on, F32)
        _store_rows(_finish(acc_o, g_ptr, KIND, HAS_G, ASM), o + s_on, ne, no_ok, m_ok, s_on, F32)


@triton.jit
def _words_tile(
    x_col, s_ptr, zp_ptr, k0, k_stop, K, GK, s_xk, s_sk, s_sn, s_zk, s_zn, offs_n, n_ok, m_ok,
    KIND: tl.constexpr, HAS_ZP: tl.constexpr, GN: tl.constexpr, BK: tl.constexpr, EVEN: tl.constexpr,
):  # fmt: skip
    """What one K step at ``k0`` reads besides the weight words (:func:`_words_at`), as loads issued together: the
    (BK × BM) tile of ``x`` and the scales (INT4: the group's scale and zero point per row; NVFP4: the E4M3 codes of
    the tile's 16-wide blocks). Zeros past ``k_stop``, so a look-ahead load after a split's last step reads
    nothing."""
    offs_k = k0 + tl.arange(0, BK)
    live = offs_n * 0 + k0 < k_stop  # a vector: the interpreter takes no scalar mask
    ok_x = (offs_k * 0 + k0 < k_stop)[:, None] & m_ok[None, :]
    if not EVEN:
        ok_x = ok_x & (offs_k < K)[:, None]
    xt = tl.load(x_col + offs_k[:, None] * s_xk, mask=ok_x, other=0.0)
    z = offs_n * 0
    if KIND == 0:
        sc = tl.load(s_ptr + (k0 // GK) * s_sk + offs_n * s_sn, mask=n_ok & live, other=0.0).to(tl.float32)[:, None]
        if HAS_ZP:
            z = tl.load(zp_ptr + (k0 // GK) * s_zk + offs_n * s_zn, mask=n_ok & live, other=0).to(tl.int32)
    else:
        kb = k0 // 16 + tl.arange(0, BK // 16)
        sc = tl.load(s_ptr + (offs_n // GN)[:, None] * s_sn + kb[None, :] * s_sk,
                     mask=n_ok[:, None] & (kb * 16 < k_stop)[None, :], other=0).to(tl.int32)  # fmt: skip
    return xt, sc, z


@triton.jit
def _words_at(w_rows, k0, k_stop, K, n_ok, BK: tl.constexpr, EVEN: tl.constexpr):
    """The (rows × BK/8) weight words at ``k0``, zeros past ``k_stop``; on whole tiles the mask is uniform along a
    row, so the loads stay vectorized."""
    offs_w = tl.arange(0, BK // 8)
    ok_w = (k0 + offs_w * 0 < k_stop)[None, :]
    if not EVEN:
        ok_w = ok_w & n_ok[:, None] & (k0 + 8 * offs_w < K)[None, :]
    return tl.load(w_rows + (k0 // 8 + offs_w)[None, :], mask=ok_w, other=0)


@triton.jit
def w4a16_words_kernel(
    x_ptr, w_ptr, s_ptr, zp_ptr, g_ptr, o_ptr,
    M, N, K, K_SPLIT, GK,
    s_xm, s_xk, s_wr, s_sk, s_sn, s_zk, s_zn, s_os, s_om, s_on,
    KIND: tl.constexpr, SIGNED: tl.constexpr, HAS_ZP: tl.constexpr, HAS_G: tl.constexpr, GN: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, F32: tl.constexpr, BITS: tl.constexpr,
    EVEN: tl.constexpr, ASM: tl.constexpr, AHEAD: tl.constexpr = 3,
):  # fmt: skip
    """``outᵀ[n, m] = Σ_k W[n, k] · x[m, k]`` for an ``(N, K)`` weight whose rows are whole 32-bit words (K a
    multiple of 8): ``w_ptr`` is the int32 view, ``s_wr`` its row stride in words. Each program streams its K range
    as (BN × BK/8) word tiles straight into registers and decodes a word into eight codes in K order, so the weight
    tile is the MMA's A operand after one shared-memory pass of the decoded values (``ldmatrix``) and ``x`` is one
    contiguous (BK × BM) tile. Against the byte kernel this removes the per-byte shared-memory reads, the byte
    repacking and the even/odd split of ``x``.

    Latency. The weight words of step i + ``AHEAD`` and the ``x`` tile and scales of step i + 1 are loaded before
    step i is decoded: register buffers. HBM under load answers in ~1–2 µs, and a step of 128 × 64 codes takes a
    few hundred ns, so one step of look-ahead keeps only ~16 KB per SM in flight where ~40 KB are needed to stream
    at 3.4 TB/s (``ncu`` on an H200: warps stalled mostly on global loads, "long scoreboard"). Triton's own
    pipeliner (``num_stages`` > 1, loads staged through shared memory) measured no faster here (H200 run 3)."""
    pid_n, pid_s, offs_m, m_ok = _program(M, BM)
    DT = x_ptr.dtype.element_ty
    offs_n = pid_n * BN + tl.arange(0, BN)
    n_ok = offs_n < N
    k_lo = pid_s * K_SPLIT
    k_stop = tl.minimum(K, k_lo + K_SPLIT)
    n_it = tl.cdiv(k_stop - k_lo, BK)
    w_rows = w_ptr + offs_n[:, None].to(tl.int64) * s_wr
    x_col = x_ptr + offs_m[None, :].to(tl.int64) * s_xm
    xt, sc, z = _words_tile(x_col, s_ptr, zp_ptr, k_lo, k_stop, K, GK, s_xk, s_sk, s_sn, s_zk, s_zn, offs_n, n_ok,
                            m_ok, KIND, HAS_ZP, GN, BK, EVEN)  # fmt: skip
    w0 = _words_at(w_rows, k_lo, k_stop, K, n_ok, BK, EVEN)
    w1 = w0
    w2 = w0
    if AHEAD >= 2:  # the words of the next AHEAD − 1 steps are in flight before the loop starts
        w1 = _words_at(w_rows, k_lo + BK, k_stop, K, n_ok, BK, EVEN)
    if AHEAD >= 3:
        w2 = _words_at(w_rows, k_lo + 2 * BK, k_stop, K, n_ok, BK, EVEN)
    acc = tl.zeros((BN, BM), dtype=tl.float32)
    for it in range(0, n_it):
        k0 = k_lo + it * BK
        wn = _words_at(w_rows, k0 + AHEAD * BK, k_stop, K, n_ok, BK, EVEN)
        xt2, sc2, z2 = _words_tile(x_col, s_ptr, zp_ptr, k0 + BK, k_stop, K, GK, s_xk, s_sk, s_sn, s_zk, s_zn,
                                   offs_n, n_ok, m_ok, KIND, HAS_ZP, GN, BK, EVEN)  # fmt: skip
        if KIND == 0:
            part = _dot(_words_int4(w0, z, DT, SIGNED, HAS_ZP, ASM, BITS, BN, BK), xt, F32)
            part = part * sc  # the tile lies in one group (BK divides the group): its scale factors out
        else:
            part = _dot(_words_nvfp4(w0, sc, DT, ASM, BITS, BN, BK), xt, F32)
        acc += part
        xt, sc, z = xt2, sc2, z2
        if AHEAD == 1:
            w0 = wn
        elif AHEAD == 2:
            w0, w1 = w1, wn
        else:
            w0, w1, w2 = w1, w2, wn
    o = o_ptr + pid_s * s_os + offs_m[None, :].to(tl.int64) * s_om
    _store_rows(_finish(acc, g_ptr, KIND, HAS_G, ASM), o, offs_n, n_ok, m_ok, s_on, F32)


@triton.jit
def reduce_kernel(ws_ptr, o_ptr, MN, SPLIT: tl.constexpr, BLOCK: tl.constexpr, F32: tl.constexpr):
    """``out = Σ_s ws[s]`` over the K splits, in split order (deterministic; no atomics). ``SPLIT`` is a constant,
    so the loop unrolls and every split's load is in flight at once (a runtime loop waited for each in turn:
    ``ncu`` showed this kernel ~20 cycles per instruction on global-load waits, 3–6 µs of a ~30 µs product)."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < MN
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for s in tl.static_range(SPLIT):
        acc += tl.load(ws_ptr + s * MN + offs, mask=ok, other=0.0)
    tl.store(o_ptr + offs, _to_out(acc, o_ptr, F32), mask=ok)
