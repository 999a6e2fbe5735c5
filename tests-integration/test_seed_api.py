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
