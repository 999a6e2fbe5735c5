"""The quantize kernel's per-block reciprocal division (``breccia.triton._div``) against ``div.rn.f32``.

On the GPU every finite bf16 and fp16 value is divided by every fp32 significand (divisors in [1, 2)), and by
sampled divisors at both ends of the guarded range; the quotient must equal the correctly rounded one bit for bit
wherever the guard admits the fast path, ``|x| ≥ 2^-100`` and the quotient is a normal number; elsewhere (where
only a signed zero code can come out) it must be tiny with the sign of ``x``, ``x = -0`` included. On CPU the same
three-instruction sequence is checked on a sample, emulated exactly in numpy (the interpreter's ``tl.fma`` is not
fused, so the kernels keep ``div.rn`` there).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")

from breccia._testing import rn32_sum  # noqa: E402
from breccia.triton import _div  # noqa: E402

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="the fast division is compiled only for the GPU")

# below TINY_X, or where the quotient is subnormal, the residual may underflow; the quotient is then < 2^-40, a
# signed zero code in every format, and must only be that small with the sign of x (x = -0 included)
TINY_X = tl.constexpr(2.0**-100)
TINY_Q = tl.constexpr(2.0**-39)
MIN_NORMAL = tl.constexpr(2.0**-126)


@triton.jit
def _check_kernel(x_ptr, nx, d_ptr, bad_ptr, BD: tl.constexpr, BX: tl.constexpr):
    """Counts, for BD divisors against all nx inputs: [exact-required mismatches, small-x violations, pairs
    checked exactly, pairs admitted by the guard]."""
    d = tl.load(d_ptr + tl.program_id(0) * BD + tl.arange(0, BD))[:, None]
    n_bad = 0
    n_small = 0
    n_exact = 0
    n_in = 0
    for start in range(0, nx, BX):
        offs = start + tl.arange(0, BX)
        x = tl.load(x_ptr + offs, mask=offs < nx, other=0.0)[None, :]
        xb = tl.broadcast_to(x, (BD, BX))
        db = tl.broadcast_to(d, (BD, BX))
        dd, y, ok = _div.block_recip(db, tl.abs(xb))
        fast = _div.quotient(xb, db, dd, y, 1, True)
        ref = tl.math.div_rn(xb, db)
        live = ok & ((start + tl.arange(0, BX))[None, :] < nx)
        exact = live & (tl.abs(xb) >= TINY_X) & (tl.abs(ref) >= MIN_NORMAL)
        small = live & ~exact
        differ = fast.to(tl.int32, bitcast=True) != ref.to(tl.int32, bitcast=True)
        sign_off = (fast.to(tl.int32, bitcast=True) < 0) != (xb.to(tl.int32, bitcast=True) < 0)
        n_bad += tl.sum((exact & differ).to(tl.int32))
        n_small += tl.sum((small & ((tl.abs(fast) >= TINY_Q) | sign_off)).to(tl.int32))
        n_exact += tl.sum(exact.to(tl.int32))
        n_in += tl.sum(live.to(tl.int32))
    tl.atomic_add(bad_ptr + 0, n_bad.to(tl.int64))
    tl.atomic_add(bad_ptr + 1, n_small.to(tl.int64))
    tl.atomic_add(bad_ptr + 2, n_exact.to(tl.int64))
    tl.atomic_add(bad_ptr + 3, n_in.to(tl.int64))


def _finite(dtype: torch.dtype) -> torch.Tensor:
    """Every finite value of a 16-bit float dtype, as fp32 on the GPU."""
    bits = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
    v = bits.view(dtype).float()
    return v[torch.isfinite(v)].cuda()


def _run(x: torch.Tensor, d: torch.Tensor) -> list[int]:
    bad = torch.zeros(4, dtype=torch.int64, device="cuda")
    bd = 16
    assert d.numel() % bd == 0
    _check_kernel[(d.numel() // bd,)](x, x.numel(), d, bad, BD=bd, BX=256)
    return [int(v) for v in bad.tolist()]


def _significands(lo_exp: int) -> torch.Tensor:
    """Every fp32 significand, with exponent ``lo_exp``."""
    bits = torch.arange(0, 2**23, dtype=torch.int32, device="cuda") | ((lo_exp + 127) << 23)
    return bits.view(torch.float32)


@gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_every_16bit_input_by_every_divisor_significand(dtype: torch.dtype) -> None:
    bad, small, exact, admitted = _run(_finite(dtype), _significands(0))
    assert (bad, small) == (0, 0), f"{bad} quotients differ from div.rn, {small} tiny ones have the wrong size/sign"
    assert exact > 2**37  # the check really ran over the whole table
    assert admitted >= exact


@gpu
@pytest.mark.parametrize("exp", [-60, -1, 59])
def test_divisors_at_the_ends_of_the_guard(exp: int) -> None:
    g = torch.Generator(device="cuda").manual_seed(exp + 100)
    d = _significands(exp)[torch.randint(0, 2**23, (2**14,), device="cuda", generator=g)]
    x = torch.cat([_finite(torch.bfloat16), _finite(torch.float16)])
    bad, small, exact, _ = _run(x, d)
    assert (bad, small) == (0, 0)
    assert exact > 2**25


@gpu
def test_random_fp32_inputs() -> None:
    g = torch.Generator(device="cuda").manual_seed(5)
    x = torch.randint(-(2**31), 2**31 - 1, (2**20,), device="cuda", dtype=torch.int32, generator=g).view(torch.float32)
    x = x[torch.isfinite(x)].contiguous()
    d = _significands(0)[torch.randint(0, 2**23, (2**12,), device="cuda", generator=g)]
    bad, small, exact, _ = _run(x, d)
    assert (bad, small) == (0, 0)
    assert exact > 2**30


@gpu
def test_infinite_divisor_gives_signed_zero() -> None:
    x = torch.cat([_finite(torch.bfloat16), _finite(torch.float16)])
    d = torch.full((16,), float("inf"), device="cuda")
    bad, small, _, admitted = _run(x, d)
    assert (bad, small) == (0, 0)
    assert admitted == 16 * x.numel()  # every pair went through the fast path's zero branch


# --- CPU: the same sequence, emulated exactly in numpy -------------------------------------------------------


def _fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return rn32_sum(a.astype(np.float64) * b.astype(np.float64), c.astype(np.float64))


def test_fma_emulation_rounds_once() -> None:
    """The emulation must itself round once. Here a·b + c = 1 + 2^-24 + 2^-60 exactly: just past the midpoint
    between 1 and 1 + 2^-23, so the fp32 result is 1 + 2^-23; computed in float64 first, the 2^-60 is lost, the
    sum lands on the midpoint and ties to even (1.0)."""
    a = np.array([1 + 2.0**-12], np.float32)
    b = np.array([2.0**-24 * (1 - 4095 * 2.0**-24)], np.float32)
    c = np.array([1.0], np.float32)
    exact = Fraction(float(a[0])) * Fraction(float(b[0])) + 1
    assert exact == 1 + Fraction(1, 2**24) + Fraction(1, 2**60)
    assert np.float32(float(a[0]) * float(b[0]) + 1.0) == np.float32(1.0)  # the double-rounding trap is real
    assert _fma32(a, b, c)[0] == np.nextafter(np.float32(1), np.float32(2))


def test_reciprocal_division_sequence_on_a_sample() -> None:
    rng = np.random.default_rng(0)
    xs = np.concatenate([(1 + np.arange(128) / 128), [0.0, -0.0, -1.5]]).astype(np.float32)  # every bf16 significand
    dsig = rng.integers(0, 2**23, 2**13).astype(np.uint32)
    d = (dsig | np.uint32(127 << 23)).view(np.float32)
    for scale in (np.float32(1.0), np.float32(0.5)):  # quotients on both sides of a binade edge
        x = (xs[:, None] * scale).astype(np.float32)
        dd = np.broadcast_to(d[None, :], (xs.size, d.size))
        y = np.float32(1) / dd
        q = x * y
        r = _fma32(dd, q, -x)
        fast = _fma32(-r, y, q)
        np.testing.assert_array_equal(fast.view(np.int32), (x / dd).view(np.int32))


@triton.jit
def _by_six_kernel(a_ptr, out_ptr, ref_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    a = tl.load(a_ptr + offs, mask=offs < n, other=0.0)
    tl.store(out_ptr + offs, _div.by_six(a), mask=offs < n)
    tl.store(ref_ptr + offs, tl.math.div_rn(a, tl.full(a.shape, 6.0, tl.float32)), mask=offs < n)


@gpu
@pytest.mark.parametrize("exp", [-100, -1, 0, 1, 99, 127])
def test_by_six_is_div_rn_on_every_significand(exp: int) -> None:
    """NVFP4's block scale ``amax / 6`` (``_div.by_six``) equals ``div.rn`` on every fp32 significand, in binades
    from 2^-100 (the lower end of its proof) to fp32's largest."""
    a = _significands(exp)
    out, ref = torch.empty_like(a), torch.empty_like(a)
    _by_six_kernel[(a.numel() // 1024,)](a, out, ref, a.numel(), BLOCK=1024, enable_fp_fusion=False)
    assert torch.equal(out.view(torch.int32), ref.view(torch.int32))


@gpu
def test_by_six_below_its_range_stays_tiny() -> None:
    """Below 2^-100 the result need not be exact, only below 2^-100 too (an E4M3 scale of zero either way)."""
    bits = torch.arange(0, 0x0D800000, 97, dtype=torch.int32, device="cuda")  # every 97th value below 2^-100
    a = bits.view(torch.float32)
    out, ref = torch.empty_like(a), torch.empty_like(a)
    _by_six_kernel[(-(-a.numel() // 1024),)](a, out, ref, a.numel(), BLOCK=1024, enable_fp_fusion=False)
    assert bool((out >= 0).all()) and bool((out < 2.0**-100).all())


def test_by_six_sequence_on_a_sample() -> None:
    """``_div.by_six``'s three steps, emulated exactly (each rounded once), against IEEE ``a / 6`` on a sample of
    significands in binades from 2^-100 to fp32's top (the GPU tests above take every significand)."""
    rng = np.random.default_rng(2)
    sig = rng.integers(0, 2**23, 2**16).astype(np.uint32)
    y = np.float32(1) / np.float32(6)
    for exp in (-100, -1, 0, 37, 127):
        a = (sig | np.uint32((exp + 127) << 23)).view(np.float32)
        q = a * y
        r = _fma32(q, np.full_like(a, -6.0), a)
        got = _fma32(r, np.full_like(a, y), q)
        np.testing.assert_array_equal(got.view(np.int32), (a / np.float32(6)).view(np.int32))


@triton.jit
def _recip_kernel(d_ptr, out_ptr, ref_ptr, n, STEPS: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    d = tl.load(d_ptr + offs, mask=offs < n, other=1.0)
    tl.store(out_ptr + offs, _div.recip(d, STEPS), mask=offs < n)
    tl.store(ref_ptr + offs, tl.math.div_rn(tl.full(d.shape, 1.0, tl.float32), d), mask=offs < n)


def recip_mismatches(exp: int, steps: int = 2) -> int:
    """How many of the 2^23 divisors with exponent ``exp`` get a ``_div.recip`` other than ``div.rn``'s 1/d."""
    d = _significands(exp)
    out, ref = torch.empty_like(d), torch.empty_like(d)
    _recip_kernel[(d.numel() // 1024,)](d, out, ref, d.numel(), STEPS=steps, BLOCK=1024, enable_fp_fusion=False)
    return int((out.view(torch.int32) != ref.view(torch.int32)).sum())


@gpu
@pytest.mark.parametrize("exp", [-60, -21, -1, 0, 1, 30, 59])
def test_recip_is_div_rn_on_every_significand(exp: int) -> None:
    """The per-block reciprocal (``rcp.approx`` and two Newton steps) over the guarded range's binades."""
    assert recip_mismatches(exp) == 0


@triton.jit
def _by_uniform_kernel(a_ptr, b_ptr, nb, bad_ptr, BLOCK: tl.constexpr):
    """Counts [pairs whose quotient is at least 2^-20 and differs from div.rn, tiny quotients that are not tiny]."""
    a = tl.load(a_ptr + tl.program_id(0) * BLOCK + tl.arange(0, BLOCK))
    n_bad = 0
    n_small = 0
    for i in range(nb):
        b = tl.load(b_ptr + i)
        got = _div.by_uniform(a, b, _div.recip(b, 1))
        ref = tl.math.div_rn(a, tl.full(a.shape, 1.0, tl.float32) * b)
        big = ref >= 2.0**-20
        n_bad += tl.sum((big & (got.to(tl.int32, bitcast=True) != ref.to(tl.int32, bitcast=True))).to(tl.int32))
        n_small += tl.sum((~big & (got >= 2.0**-19)).to(tl.int32))
    tl.atomic_add(bad_ptr + 0, n_bad)
    tl.atomic_add(bad_ptr + 1, n_small)


@gpu
@pytest.mark.parametrize("exp", [-126, -60, -20, 0, 20, 45])
def test_by_uniform_is_div_rn_for_nvfp4_global_scales(exp: int) -> None:
    """NVFP4's ``sbf / g`` in the fast kernel: every significand of ``sbf`` against 64 global scales ``g`` spread
    over the range the kernel admits (``g = RN(ga / 2688)``, ``ga`` in [2^-38, 2^50]); quotients from 2^-20 up must
    equal ``div.rn``'s, smaller ones stay small (they encode as the E4M3 zero either way)."""
    gen = torch.Generator(device="cuda").manual_seed(exp + 200)
    e = torch.randint(-49, 39, (64,), device="cuda", generator=gen)
    b = _significands(0)[torch.randint(0, 2**23, (64,), device="cuda", generator=gen)] * torch.exp2(e.float())
    a = _significands(exp)
    bad = torch.zeros(2, dtype=torch.int32, device="cuda")
    _by_uniform_kernel[(a.numel() // 1024,)](a, b.contiguous(), 64, bad, BLOCK=1024, enable_fp_fusion=False)
    assert bad.tolist() == [0, 0]
