"""The Triton FP8 GEMMs against an FP64 product of the dequantized operands (on CUDA, or the CPU interpreter)."""

from __future__ import annotations

import pytest
import torch

import breccia
from breccia.triton._gemm import _SMALL_M, scaled_gemm

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# FP32 accumulation of FP8 products (Hopper tensor cores keep ~14 bits per 128-K block before promotion)
TOL = 5e-4 if DEVICE == "cuda" else 1e-5
SHAPES = [(33, 300, 70), (128, 256, 128), (5, 128, 260), (1, 1000, 17)]


def _rel_err(out: torch.Tensor, a: breccia.ScaledTensor, b: breccia.ScaledTensor) -> float:
    ref = breccia.dequantize(a).double() @ breccia.dequantize(b).double()
    return float(torch.linalg.norm(out.double() - ref) / torch.linalg.norm(ref))


def _xw(m: int, k: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g) * torch.rand(m, 1, generator=g) * 4  # rows of different magnitude
    w = torch.randn(n, k, generator=g) * 0.05  # weights stored (N, K), as a Linear holds them
    x[0, : min(k, 7)] *= 50  # an outlier block
    return x.to(DEVICE), w.to(DEVICE)


_TILE = {"BM": 64, "BN": 64, "GROUP_M": 8} if DEVICE == "cuda" else {"BM": 16, "BN": 32, "GROUP_M": 2}
PIPES = [{**_TILE, "PIPE": p} for p in (0, 1)]  # both blockwise loop variants, pinned (no tuning sweep per test)


@pytest.mark.parametrize(("m", "k", "n"), SHAPES)
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("config", PIPES, ids=lambda c: "tuned" if c is None else f"pipe{c['PIPE']}")
def test_blockwise_1x128_by_128x128(m: int, k: int, n: int, out_dtype: torch.dtype, config: dict | None) -> None:
    x, w = _xw(m, k, n, 0)
    a = breccia.cast(x, breccia.Float8BlockScaling())
    wt = breccia.cast(w, breccia.Float8BlockScaling(block_m=128))  # (N, K) blocks; b = its transpose
    b = breccia.cast(w.t(), breccia.Float8BlockScaling(block_m=128), axis=-2)  # the (K, N) operand itself
    out = scaled_gemm(a.data, a.scale, wt.data.t(), wt.scale.t(), "block", out_dtype, config=config)  # K-major view
    assert out.dtype == out_dtype and out.shape == (m, n)
    assert _rel_err(out, a, b) < (TOL if out_dtype == torch.float32 else 4e-3)
    out2 = scaled_gemm(a.data, a.scale, b.data.contiguous(), b.scale, "block", torch.float32, config=config)
    assert _rel_err(out2, a, b) < TOL


@pytest.mark.parametrize(("m", "k", "n"), SHAPES)
@pytest.mark.parametrize("fmt", ["E4M3", "E5M2"])
def test_tensorwise_and_rowwise(m: int, k: int, n: int, fmt: str) -> None:
    x, w = _xw(m, k, n, 1)
    r = breccia.Float8CurrentScaling(fp8_format=fmt)
    a, b = breccia.cast(x, r), breccia.cast(w.t(), r)
    pin = {**_TILE, "PIPE": 0}
    assert _rel_err(scaled_gemm(a.data, a.scale, b.data, b.scale, "tensor", torch.float32, config=pin), a, b) < TOL
    a = breccia.cast(x, r, layout=breccia.PerChannel(-1))
    b = breccia.cast(w.t(), r, layout=breccia.PerChannel(0))
    assert _rel_err(scaled_gemm(a.data, a.scale, b.data, b.scale, "row", torch.float32, config=pin), a, b) < TOL


@pytest.mark.parametrize("mode", ["tensor", "block"])
def test_default_path(mode: str) -> None:
    """What callers get without ``config``: autotuned on a GPU, the interpreter's pinned tile on CPU."""
    x, w = _xw(70, 384, 200, 2)
    r = breccia.Float8BlockScaling() if mode == "block" else breccia.Float8CurrentScaling()
    a = breccia.cast(x, r)
    b = breccia.cast(w.t(), breccia.Float8BlockScaling(block_m=128) if mode == "block" else r, axis=-2)
    assert _rel_err(scaled_gemm(a.data, a.scale, b.data, b.scale, mode, torch.float32), a, b) < TOL


def test_mismatched_k_is_refused() -> None:
    a = breccia.cast(torch.randn(4, 128, device=DEVICE), breccia.Float8CurrentScaling())
    with pytest.raises(breccia.ShapeError, match=r"K \(a.s last axis, b.s first\) must agree"):
        scaled_gemm(a.data, a.scale, a.data, a.scale, "tensor", torch.float32)


# shapes whose operands TMA descriptors can address (K and the fp32 output rows 16-byte multiples); M and N still
# leave partial tiles, which the descriptors zero-fill on load and clip on store
TMA_SHAPES = [(128, 256, 128), (5, 128, 260), (70, 384, 200), (257, 640, 136)]


def _tma_operands(m: int, k: int, n: int, mode: str) -> tuple[breccia.ScaledTensor, ...]:
    """``(a, b, w)``: FP8 ``a`` (M, K), the ``(K, N)`` operand ``b`` and the same bytes as the ``(N, K)`` weight
    ``w`` whose transposed view the TMA kernel reads."""
    x, w = _xw(m, k, n, 3)
    if mode == "block":
        a = breccia.cast(x, breccia.Float8BlockScaling())
        wq = breccia.cast(w, breccia.Float8BlockScaling(block_m=128))
        b = breccia.cast(w.t(), breccia.Float8BlockScaling(block_m=128), axis=-2)
        return a, b, wq
    r = breccia.Float8CurrentScaling()
    row = mode == "row"
    a = breccia.cast(x, r, layout=breccia.PerChannel(-1) if row else None)
    wq = breccia.cast(w, r, layout=breccia.PerChannel(-1) if row else None)  # per output channel of (N, K)
    b = breccia.cast(w.t(), r, layout=breccia.PerChannel(0) if row else None)  # the same bytes, (K, N)
    return a, b, wq


def _weight_args(wq: breccia.ScaledTensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    return wq.data.t(), (wq.scale.t() if mode == "block" else wq.scale)


@pytest.mark.parametrize(("m", "k", "n"), TMA_SHAPES)
@pytest.mark.parametrize("mode", ["tensor", "row", "block"])
def test_tma_kernel(m: int, k: int, n: int, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from breccia.triton import _gemm_tma

    calls: list[object] = []
    real = _gemm_tma.gemm_tma
    monkeypatch.setattr(_gemm_tma, "gemm_tma", lambda *a: calls.append(a[-1]) or real(*a))
    a, b, wq = _tma_operands(m, k, n, mode)
    bd, bs = _weight_args(wq, mode)
    assert _gemm_tma.applies(a.data, bd, torch.float32)
    out = scaled_gemm(a.data, a.scale, bd, bs, mode, torch.float32, impl="tma")
    assert calls, "the TMA kernel did not run"
    assert not torch.isnan(out).any()
    assert _rel_err(out, a, b) < TOL
    ptr = scaled_gemm(a.data, a.scale, bd, bs, mode, torch.float32, impl="ptr", config={**_TILE, "PIPE": 0})
    assert _rel_err(ptr, a, b) < TOL


def _tma_config_names() -> list[str]:
    from breccia.triton import _gemm_tma

    return list(_gemm_tma.CONFIGS)


@pytest.mark.parametrize("name", _tma_config_names())
@pytest.mark.parametrize("mode", ["tensor", "row", "block"])
def test_every_tma_config(name: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each named config of the persistent kernel, forced, on partial tiles in M and N, into fp32 and into bf16
    outputs poisoned with NaN."""
    from breccia.triton import _gemm_tma

    monkeypatch.setattr(_gemm_tma, "FORCE", _gemm_tma.CONFIGS[name])
    m, k, n = (300, 384, 264) if DEVICE == "cuda" else (70, 256, 136)
    a, b, wq = _tma_operands(m, k, n, mode)
    bd, bs = _weight_args(wq, mode)
    for out_dtype, tol in ((torch.float32, TOL), (torch.bfloat16, 4e-3)):
        out = scaled_gemm(a.data, a.scale, bd, bs, mode, out_dtype, impl="tma")
        assert not torch.isnan(out).any()
        assert _rel_err(out, a, b) < tol


def test_tma_refuses_what_descriptors_cannot_address() -> None:
    from breccia.triton import _gemm_tma

    a = breccia.cast(torch.randn(8, 300, device=DEVICE), breccia.Float8CurrentScaling())  # K = 300 bytes per row
    b = breccia.cast(torch.randn(300, 64, device=DEVICE), breccia.Float8CurrentScaling())  # row-major (K, N)
    assert not _gemm_tma.applies(a.data, b.data, torch.float32)
    with pytest.raises(breccia.ShapeError, match="cannot be TMA descriptors"):
        scaled_gemm(a.data, a.scale, b.data, b.scale, "tensor", torch.float32, impl="tma")
    out = scaled_gemm(a.data, a.scale, b.data, b.scale, "tensor", torch.float32)  # auto: the pointer kernel
    assert out.shape == (8, 64)


@pytest.mark.parametrize("tile", _SMALL_M, ids=lambda t: "bm{}-bn{}-w{}-s{}".format(*t))
@pytest.mark.parametrize("mode", ["tensor", "block"])
def test_every_small_m_tile(tile: tuple[int, int, int, int], mode: str) -> None:
    """Each tile the autotuner may pick for M ≤ 128, pinned, both loop variants (the tuner keeps the fastest)."""
    bm, bn, warps, stages = tile
    x, w = _xw(70, 384, 200, 3)
    r = breccia.Float8BlockScaling() if mode == "block" else breccia.Float8CurrentScaling()
    a = breccia.cast(x, r)
    b = breccia.cast(w.t(), breccia.Float8BlockScaling(block_m=128) if mode == "block" else r, axis=-2)
    for pipe in (0, 1):
        cfg = {"BM": bm, "BN": bn, "GROUP_M": 8, "PIPE": pipe, "num_warps": warps, "num_stages": stages}
        assert _rel_err(scaled_gemm(a.data, a.scale, b.data, b.scale, mode, torch.float32, config=cfg), a, b) < TOL


@pytest.mark.parametrize("split", [2, 3, 4])
@pytest.mark.parametrize("mode", ["tensor", "row", "block"])
def test_split_k(split: int, mode: str) -> None:
    """K split over programs whose partials the last one to finish adds in slot order: within tolerance, bitwise
    the same on a second run (the order of arrival must not matter), counters back to zero for the next call, and
    K blocks that split unevenly (5 blocks over 2, 3 or 4 programs, over 4 with an empty last run; the last block a
    partial one). Block mode also from M-major activation scales (the layout cuBLAS takes; the kernel loads them a
    K block ahead, never past the run): the same bits."""
    from breccia.triton import _gemm

    m, k, n = 70, 600, 200
    a, b, wq = _tma_operands(m, k, n, mode)
    bd, bs = _weight_args(wq, mode)
    cfg = {**_TILE, "PIPE": 0, "SPLIT": split}
    if DEVICE == "cuda":
        cfg.update(num_warps=4, num_stages=3)
    out = scaled_gemm(a.data, a.scale, bd, bs, mode, torch.float32, config=cfg, impl="ptr")
    assert not torch.isnan(out).any()
    assert _rel_err(out, a, b) < TOL
    again = scaled_gemm(a.data, a.scale, bd, bs, mode, torch.float32, config=cfg, impl="ptr")
    assert torch.equal(out, again)
    assert all(int(c.count_nonzero()) == 0 for c in _gemm._COUNTERS.values())
    if mode == "block":
        m_major = a.scale.t().contiguous().t()
        assert m_major.stride(0) == 1
        out_mm = scaled_gemm(a.data, m_major, bd, bs, mode, torch.float32, config=cfg, impl="ptr")
        assert torch.equal(out_mm, out)
    whole = scaled_gemm(a.data, a.scale, bd, bs, mode, torch.float32, config={**cfg, "SPLIT": 1}, impl="ptr")
    assert float((out - whole).abs().max()) <= 1e-5 * float(whole.abs().max())  # only the sum's grouping differs


@pytest.mark.skipif(DEVICE != "cuda", reason="the interpreter runs programs one at a time: no race to provoke")
def test_split_k_under_concurrency() -> None:
    """Many launches of a split GEMM whose programs finish in a different order each time: the fix-up's ordering
    (partials written, then counted in; the last arrival reads them) must give the same bits every time."""
    from breccia.triton import _gemm

    m, k, n = 128, 2304, 1024  # 64 tiles of 64×32, each split over 3 programs
    a, b, wq = _tma_operands(m, k, n, "block")
    bd, bs = _weight_args(wq, "block")
    cfg = {"BM": 64, "BN": 32, "GROUP_M": 8, "PIPE": 0, "SPLIT": 3, "num_warps": 4, "num_stages": 4}
    first = scaled_gemm(a.data, a.scale, bd, bs, "block", torch.float32, config=cfg, impl="ptr")
    outs = [scaled_gemm(a.data, a.scale, bd, bs, "block", torch.float32, config=cfg, impl="ptr") for _ in range(200)]
    assert all(torch.equal(o, first) for o in outs)
    assert all(int(c.count_nonzero()) == 0 for c in _gemm._COUNTERS.values())
    assert _rel_err(first, a, b) < TOL


def test_split_k_refuses_a_pipelined_loop() -> None:
    a = breccia.cast(torch.randn(4, 256, device=DEVICE), breccia.Float8BlockScaling())
    b = breccia.cast(torch.randn(256, 64, device=DEVICE), breccia.Float8BlockScaling(block_m=128), axis=-2)
    with pytest.raises(breccia.RecipeError, match="SPLIT must be 1-4, and 1 with PIPE=1"):
        scaled_gemm(a.data, a.scale, b.data, b.scale, "block", torch.float32, config={**_TILE, "PIPE": 1, "SPLIT": 2})


def test_unknown_mode_or_impl_is_refused() -> None:
    a = torch.zeros(4, 128, dtype=torch.float8_e4m3fn, device=DEVICE)
    b = torch.zeros(128, 8, dtype=torch.float8_e4m3fn, device=DEVICE)
    one = torch.ones((), device=DEVICE)
    with pytest.raises(breccia.RecipeError, match=r"mode='blocks'; expected one of 'tensor', 'row', 'block'"):
        scaled_gemm(a, one, b, one, "blocks", torch.bfloat16)
    with pytest.raises(breccia.RecipeError, match=r"impl='triton'; expected one of 'auto', 'ws', 'tma', 'ptr'"):
        scaled_gemm(a, one, b, one, "tensor", torch.bfloat16, impl="triton")
