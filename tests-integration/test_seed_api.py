"""The seed documents' public API, verbatim (shared/seeds/001 and 004): these snippets must keep working."""

from __future__ import annotations

import numpy as np


def test_seed_001_quickstart() -> None:
    # --- verbatim from seed 001 (README quickstart)
    import breccia, numpy as np

    # Quantize to FP8 with per-block-K scaling (DeepSeek-v3 style)
    x = np.random.randn(8, 256).astype(np.float32)
    st = breccia.cast(x, breccia.Float8BlockScaling(block_k=128))
    # Scaled matmul: data stays in FP8, scales fold into the FP32 accumulator
    A = breccia.cast(np.random.randn(16, 256).astype(np.float32), breccia.Float8CurrentScaling())
    W = breccia.cast(np.random.randn(256, 128).astype(np.float32), breccia.Float8BlockScaling(block_k=128))
    y = breccia.matmul(A, W)
    # --- end verbatim
    assert st.shape == (8, 256) and y.shape == (16, 128) and y.dtype == np.float32
    ref = breccia.dequantize(A).astype(np.float64) @ breccia.dequantize(W).astype(np.float64)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-3)


def test_seed_004_recipe_constructors() -> None:
    # --- verbatim from seed 004 (recipes)
    from breccia import DelayedScaling

    DelayedScaling(
        fp8_format="E4M3",  # "E4M3" or "E5M2"
        amax_history_len=16,  # how many previous amax values the training loop retains
        margin=0,  # power-of-two exponent margin (TE default = 0)
    )
    from breccia import INT4Scaling, NVFP4BlockScaling

    NVFP4BlockScaling(
        fp4_format="E2M1",  # fixed
        block_size=16,  # fixed by NVIDIA Blackwell spec
        scale_format="E4M3",  # fixed: FP8 E4M3 scale
    )
    INT4Scaling(
        group_size=128,  # values per shared scale
        signed=True,  # -8..7 (signed) or 0..15 (unsigned)
        scale_dtype="fp16",  # "fp16" | "bf16" | "fp32"
    )
    # --- end verbatim
    import breccia

    for r in (breccia.Float8CurrentScaling(), breccia.Float8BlockScaling(), breccia.MXFP8BlockScaling()):
        assert r == type(r)()


def test_seed_004_requantize() -> None:
    x = np.random.default_rng(0).standard_normal((32, 256)).astype(np.float32)
    # --- verbatim from seed 004 ("Switching recipes")
    import breccia

    # Train in MXFP8…
    st_mx = breccia.cast(x, breccia.MXFP8BlockScaling())
    # …ship as NVFP4 (no model rewrite required):
    st_nv = breccia.requantize(st_mx, breccia.NVFP4BlockScaling())
    # --- end verbatim
    assert st_nv.recipe == breccia.NVFP4BlockScaling() and st_nv.shape == x.shape
    cos = np.dot(breccia.dequantize(st_nv).ravel(), x.ravel()) / (
        np.linalg.norm(breccia.dequantize(st_nv)) * np.linalg.norm(x)
    )
    assert cos > 0.99


def test_seed_003_bridges(tmp_path: object, monkeypatch: object) -> None:
    """Seed 003's bridge calls, as written (torchao's AffineQuantizedTensor is gone in 0.18: its Float8Tensor stands in;
    TE does not install here: an object with TE's attributes stands in for its Float8Tensor)."""
    import pytest

    torch = pytest.importorskip("torch")
    torchao_q = pytest.importorskip("torchao.quantization")
    monkeypatch.chdir(tmp_path)  # type: ignore[attr-defined]
    import breccia
    from breccia.bridges import te_buffers

    x = torch.randn(64, 256)
    w_quantized = breccia.cast(x, breccia.Float8BlockScaling())
    k_quantized = breccia.cast(x, breccia.MXFP8BlockScaling())
    st_numpy = breccia.cast(x.numpy(), breccia.Float8CurrentScaling())
    te_float8tensor = type("Float8Tensor", (), {})()
    for name, value in te_buffers(breccia.cast(x, breccia.DelayedScaling())).items():
        setattr(te_float8tensor, name, value)
    te_float8tensor._fp8_dtype = "kFloat8E4M3"
    aqt = torchao_q.Float8Tensor.from_hp(x)
    data = breccia.cast(x, breccia.Float8BlockScaling(block_m=128)).data
    scale = breccia.cast(x, breccia.Float8BlockScaling(block_m=128)).scale

    # --- verbatim from seed 003 (bridges & migration)
    from breccia.bridges import from_transformer_engine, to_transformer_engine

    # TE → breccia
    st = from_transformer_engine(te_float8tensor)
    from breccia.bridges import from_torchao, to_torchao

    # torchao AffineQuantizedTensor → breccia
    st = from_torchao(aqt)
    # breccia → torchao (INT4 symmetric only)
    aqt = to_torchao(st)
    from breccia.bridges import save_safetensors, load_safetensors

    # Save a dict of ScaledTensors to a single file
    save_safetensors(
        {"w_q": w_quantized, "w_k": k_quantized},
        "model.safetensors",
        extra_metadata={"model_version": "v0.0.1"},
    )
    # Load back, recipes + layouts reconstructed from metadata
    loaded = load_safetensors("model.safetensors")
    # loaded["w_q"] is a ScaledTensor with the original recipe/layout
    from breccia.bridges import to_dlpack, from_dlpack

    # Move a ScaledTensor's buffers to another framework (zero-copy when possible)
    st_torch = from_dlpack(st_numpy, framework="torch")
    # Raw capsules (for advanced use)
    data_capsule, scale_capsule = to_dlpack(st_torch)
    from breccia.bridges import from_deepseek_v3, to_deepseek_v3

    # Raw DeepSeek-v3 FP8 buffers (block_k=128) → ScaledTensor
    st = from_deepseek_v3(data, scale, block_k=128, fp8_format="E4M3")
    # Inverse
    data, scale = to_deepseek_v3(st)
    # --- end verbatim
    assert to_transformer_engine is not None
    assert loaded["w_q"].recipe == w_quantized.recipe and loaded["w_q"].layout == w_quantized.layout
    assert type(aqt).__name__ == "Float8Tensor"
    assert torch.from_dlpack(data_capsule).dtype == torch.float8_e4m3fn
    assert torch.from_dlpack(scale_capsule).dtype == torch.float32
    assert st.layout == breccia.PerBlock2D(128, 128) and st_torch.framework == "torch"
