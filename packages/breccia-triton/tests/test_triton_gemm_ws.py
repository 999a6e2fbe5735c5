"""The warp-specialised Gluon FP8 GEMM (sm_90 only) against an FP64 product of the dequantized operands.

Gluon has no CPU interpreter, so on a machine without an sm_90 GPU only the refusal and routing tests run; the
kernel tests run on the GPU (benchmarks/results/h200_triton_pytest_*.log)."""

from __future__ import annotations

import pytest
import torch
from test_triton_gemm import DEVICE, TOL, _rel_err, _tma_operands, _weight_args

import breccia
from breccia.triton import _gemm_ws
from breccia.triton._gemm import scaled_gemm

SM90 = DEVICE == "cuda" and torch.cuda.get_device_capability() == (9, 0)
needs_sm90 = pytest.mark.skipif(not SM90, reason="Gluon warpgroup MMA: sm_90 only, no CPU interpreter")

# partial tiles in M and N; K blocks 1, 2 (even), 3 and 9 (odd: the unrolled loop's tail), one shape with more tiles
# than SMs (the persistent loop and the slot ring's phases wrap)
WS_SHAPES = [(300, 384, 264), (129, 128, 136), (1000, 1040, 520), (257, 256, 1000), (2048, 512, 2304)]


@needs_sm90
@pytest.mark.parametrize(("m", "k", "n"), WS_SHAPES)
@pytest.mark.parametrize("mode", ["tensor", "row", "block"])
@pytest.mark.parametrize("name", [*_gemm_ws.WS_CONFIGS, "small M"])
def test_ws_kernel(m: int, k: int, n: int, mode: str, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_gemm_ws, "FORCE", _gemm_ws.WS_CONFIGS.get(name, _gemm_ws.SMALL_M))
    a, b, wq = _tma_operands(m, k, n, mode)
    bd, bs = _weight_args(wq, mode)
    assert _gemm_ws.applies(a.data, bd, torch.float32)
    for out_dtype, tol in ((torch.float32, TOL), (torch.bfloat16, 4e-3), (torch.float16, 4e-3)):
        out = scaled_gemm(a.data, a.scale, bd, bs, mode, out_dtype, impl="ws")
        assert out.dtype == out_dtype and out.shape == (m, n)
        assert not torch.isnan(out).any()
        assert _rel_err(out, a, b) < tol
        again = scaled_gemm(a.data, a.scale, bd, bs, mode, out_dtype, impl="ws")
        assert torch.equal(out, again)  # no atomics, no split: the same bits every run


@needs_sm90
@pytest.mark.parametrize(("m", "k", "n"), [(300, 384, 264), (257, 256, 1000)])
def test_ws_block_scales_either_layout(m: int, k: int, n: int) -> None:
    """The activation scales are read through their strides: an M-major grid (as DeepGEMM and cuBLAS take it, here
    with padded columns full of NaN, so a wrong stride shows) gives the same bits as the K-major one, within the
    tolerance of the FP64 product."""
    a, b, wq = _tma_operands(m, k, n, "block")
    bd, bs = _weight_args(wq, "block")
    kb = a.scale.shape[1]
    padded = torch.full((kb, m + 5), float("nan"), device=a.scale.device)
    sa_m_major = padded[:, :m].t()
    sa_m_major.copy_(a.scale)
    assert sa_m_major.stride() == (1, m + 5) and a.scale.stride() == (kb, 1)
    out = scaled_gemm(a.data, a.scale, bd, bs, "block", torch.float32, impl="ws")
    assert not torch.isnan(out).any()
    assert _rel_err(out, a, b) < TOL  # the FP64 product of the dequantized operands, not only the two layouts
    assert torch.equal(out, scaled_gemm(a.data, sa_m_major, bd, bs, "block", torch.float32, impl="ws"))


@needs_sm90
def test_tuning_picks_a_config_and_keeps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """``BRECCIA_TRITON_TUNE=1``: the first call per shape class times every config and remembers the fastest; the
    result is the same product."""
    monkeypatch.setenv("BRECCIA_TRITON_TUNE", "1")
    monkeypatch.setattr(_gemm_ws, "_TUNED", {})
    a, b, wq = _tma_operands(300, 384, 264, "block")
    bd, bs = _weight_args(wq, "block")
    out = scaled_gemm(a.data, a.scale, bd, bs, "block", torch.float32, impl="ws")
    assert next(iter(_gemm_ws._TUNED.values())) in _gemm_ws.WS_CONFIGS.values()
    assert len(_gemm_ws._TUNED) == 1
    assert _rel_err(out, a, b) < TOL
    scaled_gemm(a.data, a.scale, bd, bs, "block", torch.float32, impl="ws")
    assert len(_gemm_ws._TUNED) == 1  # tuned once per shape class


@needs_sm90
def test_ws_mixed_formats() -> None:
    """E4M3 activations times an E5M2 weight (a gradient-style pair): the descriptors take each operand's type."""
    m, k, n = 300, 512, 264
    g = torch.Generator().manual_seed(5)
    x = torch.randn(m, k, generator=g).to(DEVICE)
    w = torch.randn(n, k, generator=g).to(DEVICE) * 0.05
    a = breccia.cast(x, breccia.Float8CurrentScaling(fp8_format="E4M3"))
    wq = breccia.cast(w, breccia.Float8CurrentScaling(fp8_format="E5M2"))
    b = breccia.cast(w.t(), breccia.Float8CurrentScaling(fp8_format="E5M2"))
    out = scaled_gemm(a.data, a.scale, wq.data.t(), wq.scale, "tensor", torch.float32, impl="ws")
    assert _rel_err(out, a, b) < TOL


@needs_sm90
@pytest.mark.parametrize(
    ("m", "mode", "expected"),
    [(129, "block", None), (129, "tensor", None), (128, "block", _gemm_ws.SMALL_M), (65, "block", _gemm_ws.SMALL_M),
     (64, "block", False), (128, "tensor", False)],
)  # fmt: skip
def test_auto_takes_the_ws_kernel(m: int, mode: str, expected: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above 128 rows every mode with the default config; 65–128 rows blockwise only, with 64-wide N tiles; from
    64 rows down the Triton kernels (``expected`` False)."""
    calls: list[object] = []
    real = _gemm_ws.gemm_ws
    monkeypatch.setattr(_gemm_ws, "gemm_ws", lambda *a: calls.append(a[-1]) or real(*a))
    a, b, wq = _tma_operands(m, 256, 528, mode)
    bd, bs = _weight_args(wq, mode)
    out = scaled_gemm(a.data, a.scale, bd, bs, mode, torch.float32)
    assert calls == ([] if expected is False else [expected])
    assert _rel_err(out, a, b) < TOL


@pytest.mark.parametrize(
    ("mode", "m", "n", "k", "sms", "late"),
    [(2, 16384, 7168, 16384, 132, True), (2, 16384, 24576, 1536, 132, False), (2, 4096, 7168, 16384, 132, False),
     (2, 16384, 4096, 7168, 132, False), (2, 33000, 7168, 8192, 132, True), (0, 16384, 7168, 16384, 132, False),
     (1, 16384, 7168, 16384, 132, False), (2, 0, 7168, 16384, 132, False), (2, 16384, 7168, 16384, 264, False)],
)  # fmt: skip
def test_default_config_reads_scales_late_on_long_runs(mode: int, m: int, n: int, k: int, sms: int,
                                                       late: bool) -> None:  # fmt: skip
    """Block mode reads the activation scales late once a CTA runs ``LONG_RUN`` K blocks or more: of issue 5's
    shapes only 16384×7168×16384 on 132 SMs (6 950 blocks per CTA), not on 264 (the last case)."""
    cfg = _gemm_ws.default_config(mode, m, n, k, sms)
    assert cfg.early_scales is not late and cfg in _gemm_ws.WS_CONFIGS.values()
    assert (cfg.bn, cfg.stages, cfg.group_m) == (128, 5, 8)


def test_forced_config_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_gemm_ws, "FORCE", _gemm_ws.WS_CONFIGS["128x128 s4"])
    assert _gemm_ws.default_config(2, 16384, 7168, 16384) is _gemm_ws.WS_CONFIGS["128x128 s4"]


def test_ws_refuses_what_it_cannot_run() -> None:
    """Off sm_90 (here: CPU tensors, or a row-major (K, N) weight) ``impl='ws'`` says why and what to use."""
    a = breccia.cast(torch.randn(256, 128, device=DEVICE), breccia.Float8CurrentScaling())
    b = breccia.cast(torch.randn(128, 64, device=DEVICE), breccia.Float8CurrentScaling())  # row-major (K, N)
    assert not _gemm_ws.applies(a.data, b.data, torch.float32)
    with pytest.raises(breccia.ShapeError, match=r"impl='ws'.*use impl='auto'"):
        scaled_gemm(a.data, a.scale, b.data, b.scale, "tensor", torch.float32, impl="ws")


@pytest.mark.parametrize("version", ["3.5.1", "3.8.0", "3.9.0"])
def test_other_triton_falls_back(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Triton < 3.6 has no Gluon of the shape this kernel is written in, and 3.8 renamed its TMA copies (the kernel
    failed to compile there): ``ws_available`` says so, ``impl='ws'`` refuses with the reason, and ``auto`` keeps the
    Triton kernels (which run here under the interpreter or on CUDA)."""
    import triton

    from breccia.triton import _gemm

    assert not _gemm.ws_available(torch.device("cpu"))
    monkeypatch.setattr(triton, "__version__", version)
    assert _gemm._ws_module() is None
    assert not _gemm.ws_available(torch.device(DEVICE))
    a, b, wq = _tma_operands(129, 256, 256, "block")
    bd, bs = _weight_args(wq, "block")
    with pytest.raises(breccia.ShapeError, match=r"needs Triton 3\.6 or 3\.7"):
        scaled_gemm(a.data, a.scale, bd, bs, "block", torch.float32, impl="ws")
    assert _rel_err(scaled_gemm(a.data, a.scale, bd, bs, "block", torch.float32), a, b) < TOL


def test_gluon_versions() -> None:
    """The Gluon kernels load for Triton 3.6 and 3.7 only (the module itself may still be absent: then None too)."""
    from breccia.triton import _gluon

    assert _gluon._module("_gemm_ws", "3.5.1") is None
    assert _gluon._module("_gemm_ws", "3.8.0") is None
    assert _gluon._module("_w4a16_mma", "3.10.0") is None
    for version in ("3.6.0", "3.7.1"):
        assert _gluon._module("_gemm_ws", version) is not None
