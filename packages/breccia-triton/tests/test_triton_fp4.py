"""``_fp4.e2m1_pair_bytes``, the E2M1 pair encoder of the NVFP4 and MXFP4 (fp16/fp32) kernels, against ml_dtypes'
``float4_e2m1fn`` on dense sets of fp32 values: every fp32 value from 2^-3 to 8 (every rounding boundary of the
E2M1 grid lies there), and every 251st bit pattern over the whole finite range, with both signs and in both nibbles.
``_fp4.pair_signs`` (the signs taken from 16-bit input words) with ``_fp4.e2m1_pair_codes``: every finite fp16 and
bf16 value in either half of a word. These kernels run under ``TRITON_INTERPRET=1`` in CI (the same functions the
kernels call) and natively on a GPU. ``_fp4.group_ptx``, the hand-written GPU element path of the 16-bit NVFP4 and
MXFP4 kernels (quotient, code and sign gather), runs here through a model of its instructions (``_ptx_model``) on
every finite fp16 and bf16 value against ml_dtypes, so that its logic is checked without a GPU; on a GPU the cast
suite runs it for real.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import torch

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")

from _ptx_model import run_ptx  # noqa: E402

from breccia.triton import _fp4  # noqa: E402
from breccia.triton._codes import _split_pairs  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# The interpreter runs a program as numpy arrays, so large programs are fast there; compiled for a GPU, a program is
# unrolled into registers: sm_90 compile times of this kernel 0.5 s at 1 024 elements, 175 s at 2^18, over 900 s
# at 2^20 (the size this file used on the GPU until the seventeenth session, which stalled the whole suite there)
BLOCK = 1 << 20 if DEVICE.type == "cpu" else 1024


@triton.jit
def _pairs_kernel(v0_ptr, v1_ptr, out_ptr, n, CLAMP: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    v0 = tl.load(v0_ptr + offs, mask=m, other=0.0)
    v1 = tl.load(v1_ptr + offs, mask=m, other=0.0)
    tl.store(out_ptr + offs, _fp4.e2m1_pair_bytes(v0, v1, CLAMP).to(tl.uint8), mask=m)


def _codes(v: np.ndarray, clamp: bool) -> np.ndarray:
    """The reference nibble: ml_dtypes' round-to-nearest-even E2M1 code, after the clamp to ±6."""
    w = np.clip(v, -6.0, 6.0) if clamp else v
    return w.astype(ml_dtypes.float4_e2m1fn).view(np.uint8) & 0xF


def _check(v: np.ndarray, clamp: bool) -> None:
    other = np.random.default_rng(v.size).permutation(v) * np.float32(-1)  # the other nibble: other values, sign
    for v0, v1 in ((v, other), (other, v)):
        out = torch.empty(v.size, dtype=torch.uint8, device=DEVICE)
        a, b = torch.from_numpy(v0).to(DEVICE), torch.from_numpy(v1).to(DEVICE)
        _pairs_kernel[(-(-v.size // BLOCK),)](a, b, out, v.size, CLAMP=clamp, BLOCK=BLOCK)
        want = _codes(v0, clamp) | (_codes(v1, clamp) << 4)
        got = out.cpu().numpy()
        bad = np.nonzero(got != want)[0]
        assert bad.size == 0, f"{bad.size} bytes differ, first v = ({v0[bad[0]]!r}, {v1[bad[0]]!r})"


def _range(lo_exp: int, hi_exp: int) -> np.ndarray:
    """Every fp32 value in [2^lo_exp, 2^hi_exp)."""
    return np.arange((lo_exp + 127) << 23, (hi_exp + 127) << 23, dtype=np.int64).astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("clamp", [True, False], ids=["clamp", "no-clamp"])
def test_every_fp32_value_near_the_grid(clamp: bool) -> None:
    """Every fp32 value in [2^-3, 8) (clamped) or [2^-3, 7) (unclamped, the range the unclamped kernels feed it:
    their quotients stay below 6·(1 + 2^-23)), plus ±0 and the values just below 2^-3."""
    v = _range(-3, 3)
    if not clamp:
        v = v[v < 7.0]
    v = np.concatenate([v, np.array([0.0, 2.0**-3 * (1 - 2.0**-24), 2.0**-149], np.float32)])
    _check(v, clamp)


def test_every_251st_finite_fp32_value_clamped() -> None:
    """The rest of the finite range, sparsely: tiny values give signed zeros, large ones saturate at ±6."""
    bits = np.arange(0, 0x7F800000, 251, dtype=np.int64).astype(np.uint32)
    _check(bits.view(np.float32), True)


@triton.jit
def _signed_kernel(w_ptr, out_ptr, n, scale, IN_KIND: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    w = tl.load(w_ptr + offs, mask=m, other=0)
    signs = _fp4.pair_signs(w)
    x0, x1 = _split_pairs(w, IN_KIND)
    packed = _fp4.e2m1_pair_codes(x0 * scale, x1 * scale, True).to(tl.uint8) | signs
    tl.store(out_ptr + offs, packed, mask=m)


@pytest.mark.parametrize("scale", [1.0, 2.0**-8], ids=["x1", "x2^-8"])
@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16], ids=["fp16", "bf16"])
def test_signs_from_the_input_words(dtype: type, scale: float) -> None:
    """Every finite 16-bit value (±0, subnormals, values that round to ±0 or saturate at ±6) as the low and as the
    high element of a word, beside a shuffled, sign-flipped partner: the byte equals ml_dtypes' codes of ``x · scale``
    (a power of two, so exact) with the sign taken from the words."""
    words = _words(dtype, 7)
    out = torch.empty(words.size, dtype=torch.uint8, device=DEVICE)
    _signed_kernel[(-(-words.size // 1024),)](
        torch.from_numpy(words.view(np.int32)).to(DEVICE), out, words.size, scale,
        IN_KIND=1 if dtype == np.float16 else 2, BLOCK=1024,
    )  # fmt: skip
    x0, x1 = _halves(words, dtype)
    s32 = np.float32(scale)
    want = _signed_of(x0 * s32, x0) | (_signed_of(x1 * s32, x1) << 4)
    got = out.cpu().numpy()
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, f"{bad.size} bytes differ, first word {words[bad[0]]:#010x}: {got[bad[0]]:#04x}"


def _words(dtype: type, seed: int) -> np.ndarray:
    """Every finite 16-bit value of ``dtype`` as the low half of a word (the high half a shuffled, sign-flipped
    partner), and again as the high half: uint32 words."""
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    bits = bits[np.isfinite(bits.view(dtype).astype(np.float32))]
    other = np.random.default_rng(seed).permutation(bits) ^ np.uint16(0x8000)
    lo = np.concatenate([bits, other]).astype(np.uint32)
    hi = np.concatenate([other, bits]).astype(np.uint32)
    return lo | (hi << 16)


def _halves(words: np.ndarray, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """The two fp32 elements of each word."""
    x0 = (words & 0xFFFF).astype(np.uint16).view(dtype).astype(np.float32)
    x1 = (words >> 16).astype(np.uint16).view(dtype).astype(np.float32)
    return x0, x1


Slot = tuple[np.float32, np.float32, Callable[[np.ndarray], np.ndarray]]


def _check_group(ptx: str, words: np.ndarray, dtype: type, slots: list[Slot], clamp: bool) -> None:
    """``ptx`` against ml_dtypes' signed code of ``v_of(x)`` for each element ``x`` (clamped to ±6), where word ``j``
    of a block takes its operands ``a``, ``b`` and its reference ``v_of`` from ``slots[j]``: four different ones, so
    that an operand wired to the wrong word fails. Unclamped, words whose values reach 6.5 in their slot are zeroed
    first (the kernel's unclamped recipes never feed those)."""
    blocks = np.concatenate([words, np.zeros(-words.size % 4, np.uint32)]).reshape(-1, 4)
    nb = blocks.shape[0]
    with np.errstate(all="ignore"):
        if not clamp:
            for k, (_, _, v_of) in enumerate(slots):
                x0, x1 = _halves(blocks[:, k], dtype)
                blocks[(np.abs(v_of(x0)) >= 6.5) | (np.abs(v_of(x1)) >= 6.5), k] = 0
        ops = [[np.full(nb, v, np.float32).view(np.uint32) for v in (a, b)] for a, b, _ in slots]
        got = run_ptx(ptx, [blocks[:, k] for k in range(4)] + [o[0] for o in ops] + [o[1] for o in ops])
        got = got.view(np.uint8).reshape(nb, 4)  # little-endian: byte k of a block is word k's
        want = np.empty((nb, 4), np.uint8)
        for k, (_, _, v_of) in enumerate(slots):
            x0, x1 = _halves(blocks[:, k], dtype)
            want[:, k] = _signed_of(v_of(x0), x0) | (_signed_of(v_of(x1), x1) << 4)
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"{len(bad)} bytes differ, first word {blocks[tuple(bad[0])]:#010x} in slot {bad[0][1]}"


def _signed_of(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """E2M1 code of ``v`` clamped to ±6, with the sign of ``x`` (that of the quotient, also where it is ±0)."""
    return _codes(np.abs(v), True) | (np.signbit(x).astype(np.uint8) << 3)


# NVFP4 divisors sb · g (and one-level E4M3 values), ones that put many quotients on E2M1 rounding midpoints (powers
# of two, 3 · 2^k), the smallest and largest the fast path admits, +inf (a zero-scale block), and three found by a
# search over 20 000 random divisors where RN(x · RN(1/d)) alone, without the FMA correction, would change a code
# (bf16 x = 0.11328125 for the first; fp16 for the other two): a check that leaves the correction out must fail
_DIVISORS = [1.0, 0.5, 3.0, 448.0, 2.0**-9, 0.013671875 * 1.7301921, 1.1 * 2.0**-60, 0.9 * 2.0**60, 2.0**-40 * 3.25,
             float(np.float32(5.0) * np.float32(0.00037202382)), float("inf"), float.fromhex("0x1.733332p-4"),
             float.fromhex("0x1.055556p-12"), float.fromhex("0x1.fa7ffep-2")]  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("clamp", [True, False], ids=["clamp", "no-clamp"])
def test_group_ptx_quotient_path(dtype: type, clamp: bool) -> None:
    """``group_ptx`` for ``RN(x / d)`` (NVFP4): every finite fp16 / bf16 value in both halves of a word, against
    ml_dtypes' code of the correctly rounded fp32 quotient (numpy's fp32 division), for the divisors above, given
    ``dd`` and ``y = RN(1 / d)`` as ``_div.block_recip`` makes them (``0, 0`` for ``d = inf``), each divisor in each
    word position of a block beside three others (see ``_check_group`` for the unclamped case)."""
    ptx = _fp4.group_ptx(dtype == ml_dtypes.bfloat16, False, clamp)
    words = _words(dtype, 3)
    slots = [_quotient_slot(np.float32(d)) for d in _DIVISORS]
    for i in range(len(slots)):  # every divisor in every word position of a block
        _check_group(ptx, words, dtype, [slots[(i + k) % len(slots)] for k in range(4)], clamp)


def _quotient_slot(d32: np.float32) -> Slot:
    """``dd`` and ``y = RN(1/d)`` as ``_div.block_recip`` makes them (``0, 0`` for ``d = inf``), and the quotient."""
    dd, y = (np.float32(0), np.float32(0)) if np.isinf(d32) else (d32, np.float32(1) / d32)
    return dd, y, lambda x: (x / d32).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("clamp", [True, False], ids=["clamp", "no-clamp"])
def test_group_ptx_multiply_path(dtype: type, clamp: bool) -> None:
    """``group_ptx`` for ``RN(x · mult)`` (MXFP4 of fp16: a power of two; NVFP4 with torchao's reciprocal rule: any
    fp32, 0 for a zero scale), every finite value in both halves of a word, each multiplier in each word position,
    against ml_dtypes."""
    ptx = _fp4.group_ptx(dtype == ml_dtypes.bfloat16, True, clamp)
    words = _words(dtype, 5)
    mults = [1.0, 2.0**-14, 2.0**24, 2.0**-127, 2.0**127, 0.0, 0.3333333432674408, 1.7e-3, 611.25]
    slots = [_product_slot(np.float32(m)) for m in mults]
    for i in range(len(slots)):
        _check_group(ptx, words, dtype, [slots[(i + k) % len(slots)] for k in range(4)], clamp)


def _product_slot(m32: np.float32) -> Slot:
    return m32, m32, lambda x: (x * m32).astype(np.float32)


def test_ptx_model_against_documented_examples() -> None:
    """The model's instructions on cases whose results the documentation states, so that the model checks the
    blocks against the ISA rather than against my reading of it: CUB's ``PRMT`` example (``0x7531`` picks bytes 1,
    3, 5, 7), the sign-replicating selector nibble, ``lop3``'s LUT operands (0xF0, 0xCC, 0xAA), one rounding in
    ``fma.rn`` (``(1 + 2^-23)(1 − 2^-23) − 1 = −2^-46``, 0 if the product were rounded first), ties to even in
    ``add.rn``, and ``mov.b32 {lo, hi}`` taking the low half first."""
    one = np.ones(1, np.uint32)

    def run(body: str, *args: int | float) -> int:
        vals = [np.float32(a).view(np.uint32) * one if isinstance(a, float) else np.uint32(a) * one for a in args]
        return int(run_ptx("{\n.reg .b32 r;\n.reg .b16 h0, h1;\n" + body + "\n}", vals)[0])

    assert run("prmt.b32 $0, $1, $2, 0x7531;", 0x03020100, 0x07060504) == 0x07050301
    assert run("prmt.b32 $0, $1, $2, 0x000A;", 0x00800000, 0) == 0x000000FF
    for lut, want in ((0xF0, 0x0F), (0xCC, 0x33), (0xAA, 0x55), (0xEA, 0x0F & 0x33 | 0x55)):
        assert run(f"lop3.b32 $0, $1, $2, $3, {lut:#x};", 0x0F, 0x33, 0x55) == want
    assert np.uint32(run("fma.rn.f32 $0, $1, $2, $3;", 1 + 2.0**-23, 1 - 2.0**-23, -1.0)).view(np.float32) == -(
        2.0**-46
    )
    assert np.uint32(run("add.rn.f32 $0, $1, $2;", 2.0**24, 1.0)).view(np.float32) == 2.0**24
    assert run("mov.b32 {h0, h1}, $1;\ncvt.f32.f16 $0, h0;", 0xC0003C00) == np.float32(1.0).view(np.uint32)


_COMPILE_EVERY_VARIANT = """
import itertools
import triton, triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from breccia.triton import _fp4

@triton.jit
def _k(w_ptr, a_ptr, b_ptr, out_ptr, BF16: tl.constexpr, MULT: tl.constexpr, CLAMP: tl.constexpr):
    offs = tl.arange(0, 1024)
    a = tl.load(a_ptr + offs // 8)
    b = tl.load(b_ptr + offs // 8)
    tl.store(out_ptr + offs, _fp4.group_bytes(tl.load(w_ptr + offs), a, b, BF16, MULT, CLAMP))

sig = {"w_ptr": "*i32", "a_ptr": "*fp32", "b_ptr": "*fp32", "out_ptr": "*u8"}
sig |= {"BF16": "constexpr", "MULT": "constexpr", "CLAMP": "constexpr"}
for bf16, mult, clamp in itertools.product((True, False), repeat=3):
    src = ASTSource(_k, sig, {"BF16": bf16, "MULT": mult, "CLAMP": clamp})
    ck = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4, "enable_fp_fusion": False})
    assert ck.asm["cubin"], (bf16, mult, clamp)
print("assembled")
"""


def test_group_ptx_assembles_for_sm90(tmp_path: Path) -> None:
    """Every variant of ``group_ptx`` (bf16 / fp16, quotient / multiplier, clamped or not) through Triton's sm_90
    compiler and ``ptxas``, which need no GPU: what the numpy model cannot see (register declarations and types,
    operand syntax) fails here. A subprocess, because the interpreter (``TRITON_INTERPRET``) replaces the compiler."""
    pytest.importorskip("triton.backends.nvidia")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = tmp_path / "compile_group_ptx.py"  # @triton.jit reads its source from a file
    script.write_text(_COMPILE_EVERY_VARIANT)
    run = subprocess.run(  # eight compiles; the limit turns a compiler that hangs into a failure
        [sys.executable, str(script)], check=False, env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0 and "assembled" in run.stdout, run.stderr[-3000:]
