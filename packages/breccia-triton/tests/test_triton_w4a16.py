"""The W4A16 kernel (bf16/fp16 activations × INT4 / NVFP4 weights) against an FP64 product of the dequantized
operands, on CUDA or in the CPU interpreter, and breccia.matmul's routing to it.

Tolerance (relative Frobenius error). The in-register dequantization is exact (see ``_w4a16``), so two roundings
remain: (1) the output cast, whose relative error per element is at most the unit roundoff ``u_out`` (bf16 2^-9,
fp16 2^-11, fp32 2^-24), hence at most ``u_out`` in Frobenius norm too; (2) FP32 accumulation of K products: each
partial sum rounds with relative error ≤ 2^-24, so the error is ≤ K·2^-24·Σ|x·w| per element; with random signs
Σ|x·w| is ~√K × |Σ x·w|, and the errors themselves add like a random walk (√K), so K·2^-24 relative is already
pessimistic; ``8·K·2^-24`` leaves room for the GPU's MMA summation order. A wrong nibble, zero point or scale shows
up as an error of order 1.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
from _w4a16_common import DEVICE, activations, fill_every_code, rel_err, tol, weight

import breccia
from breccia.torch import _mm
from breccia.triton import _w4a16
from breccia.triton._w4a16 import Config, w4a16_matmul

# On a GPU the per-recipe tests pin one tile (tuning compiles a few per key); test_dtypes takes the tuned path.
PIN = Config(16, 64, 64, 2) if DEVICE == "cuda" else None
N, K = 67, 75  # odd N (a half-filled last byte when packed along N), odd K (partial group; packed along K)

INT4 = {
    "sym-fp16-g32": breccia.INT4Scaling(group_size=32),
    "sym-half-bf16-g64": breccia.INT4Scaling(group_size=64, scale_dtype="bf16", symmetric_range="half_range"),
    "asym-uint-bf16-g32": breccia.INT4Scaling(group_size=32, symmetric=False, signed=False, scale_dtype="bf16"),
    "asym-int-fp32-g128": breccia.INT4Scaling(group_size=128, symmetric=False, scale_dtype="fp32"),
    "asym-uint-fp16-chan": breccia.INT4Scaling(group_size=-1, symmetric=False, signed=False),
}
NVFP4 = {
    "1x16": breccia.NVFP4BlockScaling(),
    "1x16-noglobal": breccia.NVFP4BlockScaling(per_tensor_scale=False),
    "16x16": breccia.NVFP4BlockScaling(block_m=16),
}


@pytest.mark.parametrize("form", ["kn", "nk"])
@pytest.mark.parametrize("m", [1, 3, 16, 33])
@pytest.mark.parametrize("name", list(INT4))
def test_int4(form: str, m: int, name: str) -> None:
    w = weight(INT4[name], form, N, K, m)
    x = activations(m, K, torch.bfloat16, m)
    out = w4a16_matmul(x, w, config=PIN)
    assert out is not None and out.shape == (m, N) and out.dtype == torch.bfloat16
    assert rel_err(out, x, w) <= tol(torch.bfloat16, K)


@pytest.mark.parametrize("form", ["kn", "nk"])
@pytest.mark.parametrize("m", [1, 3, 16, 33])
@pytest.mark.parametrize("name", list(NVFP4))
def test_nvfp4(form: str, m: int, name: str) -> None:
    w = weight(NVFP4[name], form, N, K, m)
    x = activations(m, K, torch.float16, m)
    out = w4a16_matmul(x, w, out_dtype=torch.float32, config=PIN)
    assert out is not None and out.shape == (m, N) and out.dtype == torch.float32
    assert rel_err(out, x, w) <= tol(torch.float32, K)


_CODES = {
    "int4-sym": breccia.INT4Scaling(group_size=32),
    "int4-asym-uint": breccia.INT4Scaling(group_size=32, symmetric=False, signed=False),
    "int4-asym-int": breccia.INT4Scaling(group_size=32, symmetric=False, scale_dtype="bf16"),
    "nvfp4-1x16": breccia.NVFP4BlockScaling(per_tensor_scale=False),
    "nvfp4-16x16": breccia.NVFP4BlockScaling(block_m=16, per_tensor_scale=False),
}


@pytest.mark.parametrize("x_dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("form", ["kn", "nk"])
@pytest.mark.parametrize("k", [32, 30])
@pytest.mark.parametrize("name", list(_CODES))
def test_every_code_decodes_exactly(name: str, k: int, form: str, x_dtype: torch.dtype) -> None:
    """Every byte value (both nibbles), every E4M3 scale code (subnormals, zero, negative and NaN included) and zero
    points across the 4-bit range, read through the kernel with ``x`` = the identity: each output is one product
    ``1 · w``, so the FP32 result must equal ``breccia.dequantize`` bit for bit (on a GPU this checks the packed PTX
    decode; in the interpreter the portable one). ``(N, K)`` rows of whole 32-bit words (K = 32) take the word
    kernel, K = 30 the byte kernel. A NaN weight makes its whole output column NaN (0 · NaN)."""
    recipe, n = _CODES[name], 128  # ≥ 1920 code bytes (each value ≥ 7 times), 256 NVFP4 scales (1×16)
    w = weight(recipe, form, n, k, 0)
    fill_every_code(w, recipe)
    x = torch.eye(k, dtype=x_dtype, device=DEVICE)
    out = w4a16_matmul(x, w, out_dtype=torch.float32, config=PIN)
    assert out is not None
    want = breccia.dequantize(w).float()
    got = out if form == "kn" else out.t()
    if form == "kn":
        want[:, want.isnan().any(0)] = float("nan")
    else:
        want[want.isnan().any(1)] = float("nan")
    assert int(want.isnan().sum()) < want.numel() // 4  # the NaN codes poison a few columns, not the test
    torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)


def test_word_kernel_takes_whole_word_rows() -> None:
    """``(N, K)`` weights with K a multiple of 8 are read as int32 words; odd K and ``(K, N)`` weights as bytes."""
    recipe = INT4["sym-fp16-g32"]
    assert _w4a16._plan(weight(recipe, "nk", 16, 64, 0)).words is not None  # type: ignore[union-attr]
    assert _w4a16._plan(weight(recipe, "nk", 16, 60, 0)).words is None  # type: ignore[union-attr]
    assert _w4a16._plan(weight(recipe, "kn", 16, 64, 0)).words is None  # type: ignore[union-attr]


@pytest.mark.skipif(DEVICE != "cuda", reason="the interpreter has no inline PTX: both paths are the portable one")
@pytest.mark.parametrize("form", ["kn", "nk"])
@pytest.mark.parametrize("name", ["sym-fp16-g32", "asym-uint-bf16-g32", "asym-int-fp32-g128", "nvfp4"])
def test_packed_decode_matches_portable(monkeypatch: pytest.MonkeyPatch, name: str, form: str) -> None:
    """The packed PTX decode and the portable fp32 one give the same weights, so the same products bit for bit
    (NVFP4's 2^-26 offset is a power of two: it scales every partial sum exactly)."""
    recipe = NVFP4["1x16"] if name == "nvfp4" else INT4[name]
    w = weight(recipe, form, 300, 512, 2)
    x = activations(13, 512, torch.bfloat16, 2)
    monkeypatch.setattr(_w4a16, "MMA", False)  # the Triton kernels (the fragment kernel sums in another order)
    fast = w4a16_matmul(x, w, out_dtype=torch.float32)
    monkeypatch.setattr(_w4a16, "ASM", False)
    slow = w4a16_matmul(x, w, out_dtype=torch.float32)
    assert fast is not None and slow is not None and torch.equal(fast, slow)


@pytest.mark.parametrize("x_dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_dtypes(x_dtype: torch.dtype, out_dtype: torch.dtype) -> None:
    w = weight(INT4["asym-uint-bf16-g32"], "kn", N, K, 7)
    x = activations(5, K, x_dtype, 7)
    out = w4a16_matmul(x, w, out_dtype=out_dtype)
    assert out is not None and out.dtype == out_dtype
    assert rel_err(out, x, w) <= tol(out_dtype, K)


# the word kernel reads num_stages (≤ 3) as how many steps ahead it loads the weight words
_SMALL = [
    Config(16, 32, 32, 1),
    Config(16, 32, 32, 3, num_stages=1),
    Config(16, 32, 32, 2, num_stages=2),
    Config(32, 64, 64, 4),
    Config(64, 64, 32, 3, num_warps=8),
]
if DEVICE == "cuda":
    _SMALL += [Config(16, 128, 128, 2), Config(16, 256, 128, 8, num_warps=8)]


@pytest.mark.parametrize("config", _SMALL, ids=lambda c: f"bm{c.BM}-bn{c.BN}-bk{c.BK}-s{c.SPLIT}-st{c.num_stages}")
@pytest.mark.parametrize("form", ["kn", "nk"])
def test_tiles_and_splits(config: Config, form: str) -> None:
    """Every tile shape and K split gives the same product, and a split run repeats bit for bit (fixed order)."""
    k = 176  # several K tiles, a partial last group of 16
    for recipe in (INT4["sym-fp16-g32"], NVFP4["1x16"]):
        w = weight(recipe, form, 70, k, 3)
        x = activations(20, k, torch.bfloat16, 3)
        out = w4a16_matmul(x, w, out_dtype=torch.float32, config=config)
        assert out is not None
        assert rel_err(out, x, w) <= tol(torch.float32, k)
        if config.SPLIT > 1:
            again = w4a16_matmul(x, w, out_dtype=torch.float32, config=config)
            assert again is not None and torch.equal(out, again)


@pytest.mark.parametrize("form", ["kn", "nk"])
def test_whole_tiles(form: str) -> None:
    """N and K multiples of the tile: the kernel's unmasked load path."""
    cfg = Config(16, 32, 32, 2) if DEVICE == "cpu" else Config(16, 64, 64, 2)
    for recipe in (INT4["asym-uint-bf16-g32"], NVFP4["1x16"]):
        w = weight(recipe, form, 64, 128, 9)
        x = activations(3, 128, torch.bfloat16, 9)
        out = w4a16_matmul(x, w, out_dtype=torch.float32, config=cfg)
        assert out is not None
        assert rel_err(out, x, w) <= tol(torch.float32, 128)


def test_batched_and_vector_activations() -> None:
    w = weight(NVFP4["1x16"], "kn", N, K, 11)
    x = activations(6, K, torch.bfloat16, 11)
    out3 = w4a16_matmul(x.reshape(2, 3, K), w)
    out2 = w4a16_matmul(x, w)
    out1 = w4a16_matmul(x[4], w)
    assert out3 is not None and out2 is not None and out1 is not None
    assert out3.shape == (2, 3, N) and out1.shape == (N,)
    assert torch.equal(out3.reshape(6, N), out2) and torch.equal(out1, out2[4])


def test_unsupported_returns_none() -> None:
    w = weight(INT4["sym-fp16-g32"], "kn", N, K, 5)
    assert w4a16_matmul(activations(2, K, torch.float32, 5), w) is None  # fp32 activations: not W4A16
    assert (
        w4a16_matmul(activations(2, K, torch.bfloat16, 5), weight(breccia.INT4Scaling(group_size=8), "kn", N, K, 5))
        is None
    )
    assert (
        w4a16_matmul(activations(2, K, torch.bfloat16, 5), weight(breccia.MXFP4BlockScaling(), "kn", N, 64, 5)) is None
    )
    affine = breccia.INT4Scaling(group_size=32, symmetric=False, signed=False, zero_point_domain="float")
    assert w4a16_matmul(activations(2, K, torch.bfloat16, 5), weight(affine, "kn", N, K, 5)) is None


def test_mismatched_k_is_refused() -> None:
    w = weight(INT4["sym-fp16-g32"], "kn", N, K, 5)
    with pytest.raises(breccia.ShapeError, match="x has K=74"):
        w4a16_matmul(activations(2, K - 1, torch.bfloat16, 5), w)


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Count calls that reach the kernel through breccia.matmul (the real kernel runs; only calls are recorded)."""
    calls: list[tuple[int, ...]] = []
    real = _w4a16.w4a16_matmul

    def spy(x: Any, w: Any, **kwargs: Any) -> Any:
        calls.append(tuple(x.shape))
        return real(x, w, **kwargs)

    monkeypatch.setenv("BRECCIA_TRITON", "1")
    monkeypatch.setattr(_w4a16, "w4a16_matmul", spy)
    _mm._triton.cache_clear()
    yield calls
    _mm._triton.cache_clear()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="routing applies to CUDA tensors")
@pytest.mark.parametrize("name", ["sym-fp16-g32", "asym-uint-bf16-g32", "nvfp4"])
def test_cuda_matmul_uses_the_kernel(routed: list[tuple[int, ...]], name: str) -> None:
    recipe = NVFP4["1x16"] if name == "nvfp4" else INT4[name]
    w = weight(recipe, "kn", 256, 512, 1)
    x = activations(4, 512, torch.bfloat16, 1)
    out = breccia.matmul(x, w, out_dtype=torch.bfloat16)
    assert routed == [(4, 512)]
    assert rel_err(out, x, w) <= tol(torch.bfloat16, 512)
    breccia.matmul(x.float(), w)  # fp32 activations: not W4A16, dequantized instead
    breccia.matmul(x, weight(recipe, "nk", 512, 512, 1))  # (K, N) blocked along N: not along K, not routed
    assert len(routed) == 1


def test_cpu_tensors_stay_native(routed: list[tuple[int, ...]]) -> None:
    w = breccia.cast(torch.randn(64, 32), breccia.INT4Scaling(group_size=32), axis=0)
    out = breccia.matmul(torch.randn(2, 64).bfloat16(), w)
    assert routed == [] and out.shape == (2, 32)


def test_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRECCIA_TRITON", "0")
    _mm._triton.cache_clear()
    try:
        assert _mm._triton_w4a16() is None
    finally:
        _mm._triton.cache_clear()


@pytest.mark.parametrize(("m", "mt", "k"), [(16, 16, 512), (9, 16, 384), (1, 16, 128), (3, 8, 256), (8, 8, 1152)])
def test_x_permutation(m: int, mt: int, k: int) -> None:
    """The fragment kernel's x order (``_w4a16_xperm``, a Triton kernel: the interpreter runs it on CPU): per 128-wide
    chunk, 16-byte column q, token, lane t, the 8 values ``x[token, 128·chunk + 32·t + 8·q + e]``; tokens past M
    repeat token M − 1. Written out here index by index."""
    from breccia.triton._w4a16_xperm import permute_x

    x = activations(m, k, torch.bfloat16, m)
    got = permute_x(x, mt).cpu()
    assert got.shape == (k // 128, 4, mt, 4, 8)
    xc = x.cpu()
    for chunk, q, tok, t in itertools.product(range(k // 128), range(4), range(mt), range(4)):
        col = 128 * chunk + 32 * t + 8 * q
        assert torch.equal(got[chunk, q, tok, t], xc[min(tok, m - 1), col : col + 8])
