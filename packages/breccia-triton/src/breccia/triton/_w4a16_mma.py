"""W4A16 decode kernel in Gluon: 4-bit weight words decoded straight into ``mma.sync`` fragments (sm_80+).

Why a second W4A16 kernel. The Triton word kernel (:mod:`._w4a16_kernels`) decodes a word into eight codes in K
order, and Triton then moves the decoded tile through shared memory into the MMA operand layout: a synchronous
decode → ``STS`` → barrier → ``ldmatrix`` → MMA chain per step, which ``ncu`` showed bounding it at ~1/3 of the
bandwidth a plain stream of the same bytes reaches. Here each thread decodes exactly the A-fragment registers of its
own ``mma.m16n8k16``: no shared memory, no barrier, no shuffle in the loop.

The trick is a permutation of K, which a dot product allows when both operands take it. A thread of an ``m16n8k16``
holds, for rows g and g + 8, the logical K values {2t, 2t+1, 2t+8, 2t+9} of each 16-wide step (g = lane / 4, t =
lane % 4). Logical K of a 128-wide chunk is mapped onto physical K as ``phys = 32·t + 4·s + 2·h + j`` for step s,
half h and pair element j (``log = 16·s + 8·h + 2·t + j``). So a thread's eight steps of a chunk are *its own* 32
consecutive codes of the row: one 16-byte load per row and chunk, four words, each decoded by the packed PTX of
:mod:`._w4a16_decode` into the (j = 0, 1) register pairs the MMA reads. ``x`` takes the same permutation: the thread
loads its 32 consecutive values per token, already in fragment order. The layouts are written as linear layouts and
the weight operand's conversion into the MMA layout is asserted free at compile time (``assert_trivial``). NVFP4
pairs the codes differently inside a word (:data:`_NVFP4_SPLIT_PTX`, six instructions fewer per word) and x
follows with one register permute per pair.

Work split. A CTA owns ``BN = 16·RT·WN`` weight rows: ``WN`` warps along N, each ``RT`` row tiles of 16, and ``WK``
warps along K that take alternate 128-wide chunks (a batched MMA with the warps on the batch axis). The ``WK``
partial sums meet once, in shared memory, at the end: one launch, no workspace, no atomics, deterministic. Where
the row blocks alone would leave SMs idle, ``SPLIT`` CTAs per row block take K ranges and meet in a workspace, the
last to arrive adding the partials in a fixed order (:func:`_store_out`; still one launch, still deterministic). Every
CTA reads all of ``x`` from L2 (``N/BN · M·K·2`` bytes: at M = 16 and BN = 32 that is twice the weight's bytes),
one reason M = 16 runs slower than M ≤ 8; and a thread's 32 consecutive values per token make each 16-byte load
of a warp touch 16 cache lines, half of each sector used (the L1 at 80 % of its throughput at M = 8 and 16, H100).
At M > 8 a small kernel first writes x in the lanes' order (:mod:`._w4a16_xperm`, ``XPERM``), one warp's load
then reading 512 contiguous bytes, and this kernel starts under PDL while it runs.

What limits it (H200, ``benchmarks/NOTES.md``): with the decode replaced by plain moves, INT4 at 8192×8192, M = 1
takes 12.7 µs against 14.5 µs with it, so the loads, not the decode, bound it. A kernel that only reads the same
bytes takes 9.2 µs with many small CTAs but 12.2 µs with this kernel's 264 long ones: the loads run near bandwidth
once started, and what is left is the single wave's start and end, which every CTA pays at once. The weight words
are loaded one step ahead in registers; two steps ahead, a ``cp.async`` ring in shared memory, an L2 bulk
prefetch, a K split into more, shorter CTAs and a TMA ring filled by a producer warp all measured slower there.
That start and end is what programmatic dependent launch overlaps (sm_90+, M ≤ 8, :data:`PDL`): the kernel lets the
next one launch at its start, and waits for the previous one only after its weight-only prologue (INT4: one L2
prefetch line per thread), so products back to back overlap (H100, 8192×8192 INT4 M = 1: 15.7 → 13.6 µs).

Exactness is the Triton kernels' (see :mod:`._w4a16`): INT4 ``q − zp`` and NVFP4 E2M1 × E4M3 are exact in bf16,
the INT4 group scale multiplies each chunk's FP32 partial (groups are whole chunks: ``GK`` a multiple of 128), the
NVFP4 2^−26 and global scale multiply the FP32 sum.
"""

from __future__ import annotations

from typing import Any

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.ampere import mma_v2

from ._gluon_compat import thread_barrier
from ._w4a16 import _capability  # the one per-device capability cache
from ._w4a16_decode import _word_ptx
from ._w4a16_loads import _prefetch, _sload, _wload, _xload  # noqa: F401  (_sload: the probes' x stand-in calls it)
from ._w4a16_tiles import split_k
from ._w4a16_xperm import _GDC_LAUNCH, permute_x

__all__ = ["w4a16_mma_kernel"]


@gluon.constexpr_function
def _log2(n: int) -> int:
    return n.bit_length() - 1


@gluon.constexpr_function
def _rows_layout(WK: int, WN: int, RT: int, COLS: int, PER: int) -> gl.DistributedLinearLayout:
    """(K warp, weight row, column) with ``PER`` consecutive columns per thread and 4 lanes along the columns: rows
    g and g + 8 of each 16-row tile in one thread, as the MMA's A fragment has them."""
    reg = [[0, 0, 1 << i] for i in range(_log2(PER))] + [[0, 8, 0]]
    reg += [[0, (16 * WN) << i, 0] for i in range(_log2(RT))]
    lane = [[0, 0, PER], [0, 0, 2 * PER], [0, 1, 0], [0, 2, 0], [0, 4, 0]]
    warp = [[0, 16 << i, 0] for i in range(_log2(WN))] + [[1 << i, 0, 0] for i in range(_log2(WK))]
    return gl.DistributedLinearLayout(reg, lane, warp, [], [WK, 16 * RT * WN, COLS])


@gluon.constexpr_function
def _x_layout(WK: int, WN: int, MT: int, PER: int = 32) -> gl.DistributedLinearLayout:
    """(K warp, token, physical k of a chunk of 4·PER): ``PER`` consecutive values per thread (32 here, 16 in the
    ``(K, N)`` kernel), token g (and g + 8); the N warps share x."""
    reg = [[0, 0, 1 << i] for i in range(_log2(PER))] + ([[0, 8, 0]] if MT == 16 else [])
    lane = [[0, 0, PER], [0, 0, 2 * PER], [0, 1, 0], [0, 2, 0], [0, 4, 0]]
    warp = [[0, 0, 0] for _ in range(_log2(WN))] + [[1 << i, 0, 0] for i in range(_log2(WK))]
    return gl.DistributedLinearLayout(reg, lane, warp, [], [WK, MT, 4 * PER])


@gluon.jit
def _klog(t, R: gl.constexpr, S: gl.constexpr = 8):
    """``t`` ([WK, R, 16·S], a chunk in physical order: phys = 4S·t + 4s + 2h + j, each lane t its 4S consecutive
    values) in logical (fragment) K order ``16s + 8h + 2t + j``. Register-level only (the layouts make it a
    relabelling). S = 8 here; the ``(K, N)`` kernel uses S = 4."""
    WK: gl.constexpr = t.shape[0]
    t = gl.reshape(t, [WK, R, 4, S, 2, 2])
    t = gl.permute(t, [0, 1, 3, 4, 2, 5])
    return gl.reshape(t, [WK, R, 16 * S])


# NVFP4: one 32-bit word (codes 0–7 of a row, code j at bits 4j–4j+3) to four bf16x2 registers, register p holding
# codes (p, p + 4), which sit at the same place in the two 16-bit halves, so one shift serves both: the magnitude
# bits go to bf16 bits 6–8 and the sign to bit 15 (value · 2^−126, as ``_w4a16_decode._nvfp4_pair`` explains), then
# the packed multiply by the block scale · 2^100. 19 instructions per word against 25 for the byte-pair decode; the
# price is that x's pairs are (p, p + 4) too (:func:`_split_pairs`), a register permute per x pair.
_SPLIT_SHIFTS = [("shl", 12, "shl", 6), ("shl", 8, "shl", 2), ("shl", 4, "shr", 2), (None, 0, "shr", 6)]
_NVFP4_SPLIT_PTX = gl.constexpr(
    "{\n.reg .b32 s, a, m, t;\nmov.b32 s, {$9, $9};\n"
    + "".join(
        (f"{sa}.b32 a, $8, {na};\n" if sa else "mov.b32 a, $8;\n")
        + f"{sm}.b32 m, $8, {nm};\nand.b32 m, m, 0x01C001C0;\nlop3.b32 t, a, m, 0x80008000, 0xEC;\n"
        + f"mul.rn.bf16x2 t, t, s;\nmov.b32 {{${2 * p}, ${2 * p + 1}}}, t;\n"
        for p, (sa, na, sm, nm) in enumerate(_SPLIT_SHIFTS)
    )
    + "}"
)
# Two E4M3 scale bytes to bf16x2 ``scale · 2^100`` (exact: ≤ 4 significant bits; zero, sign and NaN carried):
# the sm_89+ conversion to f16x2, widening, the power-of-two multiply and one packing conversion.
_E4M3X2_PTX = gl.constexpr(
    "{\n.reg .b32 h;\n.reg .b16 l, u;\n.reg .f32 a, b;\ncvt.rn.f16x2.e4m3x2 h, $1;\nmov.b32 {l, u}, h;\n"
    "cvt.f32.f16 a, l;\ncvt.f32.f16 b, u;\nmul.f32 a, a, 0f71800000;\nmul.f32 b, b, 0f71800000;\n"
    "cvt.rn.bf16x2.f32 $0, b, a;\n}"
)


@gluon.jit
def _split_pairs(t, R: gl.constexpr):
    """``t`` ([WK, R, 128], physical code order) reordered as the NVFP4 decode emits codes: within each word of 8,
    code order (0, 4, 1, 5, 2, 6, 3, 7)."""
    WK: gl.constexpr = t.shape[0]
    t = gl.reshape(t, [WK, R, 16, 2, 4])
    t = gl.permute(t, [0, 1, 2, 4, 3])
    return gl.reshape(t, [WK, R, 128])


@gluon.jit
def _grid3(L: gl.constexpr, A: gl.constexpr, B: gl.constexpr, C: gl.constexpr):
    """Index tensors (a, b, c) of shapes [A,1,1], [1,B,1], [1,1,C] in the slices of the 3-D layout ``L``."""
    a = gl.expand_dims(gl.expand_dims(gl.arange(0, A, layout=gl.SliceLayout(1, gl.SliceLayout(2, L))), 1), 2)
    b = gl.expand_dims(gl.expand_dims(gl.arange(0, B, layout=gl.SliceLayout(0, gl.SliceLayout(2, L))), 0), 2)
    c = gl.expand_dims(gl.expand_dims(gl.arange(0, C, layout=gl.SliceLayout(0, gl.SliceLayout(1, L))), 0), 1)
    return a, b, c


# Programmatic dependent launch (sm_90): the next kernel in the stream may start once every CTA of this one has
# signalled, and waits for this one's completion (and its memory) only at ``griddepcontrol.wait``.
_GDC_WAIT = gl.constexpr("griddepcontrol.wait; // $0")


@gluon.jit
def _k_range(K, cps, CHUNK: gl.constexpr, SPLIT: gl.constexpr):
    """This CTA's chunks of ``CHUNK`` K values, ``c0 … end − 1``: all of K with one range (constants, so the code is
    the same as without ranges: computing them at run time cost NVFP4 17.1 → 20.4 µs on an H200), else range
    ``program_id(1)`` of ``cps`` chunks."""
    if SPLIT > 1:
        c0 = gl.program_id(1) * cps
        return c0, gl.minimum(c0 + cps, K // CHUNK)
    else:
        return 0, K // CHUNK


@gluon.jit
def _store_out(tot, o_n, o_m, o_ptr, ws_ptr, cnt_ptr, M, N, s_om, s_on, SPLIT: gl.constexpr):
    """Stores ``tot`` (FP32, outputs ``o_n`` × tokens ``o_m``). With ``SPLIT`` > 1 K ranges (grid axis 1), as the
    FP8 GEMM's split-K does (``_gemm._split_sum``): each CTA writes its partial to its slot of ``ws`` (SPLIT, M, N),
    then counts itself in on its row block's counter (a CTA barrier, then one acquire-release atomic, so the partial
    is visible before the count); the last to arrive adds the slots in slot order (the same sum whichever CTA came
    last: deterministic), stores, and resets the counter. No second launch, which at ~10 µs would cost 10–20 %."""
    ok = (o_m < M) & (o_n < N)
    if SPLIT == 1:
        gl.store(o_ptr + o_n * s_on + o_m * s_om, tot.to(o_ptr.dtype.element_ty), mask=ok)
    else:
        slot = ws_ptr + o_m * N + o_n
        gl.store(slot + gl.program_id(1) * (M * N), tot, mask=ok)
        thread_barrier()
        arrived = gl.atomic_add(cnt_ptr + gl.program_id(0), 1, sem="acq_rel", scope="gpu")
        if arrived == SPLIT - 1:
            total = gl.load(slot, mask=ok, other=0.0, cache_modifier=".cg")
            for s in gl.static_range(1, SPLIT):
                total += gl.load(slot + s * (M * N), mask=ok, other=0.0, cache_modifier=".cg")
            gl.store(o_ptr + o_n * s_on + o_m * s_om, total.to(o_ptr.dtype.element_ty), mask=ok)
            gl.store(cnt_ptr + gl.program_id(0), 0)


@gluon.jit
def _chunk(acc, words, z, xt, sc, KIND: gl.constexpr, SIGNED: gl.constexpr, HAS_ZP: gl.constexpr,
           LW: gl.constexpr, mma: gl.constexpr):  # fmt: skip
    """One loop step's MMAs: ``words`` (with ``z``: INT4 zero points or NVFP4 scale bytes) decoded into A fragments,
    ``xt`` (with ``sc``: INT4 group scales) as B, added into ``acc`` ([WK, BN, MT] FP32)."""
    WK: gl.constexpr = acc.shape[0]
    BN: gl.constexpr = acc.shape[1]
    MT: gl.constexpr = acc.shape[2]
    DT: gl.constexpr = xt.dtype
    BF16: gl.constexpr = gl.bfloat16 == DT
    if KIND == 0:
        base: gl.constexpr = (136.0 if SIGNED else 128.0) if BF16 else (1032.0 if SIGNED else 1024.0)
        v = gl.full([WK, BN, 16], -base, DT, LW)
        if HAS_ZP:
            v = v - z.to(DT)  # −(M + 8·signed + zp), exact
    else:
        e = gl.inline_asm_elementwise(_E4M3X2_PTX, "=r,h", [z], dtype=gl.bfloat16, is_pure=True, pack=2)
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
    if KIND == 1:  # x takes the decode's code order (a register permute per pair)
        xt = _split_pairs(xt, MT)
    b = gl.convert_layout(gl.permute(_klog(xt, MT), [0, 2, 1]), gl.DotOperandLayout(1, mma, 2))
    if KIND == 0:  # the chunk lies in one group: its scale multiplies the chunk's FP32 partial
        acc += mma_v2(a, b, gl.zeros([WK, BN, MT], gl.float32, mma)) * gl.expand_dims(sc.to(gl.float32), 2)
    else:
        acc = mma_v2(a, b, acc)
    return acc


@gluon.jit
def w4a16_mma_kernel(
    x_ptr, w_ptr, s_ptr, zp_ptr, g_ptr, o_ptr, ws_ptr, cnt_ptr,
    M, N, K, cps, s_xm, s_wr, s_sk, s_sn, s_zk, s_zn, s_om, s_on,
    KIND: gl.constexpr, SIGNED: gl.constexpr, HAS_ZP: gl.constexpr, HAS_G: gl.constexpr, GK: gl.constexpr,
    GN: gl.constexpr, WK: gl.constexpr, WN: gl.constexpr, RT: gl.constexpr, MT: gl.constexpr,
    AHEAD: gl.constexpr, SPLIT: gl.constexpr, PDL: gl.constexpr = False, PF: gl.constexpr = 0,
    NCW: gl.constexpr = False, EVEN: gl.constexpr = False, XPERM: gl.constexpr = False,
):  # fmt: skip
    """``out[m, n] = Σ_k x[m, k] · W[n, k]`` for M ≤ ``MT`` (8 or 16) and an ``(N, K)`` 4-bit weight whose rows are
    whole chunks of 128 codes (``w_ptr``: the int32 view, ``s_wr`` its row stride in words; ``x`` rows contiguous).
    KIND 0: INT4 (``GK`` codes per group, a multiple of 128, or 1 with ``s_sk = 0`` per channel); 1: NVFP4 (E4M3
    bytes per 16 codes, ``GN`` rows per scale). Grid: one CTA per ``BN`` rows and K range of ``cps`` chunks
    (``SPLIT`` ranges: see :func:`_store_out`). ``NCW``: words by the clamped ``.nc`` load (:data:`NC_KINDS`).
    ``EVEN``: nothing masked (:mod:`._w4a16_loads`). ``XPERM``: ``x_ptr`` holds x permuted by :mod:`._w4a16_xperm`
    (MT tokens)."""
    BN: gl.constexpr = 16 * RT * WN
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[2, 0], warps_per_cta=[WK, WN, 1], instr_shape=[1, 16, 8])
    LW: gl.constexpr = _rows_layout(WK, WN, RT, 16, 4)
    LF: gl.constexpr = _rows_layout(WK, WN, RT, 8, 2)
    LX: gl.constexpr = _x_layout(WK, WN, MT)
    SL: gl.constexpr = gl.SliceLayout(2, mma)
    row0 = gl.program_id(0) * BN
    c0, nchunk = _k_range(K, cps, 128, SPLIT)
    w_b, w_r, w_c = _grid3(LW, WK, BN, 16)
    w_ok = row0 + w_r < N
    NC: gl.constexpr = NCW and MT == 8 and AHEAD == 1
    w_off = (gl.minimum(row0 + w_r, N - 1) if NC else row0 + w_r).to(gl.int64) * s_wr + w_c
    x_b, x_m, x_c = _grid3(LX, WK, MT, 128)
    if XPERM:  # per chunk: 16-byte column q, token, lane t, 8 values (runs of 8 the compiler cannot see through %)
        x_off = (x_c % 32 // 8) * (MT * 32) + x_m * 32 + (x_c // 32) * 8 + x_c % 8
        x_off = gl.max_contiguous(gl.multiple_of(x_off, [1, 1, 8]), [1, 1, 8])
    else:
        x_off = (gl.minimum(x_m, M - 1) if EVEN else x_m) * s_xm + x_c
    XCS: gl.constexpr = 128 * MT if XPERM else 128
    x_mok = x_m < M
    s_b = gl.expand_dims(gl.arange(0, WK, layout=gl.SliceLayout(1, SL)), 1)
    s_r = gl.expand_dims(row0 + gl.arange(0, BN, layout=gl.SliceLayout(0, SL)), 0)
    s_off = gl.minimum(s_r, N - 1) * s_sn
    z_off = gl.minimum(row0 + w_r, N - 1) * s_zn
    f_b, f_r, f_c = _grid3(LF, WK, BN, 8)
    f_off = (gl.minimum(row0 + f_r, N - 1) // GN) * s_sn + f_c * s_sk

    if PDL:  # the next kernel may start its own weight reads while this one's last CTAs finish
        gl.inline_asm_elementwise(_GDC_LAUNCH, "=r", [], dtype=gl.int32, is_pure=False, pack=1)
    acc = gl.zeros([WK, BN, MT], gl.float32, mma)
    w0, z0 = _wload(0, w_ptr, s_ptr, zp_ptr, w_off, w_b, w_ok, z_off, f_off, f_b, c0, nchunk, s_sk, s_zk, KIND, HAS_ZP,
                    GK, WK, NC, EVEN)  # fmt: skip
    w1, z1 = w0, z0
    if AHEAD == 2:
        w1, z1 = _wload(1, w_ptr, s_ptr, zp_ptr, w_off, w_b, w_ok, z_off, f_off, f_b, c0, nchunk, s_sk, s_zk, KIND,
                        HAS_ZP, GK, WK, False, EVEN)  # fmt: skip
    if PDL:
        if PF > 0:
            _prefetch(w_ptr, row0, c0, nchunk, N, s_wr, BN, PF, WK * WN)
        # everything above reads only the weight; x, the workspace and the output wait for the previous kernel
        gl.inline_asm_elementwise(_GDC_WAIT, "=r", [], dtype=gl.int32, is_pure=False, pack=1)
    xt, sc = _xload(0, x_ptr, s_ptr, x_off, x_b, x_mok, s_off, s_b, c0, nchunk, s_sk, KIND, GK, WK, EVEN, XCS)
    for it in range(gl.cdiv(nchunk - c0, WK)):
        # the weight words AHEAD steps ahead and the next step's x are in flight during this step (registers)
        wn, zn = _wload(it + AHEAD, w_ptr, s_ptr, zp_ptr, w_off, w_b, w_ok, z_off, f_off, f_b, c0, nchunk, s_sk, s_zk,
                        KIND, HAS_ZP, GK, WK, NC, EVEN)  # fmt: skip
        xt2, sc2 = _xload(it + 1, x_ptr, s_ptr, x_off, x_b, x_mok, s_off, s_b, c0, nchunk, s_sk, KIND, GK, WK, EVEN,
                          XCS)  # fmt: skip
        acc = _chunk(acc, w0, z0, xt, sc, KIND, SIGNED, HAS_ZP, LW, mma)
        xt, sc = xt2, sc2
        if AHEAD == 2:
            w0, z0, w1, z1 = w1, z1, wn, zn
        else:
            w0, z0 = wn, zn
    tot = gl.sum(acc, axis=0)  # the WK partial sums, through shared memory once
    if KIND == 1:
        tot = tot * 67108864.0  # the 2^26 the packed NVFP4 decode takes from every weight
    if HAS_G:
        tot = tot * gl.load(g_ptr)
    OL: gl.constexpr = gl.SliceLayout(0, mma)
    o_r = gl.expand_dims(row0 + gl.arange(0, BN, layout=gl.SliceLayout(1, OL)), 1)
    o_m = gl.expand_dims(gl.arange(0, MT, layout=gl.SliceLayout(0, OL)), 0)
    _store_out(tot, o_r, o_m, o_ptr, ws_ptr, cnt_ptr, M, N, s_om, s_on, SPLIT)


#: Programmatic dependent launch on sm_90+ (the benchmarks' switch): the kernel signals at its start that the next
#: kernel in the stream may launch, and waits for the previous one only before it reads ``x``.
PDL = True
#: 128-byte L2 prefetch lines per thread of the CTA's first weight bytes, issued before that wait (0: none), for
#: INT4 words read by the clamped ``.nc`` load (M ≤ 8, one step ahead). On an H100 at 8192×8192 (benchmarks/NOTES.md,
#: twenty-fifth session) one line (1 KB of each row's 4 KB) took INT4 back to back from 15.1 to 13.6 µs at M = 1 and
#: 15.9 to 14.4 at M = 4; two lines and NVFP4 (masked loads) were slower, and with ``evict_last`` every depth was.
PF = 1
#: Largest M that launches with PDL (without :data:`XPERM`; with it, every M > 8 does, after the permutation).
PDL_MAX_M = 8
#: Kinds (0 INT4, 1 NVFP4) whose words take the clamped ``.nc`` load at M ≤ 8 (and with PDL the prefetch); NVFP4 is
#: slower so, with PDL too (H100: 15.4 → 18.0 µs at M = 1, benchmarks/NOTES.md, twenty-sixth session).
NC_KINDS = frozenset({0})


#: Unmasked loads (the kernel's ``EVEN``) where K splits into whole steps and N into whole row blocks: no register
#: zeroed before each predicated load, no masks (sm_90 SASS at M = 16: 424 → 383 loop instructions per step). None:
#: where it measured faster (:func:`_even`); True / False: everywhere / nowhere it applies (the probes' A/B).
EVEN: bool | None = None
#: At M > 8, x permuted by its own small kernel first (:mod:`._w4a16_xperm`) and this one launched with PDL (where
#: the launch has one K range and nothing masked: the case measured, H100 8192×8192 M = 16 INT4 21.1 → 20.5 µs).
XPERM = True


def _even(kind: int, m: int, split: int, fits: bool) -> bool:
    """Whether a launch takes ``EVEN``. Fewer instructions are not less time in this kernel (it waits on L1 and
    memory more than on issue), so only where it measured faster (H100, ``benchmarks/NOTES.md``, twenty-eighth
    session): NVFP4 at any M (8192×8192 M = 1: 15.8 → 15.3 µs) and INT4 at M > 8, with one K range (two ranges,
    4096×14336 M = 16: INT4 21.0 → 22.8 µs). INT4 at M ≤ 8 lost (13.8 → 14.2 µs at M = 1)."""
    return fits and (split == 1 and (kind == 1 or m > 8) if EVEN is None else EVEN)


def _sm90(device: Any) -> bool:
    """Whether ``device`` is a CUDA device of sm_90 or later (griddepcontrol's PTX needs it)."""
    return device.type == "cuda" and _capability(device) >= (9, 0)


def launch(x2: Any, p: Any, out: Any, cfg: Any) -> None:
    """Runs the kernel for ``x2`` (M ≤ 16 rows, contiguous), the weight plan ``p`` of :mod:`._w4a16` and its
    ``MmaConfig`` into ``out`` (M × N); at M > 8 (with :data:`XPERM`) after x's permutation."""
    m = x2.shape[0]
    bn = 16 * cfg.RT * cfg.WN
    s_sk, s_sn, s_zk, s_zn = p.strides[1:]
    grid_n = -(-p.n // bn)
    cps, split, ws, cnt = split_k(p.k // 128, cfg, m, p.n, out)
    fits = cps % cfg.WK == 0 and (p.k // 128) % cps == 0 and p.n % bn == 0
    xperm = XPERM and m > 8 and fits and split == 1  # where it was measured (one K range, nothing masked)
    pdl = PDL and (m <= PDL_MAX_M or xperm) and _sm90(x2.device)
    xs = permute_x(x2, 16, pdl) if xperm else x2
    ncw = p.kind in NC_KINDS and m <= 8 and cfg.AHEAD == 1
    even = _even(p.kind, m, split, fits)
    pf = PF if pdl and ncw else 0  # the clamped .nc load's case
    w4a16_mma_kernel[(grid_n, split)](
        xs, p.words, p.scale, p.zp, p.g, out, ws, cnt,
        m, p.n, p.k, cps, x2.stride(0), p.words.stride(0), s_sk, s_sn, s_zk, s_zn, out.stride(0), out.stride(1),
        KIND=p.kind, SIGNED=p.flags[0], HAS_ZP=p.flags[1], HAS_G=p.flags[2], GK=p.gk, GN=p.gn,
        WK=cfg.WK, WN=cfg.WN, RT=cfg.RT, MT=8 if m <= 8 else 16, AHEAD=cfg.AHEAD, SPLIT=split,
        PDL=pdl, PF=pf, NCW=ncw, EVEN=even, XPERM=xperm, num_warps=cfg.WK * cfg.WN, maxnreg=cfg.maxnreg,
        launch_pdl=pdl,
    )  # fmt: skip
