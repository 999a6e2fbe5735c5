"""breccia.cast on a CUDA tensor goes through breccia-triton when it is installed (bytes unchanged); CPU tensors,
unsupported layouts and ``BRECCIA_TRITON=0`` keep breccia-torch's own driver."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import breccia
from breccia.torch import _backend
from breccia.triton import _cast


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    real = _cast.cast

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setenv("BRECCIA_TRITON", "1")
    monkeypatch.setattr(_cast, "cast", spy)
    _backend._triton_cast.cache_clear()
    yield calls
    _backend._triton_cast.cache_clear()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="routing applies to CUDA tensors")
def test_cuda_casts_use_the_kernel(routed: list[Any]) -> None:
    x = torch.randn(64, 300, device="cuda")
    for recipe in (breccia.MXFP8BlockScaling(), breccia.NVFP4BlockScaling(), breccia.Float8BlockScaling()):
        st = breccia.cast(x, recipe)
        native = _backend.BACKEND.cast_native(x, recipe, recipe.default_layout(-1), nonfinite="raise", history=None)
        assert torch.equal(st.data.view(torch.uint8), native.data.view(torch.uint8))
        assert torch.equal(st.scale.view(torch.uint8), native.scale.view(torch.uint8))
    assert len(routed) == 3
    with pytest.raises(breccia.NonFiniteError):  # the kernel's fallback reaches the native driver, not itself
        breccia.cast(torch.full((4, 64), float("nan"), device="cuda"), breccia.MXFP8BlockScaling())


def test_cpu_tensors_stay_native(routed: list[Any]) -> None:
    breccia.cast(torch.randn(8, 64), breccia.MXFP8BlockScaling())
    assert routed == []


def test_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRECCIA_TRITON", "0")
    _backend._triton_cast.cache_clear()
    try:
        assert _backend._triton_cast() is None
    finally:
        _backend._triton_cast.cache_clear()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="routing applies to CUDA tensors")
@pytest.mark.parametrize(("k", "n", "fmt"), [(200, 256, "E4M3"), (256, 136, "E4M3"), (256, 256, "E5M2")])
def test_blockwise_cublas_refuses_goes_to_triton(k: int, n: int, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """DeepSeek 1×128 · 128×128 with K or N off a multiple of 128 (or E5M2): cuBLAS has no kernel, the Triton GEMM
    computes it (before, these dequantized), within the FP8 GEMM tolerance of an FP64 product."""
    from breccia.torch import _mm
    from breccia.triton import _gemm

    calls: list[str] = []
    real = _gemm.scaled_gemm
    monkeypatch.setattr(_gemm, "scaled_gemm", lambda *a, **kw: calls.append(a[4]) or real(*a, **kw))
    monkeypatch.setenv("BRECCIA_TRITON", "1")
    _mm._triton.cache_clear()
    try:
        x, w = torch.randn(96, k, device="cuda"), torch.randn(k, n, device="cuda") * 0.05
        a = breccia.cast(x, breccia.Float8BlockScaling(fp8_format=fmt))
        b = breccia.cast(w, breccia.Float8BlockScaling(fp8_format=fmt, block_m=128), axis=-2)
        out = breccia.matmul(a, b)
    finally:
        _mm._triton.cache_clear()
    ref = breccia.dequantize(a).double() @ breccia.dequantize(b).double()
    assert calls == ["block"]
    assert float(torch.linalg.norm(out.double() - ref) / torch.linalg.norm(ref)) < 5e-4


@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0),
    reason="the warp-specialised blockwise GEMM runs on sm_90 only",
)
@pytest.mark.parametrize(("min_flops", "expected"), [(0, True), (None, False)])
def test_large_blockwise_on_sm90_goes_to_the_ws_kernel(
    min_flops: int | None, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shapes cuBLAS takes: large calls (threshold lowered to 0 here) go to the warp-specialised kernel with ``b``
    K-major; small ones (the real threshold) stay on cuBLAS. Both within the FP8 GEMM tolerance."""
    from breccia.torch import _mm
    from breccia.triton import _gemm_ws

    calls: list[Any] = []
    real = _gemm_ws.gemm_ws
    monkeypatch.setattr(_gemm_ws, "gemm_ws", lambda *a, **kw: calls.append(a[4]) or real(*a, **kw))
    if min_flops is not None:
        monkeypatch.setattr(_mm, "_WS_MIN_FLOPS", min_flops)
    monkeypatch.setenv("BRECCIA_TRITON", "1")
    _mm._triton.cache_clear()
    try:
        x, w = torch.randn(300, 512, device="cuda"), torch.randn(512, 384, device="cuda") * 0.05
        a = breccia.cast(x, breccia.Float8BlockScaling())
        b = breccia.cast(w, breccia.Float8BlockScaling(block_m=128), axis=-2)
        out = breccia.matmul(a, b)
    finally:
        _mm._triton.cache_clear()
    ref = breccia.dequantize(a).double() @ breccia.dequantize(b).double()
    assert calls == ([2] if expected else [])
    assert float(torch.linalg.norm(out.double() - ref) / torch.linalg.norm(ref)) < 5e-4
