"""``_fp4.e2m1_pair_bytes``, the E2M1 pair encoder of the NVFP4 and MXFP4 (fp16/fp32) kernels, against ml_dtypes'
``float4_e2m1fn`` on dense sets of fp32 values: every fp32 value from 2^-3 to 8 (every rounding boundary of the
E2M1 grid lies there), and every 251st bit pattern over the whole finite range, with both signs and in both nibbles.
``_fp4.pair_signs`` (the signs taken from 16-bit input words) with ``_fp4.e2m1_pair_codes``: every finite fp16 and
bf16 value in either half of a word. The kernels run under ``TRITON_INTERPRET=1`` in CI (the same functions the GPU
kernels call; ``pair_signs`` through its shift form) and natively on a GPU (its PTX); the PTX itself is also run
here through a model of its four opcodes, so a wrong permute selector fails without a GPU.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")

from breccia.triton import _fp4  # noqa: E402
from breccia.triton._codes import _split_pairs  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BLOCK = 1 << 20


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
def _signed_kernel(w_ptr, out_ptr, n, scale, IN_KIND: tl.constexpr, NATIVE: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    w = tl.load(w_ptr + offs, mask=m, other=0)
    signs = _fp4.pair_signs(w, NATIVE)
    x0, x1 = _split_pairs(w, IN_KIND)
    packed = _fp4.e2m1_pair_codes(x0 * scale, x1 * scale, True).to(tl.uint8) | signs
    tl.store(out_ptr + offs, packed, mask=m)


@pytest.mark.parametrize("scale", [1.0, 2.0**-8], ids=["x1", "x2^-8"])
@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16], ids=["fp16", "bf16"])
def test_signs_from_the_input_words(dtype: type, scale: float) -> None:
    """Every finite 16-bit value (±0, subnormals, values that round to ±0 or saturate at ±6) as the low and as the
    high element of a word, beside a shuffled, sign-flipped partner: the byte equals ml_dtypes' codes of ``x · scale``
    (a power of two, so exact) with the sign taken from the words, four bytes per register on the GPU."""
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    x = bits.view(dtype)
    bits = bits[np.isfinite(x.astype(np.float32))]
    other = np.random.default_rng(7).permutation(bits) ^ np.uint16(0x8000)
    for lo, hi in ((bits, other), (other, bits)):
        words = (lo.astype(np.uint32) | (hi.astype(np.uint32) << 16)).view(np.int32)
        out = torch.empty(words.size, dtype=torch.uint8, device=DEVICE)
        _signed_kernel[(-(-words.size // 1024),)](
            torch.from_numpy(words).to(DEVICE), out, words.size, scale, IN_KIND=1 if dtype == np.float16 else 2,
            NATIVE=DEVICE.type == "cuda", BLOCK=1024,
        )  # fmt: skip
        v0 = lo.view(dtype).astype(np.float32) * np.float32(scale)
        v1 = hi.view(dtype).astype(np.float32) * np.float32(scale)
        want = _signed(v0) | (_signed(v1) << 4)
        got = out.cpu().numpy()
        bad = np.nonzero(got != want)[0]
        assert bad.size == 0, f"{bad.size} bytes differ, first words {words[bad[0]]:#010x}: {got[bad[0]]:#04x}"


def _signed(v: np.ndarray) -> np.ndarray:
    """ml_dtypes' E2M1 code (sign included) of ``v`` clamped to ±6."""
    return np.clip(v, -6.0, 6.0).astype(ml_dtypes.float4_e2m1fn).view(np.uint8) & 0xF


def _run_ptx(ptx: str, args: list[np.ndarray]) -> np.ndarray:
    """A model of the PTX block ``ptx`` over uint32 arrays ($1… = ``args``; returns $0), for the four opcodes the
    sign gather uses, as the PTX ISA defines them: ``prmt.b32`` (default mode: selector nibble ``i`` picks byte
    ``n & 7`` of ``{b, a}``, and with ``n & 8`` that byte's sign bit replicated), ``and.b32`` and ``lop3.b32``."""
    regs: dict[str, np.ndarray] = {f"${i + 1}": a.astype(np.uint32) for i, a in enumerate(args)}

    def val(tok: str) -> np.ndarray:
        return np.full(args[0].shape, int(tok, 16), np.uint32) if tok.startswith("0x") else regs[tok]

    for line in ptx.strip().strip("{}").splitlines():
        line = line.strip().rstrip(";")
        if not line or line.startswith(".reg"):
            continue
        op, rest = line.split(None, 1)
        d, *src = [t.strip() for t in rest.split(",")]
        if op == "prmt.b32":
            a, b, sel = val(src[0]), val(src[1]), int(src[2], 16)
            both = [(a >> (8 * k)) & 0xFF for k in range(4)] + [(b >> (8 * k)) & 0xFF for k in range(4)]
            out = np.zeros_like(a)
            for i in range(4):
                n = (sel >> (4 * i)) & 0xF
                byte = both[n & 7]
                if n & 8:
                    byte = np.where(byte & 0x80, 0xFF, 0).astype(np.uint32)
                out |= byte << (8 * i)
            regs[d] = out
        elif op == "and.b32":
            regs[d] = val(src[0]) & val(src[1])
        elif op == "lop3.b32":
            a, b, c, lut = val(src[0]), val(src[1]), val(src[2]), int(src[3], 16)
            out = np.zeros_like(a)
            for k in range(8):  # LUT bit k is f(a, b, c) where a, b, c are bits of 0xF0, 0xCC, 0xAA's index k
                sel = (a if k & 4 else ~a) & (b if k & 2 else ~b) & (c if k & 1 else ~c)
                out |= np.where((lut >> k) & 1, sel, 0).astype(np.uint32)
            regs[d] = out
        else:
            raise AssertionError(f"the model has no {op}")
    return regs["$0"]


def test_sign_ptx_places_every_sign() -> None:
    """The PTX of ``pair_signs``, through the model above, on random words: byte k of the result holds word k's low
    element's sign at bit 3 and its high element's at bit 7, and nothing else."""
    rng = np.random.default_rng(11)
    words = [rng.integers(0, 2**32, 4096, dtype=np.uint64).astype(np.uint32) for _ in range(4)]
    got = _run_ptx(_fp4._SIGNS.value, words)
    want = np.zeros(4096, np.uint32)
    for k, w in enumerate(words):
        want |= (((w >> 15) & 1) << (8 * k + 3)) | (((w >> 31) & 1) << (8 * k + 7))
    assert np.array_equal(got, want)
