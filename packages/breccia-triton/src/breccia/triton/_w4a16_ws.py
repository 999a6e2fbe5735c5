"""W4A16 fragment kernel fed by a TMA producer warp (Gluon, Hopper sm_90 only).

Why a third ``(N, K)`` kernel. :mod:`._w4a16_mma` loads each thread's weight words one step ahead into registers,
so each warp has one or two 2 KB requests in flight and the register file caps how far ahead it can read: a bare
read of the same bytes takes 9.2 µs with many small CTAs but 12.2 µs with that kernel's 264 long ones on an H200
(``benchmarks/NOTES.md``). Here one **producer** warp keeps a ring of ``STAGES`` shared-memory slots full with TMA
copies of the weight words (``WK`` boxes of ``BN`` rows × one 128-code chunk per slot), so the bytes in flight cost
no registers and start before the first decode; the **consumer** warps (the kernel's ``WK · WN`` warps) wait on a
slot's ``ready`` mbarrier, read their own fragments from it (each thread its 16 bytes per row and chunk, rows 64
bytes apart: conflict-free ``LDS.128``), arrive on its ``empty`` mbarrier and decode into ``mma.sync`` fragments as
:mod:`._w4a16_mma` does (same permutation of K, same packed PTX, same FP32 order within a warp). No CTA barrier in
the loop: the two partitions meet only at mbarriers.

The arithmetic is :mod:`._w4a16_mma`'s step for step (same chunks per K warp, same MMA order, same final sum), so
the two kernels give bitwise the same output for the same ``WK``, and the tests check both against the reference.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.ampere import mma_v2
from triton.experimental.gluon.language.nvidia.hopper import mbarrier, tma

from ._w4a16_decode import _word_ptx
from ._w4a16_mma import (
    _E4M3X2_PTX,
    _NVFP4_SPLIT_PTX,
    _grid3,
    _klog,
    _rows_layout,
    _split_pairs,
    _x_layout,
    _xload,
)

__all__ = ["WsConfig", "applies", "launch", "w4a16_ws_kernel"]


class WsConfig(NamedTuple):
    """The producer-fed kernel's shape: consumer warps (one per K chunk of a step), 16-row tiles per CTA tile, ring
    slots, persistent CTAs per SM, and a register cap (None: the compiler's)."""

    WK: int
    RT: int
    STAGES: int
    CTAS: int = 1
    maxnreg: int | None = None

_LAYOUT = gl.NVMMASharedLayout(swizzle_byte_width=0, element_bitwidth=32, rank=2)


@gluon.jit
def _producer(p, KIND: gl.constexpr, SIGNED: gl.constexpr, HAS_ZP: gl.constexpr, HAS_G: gl.constexpr,
              GK: gl.constexpr, GN: gl.constexpr, WK: gl.constexpr, BN: gl.constexpr, MT: gl.constexpr,
              STAGES: gl.constexpr):  # fmt: skip
    """One warp: the weight words of every step of every tile of this CTA into the slot ring, ``WK`` boxes per slot
    (chunk ``it·WK + b`` of the tile into rows ``b·BN …`` of the slot; chunks past K arrive as zeros, and the
    consumers' x for them is zero). It runs ahead into the next tile while the consumers finish the last."""
    w_desc, bufs, ready, empty, N, K = p
    steps = gl.cdiv(K // 128, WK)
    it = 0
    for tile in range(gl.program_id(0), gl.cdiv(N, BN), gl.num_programs(0)):
        for step in range(steps):
            s = it % STAGES
            mbarrier.wait(empty.index(s), ((it // STAGES) & 1) ^ 1)
            mbarrier.expect(ready.index(s), WK * w_desc.block_type.nbytes)
            for b in gl.static_range(WK):
                tma.async_copy_global_to_shared(w_desc, [tile * BN, (step * WK + b) * 16], ready.index(s),
                                                bufs.index(s).slice(b * BN, BN))  # fmt: skip
            it += 1


@gluon.jit
def _zload(step, row0, s_ptr, zp_ptr, w_b, w_r, f_b, f_r, f_c, N, s_sk, s_sn, s_zk, s_zn, nchunk, KIND: gl.constexpr,
           HAS_ZP: gl.constexpr, GK: gl.constexpr, GN: gl.constexpr, WK: gl.constexpr):  # fmt: skip
    """Step ``step``'s per-word decode input for the tile at ``row0`` (:func:`._w4a16_mma._wload` without the
    words): INT4 the zero point in the words' layout, NVFP4 the E4M3 bytes (two blocks per thread and row); INT4
    without a zero point, nothing."""
    if KIND == 0:
        if HAS_ZP:
            c = step * WK + w_b
            z_off = gl.minimum(row0 + w_r, N - 1) * s_zn
            z = gl.load(zp_ptr + z_off + ((c * 128) // GK) * s_zk, mask=(c < nchunk) & (row0 + w_r < N), other=0)
        else:
            z = step  # unread
    else:
        cf = step * WK + f_b
        f_off = (gl.minimum(row0 + f_r, N - 1) // GN) * s_sn + f_c * s_sk
        z = gl.load(s_ptr + f_off + cf * 8 * s_sk, mask=cf < nchunk, other=0)
    return z


@gluon.jit
def _consumer(p, KIND: gl.constexpr, SIGNED: gl.constexpr, HAS_ZP: gl.constexpr, HAS_G: gl.constexpr,
              GK: gl.constexpr, GN: gl.constexpr, WK: gl.constexpr, BN: gl.constexpr, MT: gl.constexpr,
              STAGES: gl.constexpr):  # fmt: skip
    """The kernel's warps, one flat loop over (tile, step) so the next step's x and scales are in flight across
    tile ends: wait for a slot, read the words, free the slot, decode and multiply (as
    :func:`._w4a16_mma.w4a16_mma_kernel`); at a tile's last step the cross-warp sum and the store."""
    _w_desc, bufs, ready, empty, N, K = p[:6]
    x_ptr, s_ptr, zp_ptr, g_ptr, o_ptr, M, strides = p[6:]
    s_xm, s_sk, s_sn, s_zk, s_zn, s_om, s_on = strides
    WN: gl.constexpr = 1
    RT: gl.constexpr = BN // 16
    DT: gl.constexpr = x_ptr.dtype.element_ty
    BF16: gl.constexpr = gl.bfloat16 == DT
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[2, 0], warps_per_cta=[WK, WN, 1], instr_shape=[1, 16, 8])
    LW: gl.constexpr = _rows_layout(WK, WN, RT, 16, 4)
    LF: gl.constexpr = _rows_layout(WK, WN, RT, 8, 2)
    LX: gl.constexpr = _x_layout(WK, WN, MT)
    SL: gl.constexpr = gl.SliceLayout(2, mma)
    OL: gl.constexpr = gl.SliceLayout(0, mma)
    nchunk = K // 128
    steps = gl.cdiv(nchunk, WK)
    pid = gl.program_id(0)
    nprog = gl.num_programs(0)
    total = gl.cdiv(gl.cdiv(N, BN) - pid, nprog) * steps
    w_b, w_r, _w_c = _grid3(LW, WK, BN, 16)
    x_b, x_m, x_c = _grid3(LX, WK, MT, 128)
    x_off = x_m * s_xm + x_c
    x_mok = x_m < M
    s_b = gl.expand_dims(gl.arange(0, WK, layout=gl.SliceLayout(1, SL)), 1)
    s_r = gl.expand_dims(gl.arange(0, BN, layout=gl.SliceLayout(0, SL)), 0)
    f_b, f_r, f_c = _grid3(LF, WK, BN, 8)
    o_r = gl.expand_dims(gl.arange(0, BN, layout=gl.SliceLayout(1, OL)), 1)
    o_m = gl.expand_dims(gl.arange(0, MT, layout=gl.SliceLayout(0, OL)), 0)

    acc = gl.zeros([WK, BN, MT], gl.float32, mma)
    # the NVFP4 scale bytes, INT4 group scales and zero points, and x come through registers one step ahead
    row0 = pid * BN
    z0 = _zload(0, row0, s_ptr, zp_ptr, w_b, w_r, f_b, f_r, f_c, N, s_sk, s_sn, s_zk, s_zn, nchunk, KIND, HAS_ZP,
                GK, GN, WK)  # fmt: skip
    xt, sc = _xload(0, x_ptr, s_ptr, x_off, x_b, x_mok, gl.minimum(row0 + s_r, N - 1) * s_sn, s_b, 0, nchunk, s_sk,
                    KIND, GK, WK)  # fmt: skip
    for g in range(total):
        step = g % steps
        row0 = (pid + (g // steps) * nprog) * BN
        nstep = (g + 1) % steps
        nrow0 = (pid + ((g + 1) // steps) * nprog) * BN
        zn = _zload(nstep, nrow0, s_ptr, zp_ptr, w_b, w_r, f_b, f_r, f_c, N, s_sk, s_sn, s_zk, s_zn, nchunk, KIND,
                    HAS_ZP, GK, GN, WK)  # fmt: skip
        xt2, sc2 = _xload(nstep, x_ptr, s_ptr, x_off, x_b, x_mok, gl.minimum(nrow0 + s_r, N - 1) * s_sn, s_b, 0,
                          nchunk, s_sk, KIND, GK, WK)  # fmt: skip
        s = g % STAGES
        mbarrier.wait(ready.index(s), (g // STAGES) & 1)
        words = bufs.index(s).reshape([WK, BN, 16]).load(LW)
        mbarrier.arrive(empty.index(s), count=1)
        if KIND == 0:
            base: gl.constexpr = (136.0 if SIGNED else 128.0) if BF16 else (1032.0 if SIGNED else 1024.0)
            v = gl.full([WK, BN, 16], -base, DT, LW)
            if HAS_ZP:
                v = v - z0.to(DT)
        else:
            e = gl.inline_asm_elementwise(_E4M3X2_PTX, "=r,h", [z0], dtype=gl.bfloat16, is_pure=True, pack=2)
            v = gl.convert_layout(gl.reshape(gl.join(e, e), [WK, BN, 16]), LW)
        if KIND == 0:
            o = gl.inline_asm_elementwise(_word_ptx(False, BF16, SIGNED), "=h,=h,=h,=h,=h,=h,=h,=h,r,h", [words, v],
                                          dtype=(v.dtype,) * 8, is_pure=True, pack=1)  # fmt: skip
        else:
            o = gl.inline_asm_elementwise(_NVFP4_SPLIT_PTX, "=h,=h,=h,=h,=h,=h,=h,=h,r,h", [words, v],
                                          dtype=(v.dtype,) * 8, is_pure=True, pack=1)  # fmt: skip
        lo = gl.join(gl.join(o[0], o[4]), gl.join(o[2], o[6]))
        hi = gl.join(gl.join(o[1], o[5]), gl.join(o[3], o[7]))
        a = gl.convert_layout(_klog(gl.reshape(gl.join(lo, hi), [WK, BN, 128]), BN), gl.DotOperandLayout(0, mma, 2),
                              assert_trivial=True)  # fmt: skip
        if KIND == 1:
            xt = _split_pairs(xt, MT)
        b = gl.convert_layout(gl.permute(_klog(xt, MT), [0, 2, 1]), gl.DotOperandLayout(1, mma, 2))
        if KIND == 0:
            acc += mma_v2(a, b, gl.zeros([WK, BN, MT], gl.float32, mma)) * gl.expand_dims(sc.to(gl.float32), 2)
        else:
            acc = mma_v2(a, b, acc)
        xt, sc, z0 = xt2, sc2, zn
        if step == steps - 1:
            tot = gl.sum(acc, axis=0)
            if KIND == 1:
                tot = tot * 67108864.0
            if HAS_G:
                tot = tot * gl.load(g_ptr)
            ok = (o_m < M) & (row0 + o_r < N)
            gl.store(o_ptr + (row0 + o_r) * s_on + o_m * s_om, tot.to(o_ptr.dtype.element_ty), mask=ok)
            acc = gl.zeros([WK, BN, MT], gl.float32, mma)


@gluon.jit
def w4a16_ws_kernel(
    w_desc, x_ptr, s_ptr, zp_ptr, g_ptr, o_ptr,
    M, N, K, s_xm, s_sk, s_sn, s_zk, s_zn, s_om, s_on,
    KIND: gl.constexpr, SIGNED: gl.constexpr, HAS_ZP: gl.constexpr, HAS_G: gl.constexpr, GK: gl.constexpr,
    GN: gl.constexpr, WK: gl.constexpr, BN: gl.constexpr, MT: gl.constexpr, STAGES: gl.constexpr,
):  # fmt: skip
    """:func:`._w4a16_mma.w4a16_mma_kernel`'s product (one N warp, ``BN / 16`` row tiles), persistent over row
    blocks, with the weight words brought by a TMA producer warp through ``STAGES`` slots of ``WK · BN`` rows ×
    16 words."""
    bufs = gl.allocate_shared_memory(gl.int32, [STAGES, WK * BN, 16], w_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1)
        mbarrier.init(empty.index(i), count=1)
    q = (w_desc, bufs, ready, empty, N, K)
    p = q + (x_ptr, s_ptr, zp_ptr, g_ptr, o_ptr, M, (s_xm, s_sk, s_sn, s_zk, s_zn, s_om, s_on))
    gl.warp_specialize(
        [
            (_consumer, (p, KIND, SIGNED, HAS_ZP, HAS_G, GK, GN, WK, BN, MT, STAGES)),
            (_producer, (q, KIND, SIGNED, HAS_ZP, HAS_G, GK, GN, WK, BN, MT, STAGES)),
        ],
        [1],
        [24],
    )


def applies(p: Any) -> bool:
    """The word view must be a TMA source: 16-byte aligned base and row stride."""
    w = p.words
    return w is not None and w.data_ptr() % 16 == 0 and (w.stride(0) * 4) % 16 == 0 and w.stride(1) == 1


def launch(x2: Any, p: Any, out: Any, cfg: Any) -> None:
    """Runs the kernel for ``x2`` (M ≤ 16 rows, contiguous), the weight plan ``p`` of :mod:`._w4a16` and a
    config with ``WK``, ``RT``, ``STAGES``, ``maxnreg`` and ``CTAS`` (persistent CTAs per SM) into ``out``."""
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    from ._gemm_tma import _num_sms

    m = x2.shape[0]
    bn = 16 * cfg.RT
    w = p.words
    w_desc = TensorDescriptor(w, list(w.shape), list(w.stride()), [bn, 16], _LAYOUT)
    s_sk, s_sn, s_zk, s_zn = p.strides[1:]
    grid = min(-(-p.n // bn), cfg.CTAS * _num_sms(x2.device.index or 0))
    w4a16_ws_kernel[(grid,)](
        w_desc, x2, p.scale, p.zp, p.g, out,
        m, p.n, p.k, x2.stride(0), s_sk, s_sn, s_zk, s_zn, out.stride(0), out.stride(1),
        KIND=p.kind, SIGNED=p.flags[0], HAS_ZP=p.flags[1], HAS_G=p.flags[2], GK=p.gk, GN=p.gn,
        WK=cfg.WK, BN=bn, MT=8 if m <= 8 else 16, STAGES=cfg.STAGES,
        num_warps=cfg.WK, maxnreg=cfg.maxnreg,
    )  # fmt: skip
