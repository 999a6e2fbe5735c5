"""Peer conformance: breccia's bytes equal torchao 0.18's for the same recipe, on the same inputs.

- MX (``to_mx``): FLOOR ↔ ``scale_rounding="floor"``, RCEIL ↔ ``"rceil"``; E4M3, E5M2 and FP4 — identical as is.
- Float8 (``_choose_scale_float8`` + ``_quantize_affine_float8``): per-tensor, per-row, 1×128, 128×128 — identical.
- NVFP4 (``nvfp4_quantize``): torchao clamps the block scale below at E4M3's smallest normal (2^-6) and multiplies
  by a reciprocal; ``NVFP4BlockScaling(block_scale_min=2**-6, data_scaling="reciprocal")`` (``NVFP4_TORCHAO``)
  reproduces it. The DESIGN.md default (no clamp, division) differs from torchao on blocks far below the tensor
  amax, which the last test demonstrates.
"""

from __future__ import annotations

import pytest
import torch

import breccia
from breccia._recipes import NVFP4_TORCHAO

torchao = pytest.importorskip("torchao")
from torchao.prototype.mx_formats import nvfp4_tensor as nv  # noqa: E402
from torchao.prototype.mx_formats.mx_tensor import ScaleCalculationMode, to_mx  # noqa: E402
from torchao.quantization.quant_primitives import _choose_scale_float8, _quantize_affine_float8  # noqa: E402


def same_bytes(a: torch.Tensor, b: torch.Tensor) -> None:
    a, b = a.detach().cpu().contiguous(), b.detach().cpu().contiguous()
    assert a.numel() * a.element_size() == b.numel() * b.element_size()
    ua, ub = a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8)
    assert torch.equal(ua, ub), f"{int((ua != ub).sum())} of {ua.numel()} bytes differ"


@pytest.fixture(params=[0, 1, 2])
def x(request: pytest.FixtureRequest, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(request.param)
    rows = torch.randn(256, 1024, generator=g) * torch.exp(torch.randn(256, 1, generator=g) * 2)
    return rows.to(device)


@pytest.mark.parametrize("mode", ["floor", "rceil"])
@pytest.mark.parametrize("elem", ["e4m3", "e5m2", "fp4"])
def test_mx_matches_torchao(x: torch.Tensor, mode: str, elem: str) -> None:
    dtype = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2, "fp4": torch.float4_e2m1fn_x2}[elem]
    recipe = (
        breccia.MXFP4BlockScaling(scale_rounding=mode)
        if elem == "fp4"
        else breccia.MXFP8BlockScaling(fp8_format=elem.upper(), scale_rounding=mode)
    )
    s, d = to_mx(x, dtype, 32, scaling_mode=getattr(ScaleCalculationMode, mode.upper()))
    st = breccia.cast(x, recipe)
    same_bytes(st.scale, s)
    same_bytes(st.data, d)


@pytest.mark.parametrize(
    ("block", "recipe", "layout"),
    [
        ("tensor", breccia.Float8CurrentScaling(), None),
        ("row", breccia.Float8CurrentScaling(), breccia.PerChannel(-1)),
        ("1x128", breccia.Float8BlockScaling(), None),
        ("128x128", breccia.Float8BlockScaling(block_m=128), None),
    ],
)
def test_float8_matches_torchao(x: torch.Tensor, block: str, recipe: breccia.Recipe, layout: object) -> None:
    size = {"tensor": list(x.shape), "row": [1, x.shape[1]], "1x128": [1, 128], "128x128": [128, 128]}[block]
    scale = _choose_scale_float8(x, size, torch.float8_e4m3fn)
    q = _quantize_affine_float8(x, scale, torch.float8_e4m3fn)
    st = breccia.cast(x, recipe, layout=layout) if layout is not None else breccia.cast(x, recipe)
    same_bytes(st.scale.reshape(scale.shape), scale.float())
    same_bytes(st.data, q)


@pytest.mark.parametrize("two_level", [True, False])
def test_nvfp4_matches_torchao_with_its_rule(x: torch.Tensor, two_level: bool) -> None:
    recipe = (
        NVFP4_TORCHAO
        if two_level
        else breccia.NVFP4BlockScaling(per_tensor_scale=False, block_scale_min=2.0**-6, data_scaling="reciprocal")
    )
    pts = nv.per_tensor_amax_to_scale(x.abs().max()) if two_level else None
    s, d = nv.nvfp4_quantize(x, block_size=16, per_tensor_scale=pts)
    st = breccia.cast(x, recipe)
    same_bytes(st.scale, s)
    same_bytes(st.data, d)
    if two_level:
        same_bytes(st.global_scale.reshape(1), pts.reshape(1).float())


def test_nvfp4_default_rule_differs_only_on_tiny_blocks(device: torch.device) -> None:
    x = torch.randn(64, 256, device=device)
    x[:8] *= 1e-4  # blocks whose scale falls below E4M3's smallest normal relative to the tensor amax
    pts = nv.per_tensor_amax_to_scale(x.abs().max())
    s, _ = nv.nvfp4_quantize(x, block_size=16, per_tensor_scale=pts)
    st = breccia.cast(x, breccia.NVFP4BlockScaling())
    differ = (st.scale.view(torch.uint8) != s.view(torch.uint8)).cpu()
    assert differ[:8].any() and not differ[8:].any()
