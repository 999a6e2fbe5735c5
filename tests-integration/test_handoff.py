"""Trained in PyTorch, served by MLX: a weight quantized by breccia-torch, saved with the safetensors bridge and
loaded into MLX runs through ``mx.quantized_matmul`` and gives torch's dequantized product."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import breccia

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")
from breccia.bridges import load_safetensors, save_safetensors  # noqa: E402
from breccia.mlx import to_mlx_quantized  # noqa: E402


@pytest.mark.parametrize(
    "recipe",
    [breccia.MXFP8BlockScaling(), breccia.MXFP4BlockScaling(), breccia.NVFP4BlockScaling(per_tensor_scale=False)],
    ids=["mxfp8", "mxfp4", "nvfp4"],
)
def test_torch_to_mlx_quantized_matmul(tmp_path: Path, recipe: breccia.Recipe) -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(96, 256, generator=g) * 0.05  # a Linear weight (out, in): blocks run along `in`
    x = torch.randn(8, 256, generator=g)
    w_st = breccia.cast(w, recipe)
    want = x.double() @ breccia.dequantize(w_st).double().T  # what torch computes with the dequantized weight

    save_safetensors({"proj.weight": w_st}, tmp_path / "model.safetensors")
    w_mx = load_safetensors(tmp_path / "model.safetensors", framework="mlx")["proj.weight"]
    q = to_mlx_quantized(w_mx)
    y = mx.quantized_matmul(mx.array(x.numpy()), q.w_q, q.scales, q.biases, transpose=True, **q.kwargs)
    got = np.array(y.astype(mx.float32))
    assert got.shape == (8, 96)
    np.testing.assert_allclose(got, want.numpy(), rtol=2e-5, atol=2e-5)
