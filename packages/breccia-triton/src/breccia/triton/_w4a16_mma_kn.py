"""W4A16 decode kernel in Gluon for ``(K, N)`` weights (breccia.matmul's ``b``, codes packed along N): 4-bit words
decoded straight into ``mma.sync`` fragments, as :mod:`._w4a16_mma` does for ``(N, K)`` weights.

The weight is the MMA's A operand (``outᵀ = Wᵀ · xᵀ``: rows are output features n, the contraction is k). An
``m16n8k16`` thread holds rows g and g + 8 of each 16-row tile and the k pairs (2t, 2t+1), (2t+8, 2t+9) of each
16-wide step (g = lane / 4, t = lane % 4). Here a 32-bit word holds eight codes of *one* k along n, so both axes are
permuted, each consistently with its partner: the output n through the store addresses, k in x as well.

- **k.** In each 64-row chunk, thread t owns the 16 consecutive rows ``16t … 16t+15`` (one NVFP4 block): logical
  ``k = 16s + 8h + 2t + e`` is read from physical row ``16t + 4s + 2h + e``. x follows: 16 consecutive values per
  thread and token.
- **n.** Thread g loads ``W`` words of each of its rows: the ``8W`` consecutive outputs ``8W·g + i``, which are its
  rows g or g + 8 of ``4W`` tiles (logical row ``16·(i >> 1) + 8·(i & 1) + g``).
- **Decode.** Rows 2r and 2r + 1 give the register pair: ``prmt`` puts byte i/2 of the two words into the two halves,
  then the INT4 magic-number OR and bias add, or the NVFP4 bit placement and scale multiply, as in
  :mod:`._w4a16_decode`. NVFP4's per-output block scale enters as one bf16x2 register per output. INT4 zero
  points would need the same; they are not supported here (the Triton byte kernel takes them).
- **Scales.** INT4 groups (``GK`` a multiple of 64, or per channel) multiply each chunk's FP32 partial per row; NVFP4
  block scales are folded into the decoded weights (exact, see :mod:`._w4a16`), and the 2^26 and the global scale
  multiply the sum.

K warps take alternate chunks (a batched MMA, warps on the batch axis) and meet once in shared memory at the end.
A CTA owns 64 outputs per word per thread, so N = 4096 gives only 64 CTAs: there the default splits K in 4 ranges
per CTA column (:func:`._w4a16_mma._store_out`). On the H200 NVFP4 runs at 1.48–1.63× bf16 cuBLAS at M = 1 (0.98× at
N = 4096 before the split; the byte kernel: 0.79–0.87×). INT4 measured no better than the byte kernel and stays
there by default (``benchmarks/NOTES.md``).
"""

from __future__ import annotations

from typing import Any

import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.ampere import mma_v2

from ._w4a16_mma import _grid3, _k_range, _klog, _store_out, _x_layout
from ._w4a16_tiles import split_k

__all__ = ["w4a16_mma_kn_kernel"]


# Decode of two words (rows 2r, 2r + 1; $16, $17) into eight registers, register i = (code i of row 2r, code i of row
# 2r + 1), i.e. the (k, k + 1) pair of output n = 8w + i. NVFP4: $18 + i is that n's ``{scale, scale} · 2^100``.
def _pair(i: int) -> str:
    src = ("$16", "$17") if i % 2 == 0 else ("a4", "b4")
    b = i // 2
    return f"prmt.b32 t, {src[0]}, {src[1]}, 0x{4 + b}{4 + b}{b}{b};\n"


def _out(i: int) -> str:
    return f"mov.b32 {{${2 * i}, ${2 * i + 1}}}, t;\n"


_INT4_KN_PTX = (
    "{\n.reg .b32 a4, b4, t, c;\nmov.b32 c, BIAS;\nshr.u32 a4, $16, 4;\nshr.u32 b4, $17, 4;\n"
    + "".join(_pair(i) + "lop3.b32 t, t, 0x000F000F, MAGIC, 0x6A;\nadd.rn.TY t, t, c;\n" + _out(i) for i in range(8))
    + "}"
)
_NVFP4_KN_PTX = gl.constexpr(
    "{\n.reg .b32 a4, b4, t, u, v;\nshr.u32 a4, $16, 4;\nshr.u32 b4, $17, 4;\n"
    + "".join(
        _pair(i) + "shl.b32 u, t, 6;\nshl.b32 v, t, 12;\nlop3.b32 t, u, 0x01C001C0, 0, 0xC0;\n"
        f"lop3.b32 t, v, 0x80008000, t, 0xEA;\nmul.rn.bf16x2 t, t, ${18 + i};\n" + _out(i)
        for i in range(8)
    )
    + "}"
)
# Four E4M3 scale bytes of consecutive outputs ($4) to four ``{scale, scale} · 2^100`` bf16x2 registers (exact, as
# :mod:`._w4a16_mma`'s: the sm_89 conversion to f16x2, widening, a power-of-two multiply, one packing conversion).
_SCALES4_PTX = gl.constexpr(
    "{\n.reg .b32 h;\n.reg .b16 l, u, p, q;\n.reg .f32 a;\nmov.b32 {p, q}, $4;\n"
    + "".join(
        f"cvt.rn.f16x2.e4m3x2 h, {half};\nmov.b32 {{l, u}}, h;\n"
        + "".join(
            f"cvt.f32.f16 a, {part};\nmul.f32 a, a, 0f71800000;\ncvt.rn.bf16x2.f32 ${2 * j + k}, a, a;\n"
            for k, part in enumerate(("l", "u"))
        )
        for j, half in enumerate(("p", "q"))
    )
    + "}"
)


@triton.constexpr_function
def _int4_kn_ptx(bf16: bool, signed: bool, ptx: str = _INT4_KN_PTX) -> str:
    """The INT4 decode for an activation dtype and signedness: magic number M (bf16 128, fp16 1024; XOR 8 for two's
    complement) and the constant bias −(M + 8·signed), both halves."""
    magic = ("0x4308" if signed else "0x4300") if bf16 else ("0x6408" if signed else "0x6400")
    bias = ("0xC308" if signed else "0xC300") if bf16 else ("0xE408" if signed else "0xE400")
    ptx = ptx.replace("MAGIC", magic + magic[2:]).replace("BIAS", bias + bias[2:])
    return ptx.replace("TY", "bf16x2" if bf16 else "f16x2")


@gluon.jit
def _grid4(L: gl.constexpr, A: gl.constexpr, B: gl.constexpr, C: gl.constexpr, D: gl.constexpr):
    """Index tensors of shapes [A,1,1,1] … [1,1,1,D] in the slices of the 4-D layout ``L``."""
    a = gl.arange(0, A, layout=gl.SliceLayout(1, gl.SliceLayout(2, gl.SliceLayout(3, L))))
    b = gl.arange(0, B, layout=gl.SliceLayout(0, gl.SliceLayout(2, gl.SliceLayout(3, L))))
    c = gl.arange(0, C, layout=gl.SliceLayout(0, gl.SliceLayout(1, gl.SliceLayout(3, L))))
    d = gl.arange(0, D, layout=gl.SliceLayout(0, gl.SliceLayout(1, gl.SliceLayout(2, L))))
    a = gl.expand_dims(gl.expand_dims(gl.expand_dims(a, 1), 2), 3)
    b = gl.expand_dims(gl.expand_dims(gl.expand_dims(b, 0), 2), 3)
    c = gl.expand_dims(gl.expand_dims(gl.expand_dims(c, 0), 1), 3)
    d = gl.expand_dims(gl.expand_dims(gl.expand_dims(d, 0), 1), 2)
    return a, b, c, d


@gluon.jit
def _n_of_row(r, W: gl.constexpr):
    """The physical output (within the CTA) of logical row ``r``: row ``64W·wn + 16·(4j + (i >> 1)) + 8·(i & 1) + g``
    holds output ``64W·wn + 8W·g + 8j + i``."""
    wn = r // (64 * W)
    q = r % (64 * W)
    ii = (q // 16) * 2 + (q % 16) // 8
    return wn * (64 * W) + (q % 8) * (8 * W) + ii


@gluon.jit
def _loads(it, w_ptr, x_ptr, s_ptr, w_off, b4, w_ok, x_off, x_b, x_mok, f_off, f_b, f_okn, s_off, s_b, c0, nchunk,
           s_wk, s_sk, KIND: gl.constexpr, GK: gl.constexpr, WK: gl.constexpr):  # fmt: skip
    """Loop step ``it``'s loads (K warp ``b`` takes chunk ``c0 + it·WK + b``; from ``nchunk`` on, masked): the
    words of rows 2r and 2r + 1, x, and the scales: INT4 the group scale of each row (in the accumulator's row
    layout), NVFP4 the block-scale words of lane t's block (``4·chunk + t``), four outputs' E4M3 bytes each."""
    c4 = c0 + it * WK + b4
    ok = (c4 < nchunk) & w_ok
    wa = gl.load(w_ptr + w_off + c4.to(gl.int64) * (64 * s_wk), mask=ok, other=0, eviction_policy="evict_first")
    wb = gl.load(w_ptr + w_off + s_wk + c4.to(gl.int64) * (64 * s_wk), mask=ok, other=0, eviction_policy="evict_first")
    cx = c0 + it * WK + x_b
    xt = gl.load(x_ptr + x_off + cx * 64, mask=(cx < nchunk) & x_mok, other=0.0)
    f0 = wa
    f1 = wa
    if KIND == 1:
        cf = c0 + it * WK + f_b
        fok = (cf < nchunk) & f_okn
        f0 = gl.load(s_ptr + f_off + cf * (4 * s_sk), mask=fok, other=0)
        f1 = gl.load(s_ptr + f_off + 1 + cf * (4 * s_sk), mask=fok, other=0)
        sc = f0
    else:
        cs = c0 + it * WK + s_b
        sc = gl.load(s_ptr + s_off + ((cs * 64) // GK) * s_sk, mask=cs < nchunk, other=0.0)
    return wa, wb, xt, f0, f1, sc


@gluon.jit
def w4a16_mma_kn_kernel(
    x_ptr, w_ptr, s_ptr, g_ptr, o_ptr, ws_ptr, cnt_ptr,
    M, N, K, cps, s_xm, s_wk, s_sk, s_sn, s_om, s_on,
    KIND: gl.constexpr, SIGNED: gl.constexpr, HAS_G: gl.constexpr, GK: gl.constexpr,
    WK: gl.constexpr, WN: gl.constexpr, W: gl.constexpr, MT: gl.constexpr, SPLIT: gl.constexpr,
):  # fmt: skip
    """``out[m, n] = Σ_k x[m, k] · W[k, n]`` for M ≤ ``MT`` and a ``(K, N)`` 4-bit weight read as int32 words
    (``w_ptr``, ``s_wk`` words per row; N a multiple of 8, K of 64). KIND 0: INT4 without zero point (``GK`` a
    multiple of 64, or 1 with ``s_sk = 0`` per channel; ``s_ptr`` the scales); 1: NVFP4 1×16 (``s_ptr`` the E4M3
    scales as int32 words of four, ``s_sk`` their row stride in words). Grid: one CTA per ``64·W·WN`` outputs and
    K range of ``cps`` chunks (``SPLIT`` ranges, as in :func:`._w4a16_mma._store_out`)."""
    BN: gl.constexpr = 64 * W * WN
    NW: gl.constexpr = 8 * W * WN
    DT: gl.constexpr = x_ptr.dtype.element_ty
    BF16: gl.constexpr = gl.bfloat16 == DT
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[2, 0], warps_per_cta=[WK, WN, 1], instr_shape=[1, 16, 8])
    L4: gl.constexpr = gl.BlockedLayout([1, 1, 8, W], [1, 4, 1, 8], [WK, 1, 1, WN], [1, 3, 2, 0])
    LX: gl.constexpr = _x_layout(WK, WN, MT, 16)
    SL: gl.constexpr = gl.SliceLayout(2, mma)
    n0 = gl.program_id(0) * BN
    c0, nchunk = _k_range(K, cps, 64, SPLIT)
    b4, t4, q4, w4 = _grid4(L4, WK, 4, 8, NW)  # K warp, lane t, row pair q = 2s + h, word column
    w_ok = n0 // 8 + w4 < N // 8
    w_off = (t4 * 16 + q4 * 2).to(gl.int64) * s_wk + n0 // 8 + w4
    f_b, f_t, f_q, f_w = _grid4(L4, WK, 4, 1, NW)
    f_off = f_t * s_sk + (n0 // 8 + f_w) * 2 + f_q
    f_okn = n0 // 8 + f_w < N // 8
    x_b, x_m, x_c = _grid3(LX, WK, MT, 64)
    x_off = x_m * s_xm + x_c
    x_mok = x_m < M
    s_b = gl.expand_dims(gl.arange(0, WK, layout=gl.SliceLayout(1, SL)), 1)
    s_n = n0 + _n_of_row(gl.expand_dims(gl.arange(0, BN, layout=gl.SliceLayout(0, SL)), 0), W)
    s_off = gl.minimum(s_n, N - 1) * s_sn

    acc = gl.zeros([WK, BN, MT], gl.float32, mma)
    wa, wb, xt, f0, f1, sc = _loads(0, w_ptr, x_ptr, s_ptr, w_off, b4, w_ok, x_off, x_b, x_mok, f_off, f_b, f_okn,
                                    s_off, s_b, c0, nchunk, s_wk, s_sk, KIND, GK, WK)  # fmt: skip
    for it in range(gl.cdiv(nchunk - c0, WK)):
        # the next step's words, x and scales are in flight during this step (a register double buffer)
        wa2, wb2, xt2, f02, f12, sc2 = _loads(it + 1, w_ptr, x_ptr, s_ptr, w_off, b4, w_ok, x_off, x_b, x_mok, f_off,
                                              f_b, f_okn, s_off, s_b, c0, nchunk, s_wk, s_sk, KIND, GK, WK)  # fmt: skip
        if KIND == 0:
            o = gl.inline_asm_elementwise(_int4_kn_ptx(BF16, SIGNED), "=h," * 16 + "r,r", [wa, wb],
                                          dtype=(xt.dtype,) * 16, is_pure=True, pack=1)  # fmt: skip
        else:
            m0, m1, m2, m3 = gl.inline_asm_elementwise(_SCALES4_PTX, "=r,=r,=r,=r,r", [f0], dtype=(gl.int32,) * 4,
                                                       is_pure=True, pack=1)  # fmt: skip
            m4, m5, m6, m7 = gl.inline_asm_elementwise(_SCALES4_PTX, "=r,=r,=r,=r,r", [f1], dtype=(gl.int32,) * 4,
                                                       is_pure=True, pack=1)  # fmt: skip
            o = gl.inline_asm_elementwise(_NVFP4_KN_PTX, "=h," * 16 + "r,r,r,r,r,r,r,r,r,r",
                                          [wa, wb, m0, m1, m2, m3, m4, m5, m6, m7], dtype=(xt.dtype,) * 16,
                                          is_pure=True, pack=1)  # fmt: skip
        p0 = gl.join(o[0], o[1])
        p1 = gl.join(o[2], o[3])
        p2 = gl.join(o[4], o[5])
        p3 = gl.join(o[6], o[7])
        p4 = gl.join(o[8], o[9])
        p5 = gl.join(o[10], o[11])
        p6 = gl.join(o[12], o[13])
        p7 = gl.join(o[14], o[15])
        tt = gl.join(gl.join(gl.join(p0, p4), gl.join(p2, p6)), gl.join(gl.join(p1, p5), gl.join(p3, p7)))
        # dims: (WK, t, q = 2s + h, w = (wn·8 + g)·W + j, e, i2, i1, i0)
        tt = gl.reshape(tt, [WK, 4, 4, 2, WN, 8, W, 2, 2, 2, 2])
        tt = gl.permute(tt, [0, 4, 6, 8, 9, 10, 5, 2, 3, 1, 7])
        a = gl.convert_layout(gl.reshape(tt, [WK, BN, 64]), gl.DotOperandLayout(0, mma, 2), assert_trivial=True)
        b = gl.convert_layout(gl.permute(_klog(xt, MT, 4), [0, 2, 1]), gl.DotOperandLayout(1, mma, 2),
                              assert_trivial=True)  # fmt: skip
        if KIND == 0:  # the chunk lies in one group: its scale multiplies the chunk's FP32 partial
            acc += mma_v2(a, b, gl.zeros([WK, BN, MT], gl.float32, mma)) * gl.expand_dims(sc.to(gl.float32), 2)
        else:
            acc = mma_v2(a, b, acc)
        wa, wb, xt, f0, f1, sc = wa2, wb2, xt2, f02, f12, sc2
    tot = gl.sum(acc, axis=0)
    if KIND == 1:
        tot = tot * 67108864.0  # the 2^26 the NVFP4 bit placement takes from every weight
    if HAS_G:
        tot = tot * gl.load(g_ptr)
    OL: gl.constexpr = gl.SliceLayout(0, mma)
    o_n = gl.expand_dims(n0 + _n_of_row(gl.arange(0, BN, layout=gl.SliceLayout(1, OL)), W), 1)
    o_m = gl.expand_dims(gl.arange(0, MT, layout=gl.SliceLayout(0, OL)), 0)
    _store_out(tot, o_n, o_m, o_ptr, ws_ptr, cnt_ptr, M, N, s_om, s_on, SPLIT)


def launch(x2: Any, p: Any, out: Any, cfg: Any) -> None:
    """Runs the kernel for ``x2`` (M ≤ 16 rows, contiguous), the ``(K, N)`` weight plan ``p`` of :mod:`._w4a16` and
    its ``MmaConfig`` (``RT`` read as the words per thread and row) into ``out`` (M × N)."""
    m = x2.shape[0]
    bn = 64 * cfg.RT * cfg.WN
    if p.kind == 1:
        scale, s_sk, s_sn = p.kn_scale32, p.kn_scale32.stride(0), 1
    else:
        scale, (s_sk, s_sn) = p.scale, p.strides[1:3]
    grid_n = -(-p.n // bn)
    cps, split, ws, cnt = split_k(p.k // 64, cfg, m, p.n, out)
    w4a16_mma_kn_kernel[(grid_n, split)](
        x2, p.kn_words, scale, p.g, out, ws, cnt,
        m, p.n, p.k, cps, x2.stride(0), p.kn_words.stride(0), s_sk, s_sn, out.stride(0), out.stride(1),
        KIND=p.kind, SIGNED=p.flags[0], HAS_G=p.flags[2], GK=p.gk,
        WK=cfg.WK, WN=cfg.WN, W=cfg.RT, MT=8 if m <= 8 else 16, SPLIT=split,
        num_warps=cfg.WK * cfg.WN, maxnreg=cfg.maxnreg,
    )  # fmt: skip
