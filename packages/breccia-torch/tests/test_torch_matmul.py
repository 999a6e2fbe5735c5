"""matmul on torch: every recipe, either side plain, within tolerance of the fp64 product of dequantized operands;
on CUDA the fused cuBLAS paths are taken where they apply and agree with the dequantized path."""

from __future__ import annotations

import pytest
import torch

import breccia
from breccia._testing import RECIPES, make_x, recipe_id
from breccia.torch import _mm


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.double() - ref).norm() / ref.norm())


# cuBLAS FP8 GEMM accumulates in a reduced-precision FP8 accumulator promoted to fp32 in steps (Hopper), so a fused
# result is within ~1e-4 of the exact product of the dequantized operands, not 1e-7: the declared tolerance.
FUSED_TOL = 5e-4


@pytest.mark.parametrize("recipe", [r for r in RECIPES if not isinstance(r, breccia.DelayedScaling)], ids=recipe_id)
def test_matmul_all_recipes(recipe: breccia.Recipe, device: torch.device) -> None:
    a = torch.from_numpy(make_x((3, 5, 192), 1)).to(device)
    w = torch.from_numpy(make_x((192, 40), 2)).to(device)
    axis_w = -2 if isinstance(recipe.default_layout(), breccia.PerBlock2D) else 0
    sa, sw = breccia.cast(a, recipe), breccia.cast(w, recipe, axis=axis_w)
    da, dw = breccia.dequantize(sa).double(), breccia.dequantize(sw).double()
    for lhs, rhs, ref in [(sa, sw, da @ dw), (a, sw, a.double() @ dw), (sa, w, da @ w.double())]:
        out = breccia.matmul(lhs, rhs)
        assert out.shape == (3, 5, 40) and out.dtype == torch.float32 and out.device.type == device.type
        assert rel_err(out, ref) < 1e-5


SHAPES = [(64, 256, 128), (256, 512, 384), (33, 160, 48)]


@pytest.mark.parametrize(("m", "k", "n"), SHAPES)
@pytest.mark.parametrize("kind", ["tensorwise", "rowwise", "e5m2"])
def test_fp8_fused_paths(m: int, k: int, n: int, kind: str, device: torch.device) -> None:
    torch.manual_seed(0)
    a, w = torch.randn(m, k, device=device), torch.randn(k, n, device=device) * 0.05
    if kind == "rowwise":
        sa = breccia.cast(a, breccia.Float8CurrentScaling(), layout=breccia.PerChannel(-1))
        sw = breccia.cast(w, breccia.Float8CurrentScaling(), layout=breccia.PerChannel(0))
    else:
        fmt = "E5M2" if kind == "e5m2" else "E4M3"
        sa = breccia.cast(a, breccia.Float8CurrentScaling())
        sw = breccia.cast(w, breccia.Float8CurrentScaling(fp8_format=fmt))
    ref = breccia.dequantize(sa).double() @ breccia.dequantize(sw).double()
    fused = _mm.fused_matmul(sa, sw, torch.float32)
    if device.type == "cuda" and k % 16 == 0 and n % 16 == 0:
        assert fused is not None, "cuBLAS path expected"
        assert rel_err(fused, ref) < FUSED_TOL
    else:
        assert fused is None
    assert rel_err(breccia.matmul(sa, sw), ref) < FUSED_TOL


@pytest.mark.parametrize(("m", "k", "n"), [(128, 256, 384), (64, 640, 256), (200, 1024, 128), (96, 384, 200)])
def test_deepseek_blockwise(m: int, k: int, n: int, device: torch.device) -> None:
    # 1x128 activations x 128x128 weights; K=640 and 384 have ceil(K/128) not a multiple of 4 (cuBLAS pads the
    # scale grid, and an unpadded grid silently gives wrong results), N=200 is not a multiple of 128 (fallback).
    torch.manual_seed(1)
    a, w = torch.randn(m, k, device=device), torch.randn(k, n, device=device) * 0.05
    sa = breccia.cast(a, breccia.Float8BlockScaling())
    sw = breccia.cast(w, breccia.Float8BlockScaling(block_m=128), axis=0)
    ref = breccia.dequantize(sa).double() @ breccia.dequantize(sw).double()
    fused = _mm.fused_matmul(sa, sw, torch.float32)
    if device.type == "cuda" and n % 128 == 0:
        assert fused is not None
        assert rel_err(fused, ref) < FUSED_TOL
    else:
        assert fused is None
    assert rel_err(breccia.matmul(sa, sw), ref) < FUSED_TOL
