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
