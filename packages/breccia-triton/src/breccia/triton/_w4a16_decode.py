"""The 4-bit decoders of the W4A16 kernels: INT4 (``q − zp``) and NVFP4 (E2M1 × E4M3 block scale) codes to exact
bf16/fp16 weights in registers.

Two implementations of each. The portable one works in fp32 from the bits and narrows (no int→float conversions,
which run at a quarter of the ALU rate); it is what the CPU interpreter runs and what fp16 NVFP4 uses. The packed
one (``ASM``, the GPU) is inline PTX on whole registers: byte permutes, one 3-input logic op and one packed bf16x2 /
f16x2 add or multiply per pair of values. In sm_90 SASS the portable decode costs 4–5 instructions per INT4
element and ~25 per NVFP4 element; the packed one ~1.5 and ~2.5. A kernel that must decode 4-bit codes as fast as
HBM delivers them has ~4 ALU instructions per element in all on an H100/H200 (4-bit codes at ~4 TB/s over 132 SMs ×
128 lanes × ~1.9 GHz). Both are exact, so they give the same weights bit for bit (tested on the GPU, and every code
value is tested through the kernel against ``breccia.dequantize``).
"""

from __future__ import annotations

import triton
import triton.language as tl

from ._codes import _decode_e4m3, _from_bits


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


# Packed decode of four code *bytes* (``pack=4``: one register in, four values per output): the byte-loading kernel
# (``(K, N)`` weights, and ``(N, K)`` rows whose bytes are not whole words). Low nibbles are one output, high nibbles
# the other; ``$5``–``$8`` hold their biases or scales.
def _int4_pair(t: str, bias: str, out: str) -> str:
    """PTX turning register ``t`` (codes at bits 0–3 and 16–19) into ``q − zp`` in each half: OR under the exponent of
    M (``MAGIC``, XOR 8 for two's complement), then the packed add of ``bias`` = ``−(M + zp)`` (``TY`` bf16x2/f16x2)."""
    return f"lop3.b32 {t}, {t}, 0x000F000F, MAGIC, 0x6A;\nadd.rn.TY {out}, {t}, {bias};\n"


def _nvfp4_pair(t: str, scale: str, out: str) -> str:
    """PTX turning register ``t`` (E2M1 codes at bits 0–3 and 16–19) into value · scale · 2^−26 in each bf16 half:
    magnitude to bits 6–8, sign to 15, then the packed multiply by ``scale`` (= E4M3 scale · 2^100)."""
    return (f"shl.b32 u, {t}, 6;\nshl.b32 v, {t}, 12;\nlop3.b32 {t}, u, 0x01C001C0, 0, 0xC0;\n"
            f"lop3.b32 {t}, v, 0x80008000, {t}, 0xEA;\nmul.rn.bf16x2 {out}, {t}, {scale};\n")  # fmt: skip


# Four bytes in $4: pairs (low nibbles of bytes 0, 1), (of 2, 3), then the high nibbles (from the word >> 4).
_BYTE_PAIRS = "shr.u32 w4, $4, 4;\n" + "".join(
    f"prmt.b32 t{i}, {src}, 0, {sel};\n" for i, (src, sel) in enumerate(
        [("$4", "0x4140"), ("$4", "0x4342"), ("w4", "0x4140"), ("w4", "0x4342")])
)  # fmt: skip
_INT4_PTX = (
    "{\n.reg .b32 t0, t1, t2, t3, w4;\n" + _BYTE_PAIRS
    + "".join(_int4_pair(f"t{i}", f"${5 + i}", f"${i}") for i in range(4)) + "}"
)  # fmt: skip
_NVFP4_PTX = (
    "{\n.reg .b32 t0, t1, t2, t3, w4, u, v;\n" + _BYTE_PAIRS
    + "".join(_nvfp4_pair(f"t{i}", f"${5 + i}", f"${i}") for i in range(4)) + "}"
)  # fmt: skip


@triton.constexpr_function
def _byte_ptx(nvfp4: bool, bf16: bool, signed: bool, shared: bool) -> str:
    """The byte PTX block for a recipe and activation dtype, chosen when the kernel compiles. ``shared`` reads both
    nibbles' operands from ``$5``/``$6``: a tensor passed twice to one asm call reaches it as one operand, so the
    ``(N, K)`` form, whose two nibbles share a row, passes three inputs."""
    ptx = _NVFP4_PTX if nvfp4 else _int4_ptx(bf16, signed)
    return ptx.replace("$7", "$5").replace("$8", "$6") if shared else ptx


@triton.constexpr_function
def _word_ptx(nvfp4: bool, bf16: bool, signed: bool) -> str:
    """The word PTX block for a recipe and activation dtype, chosen when the kernel compiles."""
    return _WORD_NVFP4_PTX if nvfp4 else _int4_ptx(bf16, signed, _WORD_INT4_PTX)


@triton.constexpr_function
def _int4_ptx(bf16: bool, signed: bool, ptx: str = _INT4_PTX) -> str:
    """``ptx`` with INT4's magic number (M's exponent bits; XOR 8 for two's complement) and packed type filled in."""
    magic = ("0x4308" if signed else "0x4300") if bf16 else ("0x6408" if signed else "0x6400")
    return ptx.replace("MAGIC", magic + magic[2:]).replace("TY", "bf16x2" if bf16 else "f16x2")


@triton.jit
def _int4_asm(byte, bias_lo, bias_hi, SIGNED: tl.constexpr, BF16: tl.constexpr, SHARED: tl.constexpr):
    """(low-nibble values, high-nibble values) of ``byte`` as ``q − zp`` in the dtype of ``bias_lo``/``bias_hi``,
    which hold ``−(M + zp)`` (bf16: M = 128; fp16: M = 1024). Each nibble ``u`` (``u ^ 8`` for two's complement) is
    OR-ed under the exponent of M, which gives ``M + u`` exactly (M's significand step is 1), and the packed add of
    ``−(M + zp)`` leaves ``q − zp``, an integer far inside the format's exact range. ``SHARED``: one bias for both
    nibbles (``bias_hi`` unread)."""
    return _packed(_byte_ptx(False, BF16, SIGNED, SHARED), byte, bias_lo, bias_hi, SHARED)


@triton.jit
def _nvfp4_asm(byte, scale_lo, scale_hi, SHARED: tl.constexpr):
    """(low-nibble, high-nibble) E2M1 values of ``byte`` times bf16 ``scale_lo``/``scale_hi`` · 2^100 (bf16 only).
    A nibble's magnitude bits placed at bf16 bits 6–8 (sign at 15) *are* its value times 2^−126: 1.5·2^(e−1) reads
    as 1.5·2^(e−127), and 0.5 lands on the subnormal 2^−127. The packed multiply by ``scale · 2^100`` (≤ 448·2^100,
    in range) gives value · scale · 2^−26, a normal number with at most 6 significant bits, exactly; the caller
    multiplies the FP32 accumulator by 2^26. ``SHARED``: one scale tile for both nibbles."""
    return _packed(_byte_ptx(True, True, False, SHARED), byte, scale_lo, scale_hi, SHARED)


@triton.jit
def _packed(asm: tl.constexpr, byte, a, b, SHARED: tl.constexpr):
    """Runs one of the PTX blocks above: four bytes and four values of ``a`` (and of ``b``) in, two tiles out."""
    if SHARED:
        return tl.inline_asm_elementwise(asm, "=r,=r,=r,=r,r,r,r", [byte, a], dtype=(a.dtype, a.dtype), is_pure=True,
                                         pack=4)  # fmt: skip
    return tl.inline_asm_elementwise(asm, "=r,=r,=r,=r,r,r,r,r,r", [byte, a, b], dtype=(a.dtype, a.dtype),
                                     is_pure=True, pack=4)  # fmt: skip


@triton.jit
def _asm_bias(z, dt: tl.constexpr, SIGNED: tl.constexpr):
    """``−(M + off)`` in ``dt`` for :func:`_int4_asm`: M = 128 (bf16) or 1024 (fp16), off the nibble's offset (8 for
    two's complement) plus the zero point. Exact for any zero point in the 4-bit range."""
    off = z + 8 if SIGNED else z
    base = 128.0 if dt == tl.bfloat16 else 1024.0
    return (-(off.to(tl.float32) + base)).to(dt)


@triton.jit
def _asm_scale(code):
    """bf16 ``E4M3 scale · 2^100`` for :func:`_nvfp4_asm` (exact: 4 significant bits, below 2^109)."""
    return (_e4m3(code) * 1.2676506002282294e30).to(tl.bfloat16)


@triton.jit
def _per_element(s, COLS: tl.constexpr, R: tl.constexpr, C: tl.constexpr):
    """``s`` (R × C/COLS) repeated ``COLS`` times along its columns: one value per element of an R × C tile."""
    return tl.reshape(tl.broadcast_to(s[:, :, None], (R, C // COLS, COLS)), (R, C))


# Packed decode of one 32-bit *word* = eight consecutive codes of a row (``pack=1``: one register in, eight 16-bit
# values out, in code order), for the word-loading kernel. ``prmt`` pairs code 2i (low nibble of byte i) with code
# 2i + 1 (low nibble of byte i of the word shifted right by 4) in the two halves of one register, which is the
# (k, k + 1) pair an MMA operand register holds. ``$9`` is the row's bias (INT4) or the block's scale (NVFP4).
_PAIRS = "".join(f"prmt.b32 t{i}, $8, w4, 0x{4 + i}{4 + i}{4 + i}{i};\n" for i in range(4))
_OUTS = "".join(f"mov.b32 {{${2 * i}, ${2 * i + 1}}}, t{i};\n" for i in range(4))
_WORD_INT4_PTX = (
    "{\n.reg .b32 t0, t1, t2, t3, w4, c;\nmov.b32 c, {$9, $9};\nshr.u32 w4, $8, 4;\n" + _PAIRS
    + "".join(_int4_pair(f"t{i}", "c", f"t{i}") for i in range(4)) + _OUTS + "}"
)  # fmt: skip
_WORD_NVFP4_PTX = (
    "{\n.reg .b32 t0, t1, t2, t3, w4, s, u, v;\nmov.b32 s, {$9, $9};\nshr.u32 w4, $8, 4;\n" + _PAIRS
    + "".join(_nvfp4_pair(f"t{i}", "s", f"t{i}") for i in range(4)) + _OUTS + "}"
)  # fmt: skip


@triton.jit
def _join8(o0, o1, o2, o3, o4, o5, o6, o7, R: tl.constexpr, C: tl.constexpr):
    """Eight (R × C/8) tiles, code j of each word in ``oj``, as one (R × C) tile in code order: the nested joins put
    the index 4a + 2b + c of ``o_{4a+2b+c}`` on the three new trailing axes, which the reshape flattens."""
    lo = tl.join(tl.join(o0, o4), tl.join(o2, o6))
    hi = tl.join(tl.join(o1, o5), tl.join(o3, o7))
    return tl.reshape(tl.join(lo, hi), (R, C))


@triton.jit
def _per_word(s, R: tl.constexpr, C: tl.constexpr):
    """A (R × C/16) tile of per-16-code scales as (R × C/8): one per word (two words per block)."""
    return tl.reshape(tl.join(s, s), (R, C // 8))


@triton.jit
def _words_int4(word, z, DT: tl.constexpr, SIGNED: tl.constexpr, HAS_ZP: tl.constexpr, ASM: tl.constexpr,
                BITS: tl.constexpr, R: tl.constexpr, C: tl.constexpr):  # fmt: skip
    """(R × C) ``q − zp`` values in ``DT`` from (R × C/8) int32 words; ``z``: one zero point per row."""
    if ASM:
        o = _unpack8(_word_ptx(False, BITS, SIGNED), word, _asm_bias(z, DT, SIGNED)[:, None])  # BITS: bf16 on a GPU
        return _join8(o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], R, C)
    return _join8(
        _narrow(_int4(word & 15, z, SIGNED, HAS_ZP), DT, BITS),
        _narrow(_int4((word >> 4) & 15, z, SIGNED, HAS_ZP), DT, BITS),
        _narrow(_int4((word >> 8) & 15, z, SIGNED, HAS_ZP), DT, BITS),
        _narrow(_int4((word >> 12) & 15, z, SIGNED, HAS_ZP), DT, BITS),
        _narrow(_int4((word >> 16) & 15, z, SIGNED, HAS_ZP), DT, BITS),
        _narrow(_int4((word >> 20) & 15, z, SIGNED, HAS_ZP), DT, BITS),
        _narrow(_int4((word >> 24) & 15, z, SIGNED, HAS_ZP), DT, BITS),
        _narrow(_int4((word >> 28) & 15, z, SIGNED, HAS_ZP), DT, BITS),
        R, C,
    )  # fmt: skip


@triton.jit
def _words_nvfp4(word, sc, DT: tl.constexpr, ASM: tl.constexpr, BITS: tl.constexpr, R: tl.constexpr,
                 C: tl.constexpr):  # fmt: skip
    """(R × C) E2M1 × E4M3 values in ``DT`` from (R × C/8) int32 words and the (R × C/16) scale codes ``sc``
    (int32). ``ASM`` (bf16 only): the values carry the 2^−26 of :func:`_nvfp4_asm`."""
    if ASM:
        o = _unpack8(_word_ptx(True, True, False), word, _per_word(_asm_scale(sc), R, C))
        return _join8(o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], R, C)
    s = _per_word(_e4m3(sc), R, C)
    return _join8(
        _narrow(_e2m1(word & 15) * s, DT, BITS), _narrow(_e2m1((word >> 4) & 15) * s, DT, BITS),
        _narrow(_e2m1((word >> 8) & 15) * s, DT, BITS), _narrow(_e2m1((word >> 12) & 15) * s, DT, BITS),
        _narrow(_e2m1((word >> 16) & 15) * s, DT, BITS), _narrow(_e2m1((word >> 20) & 15) * s, DT, BITS),
        _narrow(_e2m1((word >> 24) & 15) * s, DT, BITS), _narrow(_e2m1((word >> 28) & 15) * s, DT, BITS),
        R, C,
    )  # fmt: skip


@triton.jit
def _unpack8(asm: tl.constexpr, word, v):
    """Runs a word PTX block: one int32 word and one 16-bit value (bias or scale) in, eight 16-bit values out."""
    return tl.inline_asm_elementwise(asm, "=h,=h,=h,=h,=h,=h,=h,=h,r,h", [word, v], dtype=(v.dtype,) * 8,
                                     is_pure=True, pack=1)  # fmt: skip
