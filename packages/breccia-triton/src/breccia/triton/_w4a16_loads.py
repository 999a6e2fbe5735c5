"""The W4A16 fragment kernel's loads (:mod:`._w4a16_mma`): weight words with what their decode needs, x with the
INT4 group scales, and the L2 prefetch of the CTA's first weight bytes under programmatic dependent launch.

Why their own module: the kernel's loop issues them a step (or two) ahead of the MMAs that use them, and the probes
(``benchmarks/probe_w4a16_mma.py``) swap ``_xload`` for a stand-in to time the kernel without x's loads. ``EVEN``
(every K range whole steps, every row block whole rows) drops every mask: a predicated load needs its destination
zeroed first, which at M = 16 was 24 of the loop's 424 instructions per step.
"""

from __future__ import annotations

from triton.experimental import gluon
from triton.experimental.gluon import language as gl

__all__: list[str] = []

# One 128-byte line into L2, no register written (weights are read-only, so this may run before the wait).
_PREFETCH_PTX = gl.constexpr("{\n.reg .pred p;\nsetp.ne.b32 p, $2, 0;\n@p prefetch.global.L2 [$1];\nmov.b32 $0, 0;\n}")

# INT4 words at M ≤ 8 (one step ahead): one inline, unmasked 16-byte load per row and chunk at a clamped address,
# evict-first as the ``gl.load`` it replaces. On an H200 (benchmarks/NOTES.md) 14.5 → 13.9 µs at 8192×8192, M = 1.
# The cache qualifiers do not matter (``.nc`` with or without ``L1::no_allocate``, or ``L1::no_allocate`` alone,
# measured the same): the gain is the masked load's. NVFP4 (17.1 → 18.4 µs), words two steps ahead and some M = 16
# shapes were slower with it, so they keep ``gl.load``.
_LDG_PTX = gl.constexpr(
    "{\n.reg .b64 pol;\ncreatepolicy.fractional.L2::evict_first.b64 pol, 1.0;\n"
    "ld.global.nc.L1::no_allocate.L2::cache_hint.L2::128B.v4.b32 {$0, $1, $2, $3}, [$4], pol;\n}"
)


@gluon.jit
def _wload(it, w_ptr, s_ptr, zp_ptr, w_off, w_b, w_ok, z_off, f_off, f_b, c0, nchunk, s_sk, s_zk,
           KIND: gl.constexpr, HAS_ZP: gl.constexpr, GK: gl.constexpr, WK: gl.constexpr,
           NC: gl.constexpr = False, EVEN: gl.constexpr = False):  # fmt: skip
    """Loop step ``it``'s weight loads (K warp ``b`` takes chunk ``c0 + it·WK + b``, chunks from ``nchunk`` on are
    masked, or with ``NC`` read at a clamped address; with ``EVEN`` there are none, and nothing is masked): its
    words, and what the decode needs per word: INT4 the zero point (in the words' layout), NVFP4 the E4M3 bytes
    (two blocks per thread and row)."""
    c = c0 + it * WK + w_b
    if EVEN:  # the steps past the range (the last AHEAD prefetches) read its last chunk again, unused
        c = gl.minimum(c, nchunk - 1)
    # the words are read once: evict_first keeps them from pushing x and the scales out of L2 (−2 % measured)
    if NC:  # clamped, not masked: chunks past the range meet x = 0, rows past N are not stored (w_off clamps them)
        words = gl.inline_asm_elementwise(_LDG_PTX, "=r,=r,=r,=r,l,l,l,l",
                                          [w_ptr + w_off + gl.minimum(c, nchunk - 1) * 16], dtype=gl.int32,
                                          is_pure=True, pack=4)  # fmt: skip
    elif EVEN:
        words = gl.load(w_ptr + w_off + c * 16, eviction_policy="evict_first")
    else:
        words = gl.load(w_ptr + w_off + c * 16, mask=(c < nchunk) & w_ok, other=0, eviction_policy="evict_first")
    if KIND == 0:
        if HAS_ZP and EVEN:
            z = gl.load(zp_ptr + z_off + ((c * 128) // GK) * s_zk)
        elif HAS_ZP:
            z = gl.load(zp_ptr + z_off + ((c * 128) // GK) * s_zk, mask=(c < nchunk) & w_ok, other=0)
        else:
            z = words
    else:
        cf = c0 + it * WK + f_b
        if EVEN:
            z = gl.load(s_ptr + f_off + gl.minimum(cf, nchunk - 1) * 8 * s_sk)
        else:
            z = gl.load(s_ptr + f_off + cf * 8 * s_sk, mask=cf < nchunk, other=0)
    return words, z


@gluon.jit
def _xload(it, x_ptr, s_ptr, x_off, x_b, x_mok, s_off, s_b, c0, nchunk, s_sk, KIND: gl.constexpr,
           GK: gl.constexpr, WK: gl.constexpr, EVEN: gl.constexpr = False, XCS: gl.constexpr = 128):  # fmt: skip
    """Loop step ``it``'s x values (each thread its 32 consecutive values per token) and INT4 group scales (one per
    row, in the accumulator's row layout). ``EVEN``: unmasked (``x_off`` then reads token M − 1 for the tokens
    past M, whose outputs are not stored). ``XCS``: x's elements per chunk (128; 128·MT in the permuted order of
    :mod:`._w4a16_xperm`)."""
    cx = c0 + it * WK + x_b
    if EVEN:
        xt = gl.load(x_ptr + x_off + gl.minimum(cx, nchunk - 1) * XCS)
    else:
        xt = gl.load(x_ptr + x_off + cx * XCS, mask=(cx < nchunk) & x_mok, other=0.0)
    sc = xt
    if KIND == 0:
        sc = _sload(it, s_ptr, s_off, s_b, c0, nchunk, s_sk, GK, WK, EVEN)
    return xt, sc


@gluon.jit
def _sload(it, s_ptr, s_off, s_b, c0, nchunk, s_sk, GK: gl.constexpr, WK: gl.constexpr, EVEN: gl.constexpr = False):
    """Loop step ``it``'s INT4 group scales, one per row, in the accumulator's row layout."""
    cs = c0 + it * WK + s_b
    if EVEN:
        return gl.load(s_ptr + s_off + ((gl.minimum(cs, nchunk - 1) * 128) // GK) * s_sk)
    return gl.load(s_ptr + s_off + ((cs * 128) // GK) * s_sk, mask=cs < nchunk, other=0.0)


@gluon.jit
def _prefetch(w_ptr, row0, c0, nchunk, N, s_wr, BN: gl.constexpr, LINES: gl.constexpr, NW: gl.constexpr):
    """Each thread brings ``LINES`` 128-byte lines of the CTA's first weight bytes into L2: rows ``row0 …`` (one
    row per ``(32·NW) / BN`` threads), the first ``LINES · 128 · 32·NW / BN`` bytes of the CTA's K range."""
    T: gl.constexpr = 32 * NW
    PER: gl.constexpr = T // BN  # threads per row
    L: gl.constexpr = gl.BlockedLayout([1], [32], [NW], [0])
    i = gl.arange(0, T, layout=L)
    row = gl.minimum(row0 + i % BN, N - 1).to(gl.int64)
    for j in gl.static_range(LINES):
        off = ((i // BN) * LINES + j) * 128  # bytes into the range
        ok = (off < (nchunk - c0) * 64).to(gl.int32)
        ptr = w_ptr.to(gl.pointer_type(gl.int8), bitcast=True) + row * (s_wr * 4) + c0 * 64 + off
        gl.inline_asm_elementwise(_PREFETCH_PTX, "=r,l,r", [ptr, ok], dtype=gl.int32, is_pure=False, pack=1)
    gl.static_assert(PER * BN == T, "the CTA's threads cover its rows evenly")
