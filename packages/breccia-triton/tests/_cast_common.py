"""Shared by the cast tests (``test_triton_cast*.py``): the recipes, the awkward inputs and the byte-exact check
against breccia-torch and the numpy reference."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import torch

import breccia
from breccia._layouts import PerChannel
from breccia._testing import assert_same_bits, make_x
from breccia.triton import cast

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
DTYPES = [torch.bfloat16, torch.float16, torch.float32]

PER_ROW = breccia.Float8CurrentScaling(fp8_format="E5M2", amax_epsilon=1e-3)  # cast with layout=PerChannel(-1)
RECIPES: list[breccia.Recipe] = [
    breccia.Float8BlockScaling(),
    breccia.Float8BlockScaling(block_k=32, fp8_format="E5M2"),
    breccia.Float8BlockScaling(block_k=48, power_of_2_scales=True),
    breccia.Float8CurrentScaling(),
    breccia.Float8CurrentScaling(power_of_2_scales=True),
    breccia.Float8CurrentScaling(amax_epsilon=1e-3),
    PER_ROW,
    breccia.Float8BlockScaling(block_m=128),
    breccia.Float8BlockScaling(block_k=16, block_m=8, power_of_2_scales=True),
    breccia.NVFP4BlockScaling(block_m=16),
    breccia.MXFP8BlockScaling(),
    breccia.MXFP8BlockScaling(fp8_format="E5M2", scale_rounding="floor"),
    breccia.MXFP8BlockScaling(scale_rounding="floor"),
    breccia.MXFP4BlockScaling(),
    breccia.MXFP4BlockScaling(scale_rounding="floor"),
    breccia.MXFP6BlockScaling(element="E2M3"),
    breccia.MXFP6BlockScaling(element="E3M2", scale_rounding="floor"),
    breccia.NVFP4BlockScaling(),
    breccia.NVFP4BlockScaling(per_tensor_scale=False),
    breccia.NVFP4BlockScaling(block_scale_min=2.0**-6, data_scaling="reciprocal"),
    breccia.NVFP4BlockScaling(per_tensor_scale=False, block_scale_min=2.0**-6, data_scaling="reciprocal"),
    breccia.INT4Scaling(),
    breccia.INT4Scaling(group_size=32, symmetric_range="half_range", scale_dtype="bf16"),
    breccia.INT4Scaling(group_size=16, symmetric=False, signed=False, scale_dtype="fp32"),
    breccia.INT4Scaling(group_size=-1, symmetric=False),
    breccia.INT8Scaling(),
    breccia.INT8Scaling(granularity="group", group_size=64, symmetric=False, signed=False),
    breccia.INT8Scaling(granularity="group", group_size=32, symmetric_range="half_range", scale_dtype="fp16"),
]
# one of each kernel path: FP8 1×32 E5M2, FP8 per tensor, FP8 128×128, MXFP8, MXFP4, NVFP4 two-level, INT4 asymmetric,
# INT8 per channel
SAMPLE = [RECIPES[i] for i in (1, 3, 7, 10, 13, 17, 23, 25)]
# (shape, input dtype): each recipe sees every shape once; dtypes rotate so all three meet every recipe family
CASES: list[tuple[tuple[int, ...], torch.dtype]] = [
    ((5, 129), torch.bfloat16),
    ((2, 3, 37), torch.float16),
    ((33, 16), torch.float32),
    ((3, 1), torch.bfloat16),
    ((9, 300), torch.float32),
    ((2, 128, 256), torch.bfloat16),  # programs tile it exactly: the unmasked (FULL) kernel for most recipes
    ((64, 256), torch.float32),
]


def layout_for(recipe: breccia.Recipe) -> breccia.Layout | None:
    return PerChannel(-1) if recipe == PER_ROW else None


def assert_same(st: breccia.ScaledTensor, ref: breccia.ScaledTensor, *, dtypes: bool) -> None:
    """Same bytes in every buffer; with ``dtypes``, also the same torch dtypes and device (both are torch)."""
    assert_same_bits(st, ref)
    if dtypes:
        for name in ("data", "scale", "global_scale", "zero_point"):
            a, b = getattr(st, name), getattr(ref, name)
            if a is not None:
                assert a.dtype == b.dtype and a.device == b.device, name


def to_np(x: torch.Tensor) -> np.ndarray:
    if x.dtype == torch.bfloat16:
        return x.float().cpu().numpy().astype(ml_dtypes.bfloat16)
    return x.cpu().numpy()


def assert_exact(x: torch.Tensor, recipe: breccia.Recipe, layout: breccia.Layout | None = None) -> None:
    """The Triton cast of ``x`` runs (not None) and has the bytes of breccia-torch's and of the numpy reference."""
    st = cast(x, recipe, layout=layout)
    assert st is not None
    assert_same(st, breccia.cast(x, recipe, layout=layout), dtypes=True)
    assert_same(st, breccia.cast(to_np(x), recipe, layout=layout), dtypes=False)


def make_input(shape: tuple[int, ...], seed: int, dtype: torch.dtype, big: bool = True) -> torch.Tensor:
    """make_x's awkward data; fp32 rows additionally span 2^±100 and reach the subnormal range (``big=False``
    leaves out the 2^100 row, whose scales would overflow fp16 and rightly take the RecipeError path)."""
    x = torch.from_numpy(make_x(shape, seed))
    if dtype == torch.float32 and x.ndim >= 2 and x.shape[-2] >= 4:
        x[0] *= 2.0**-130
        x[1] *= 2.0**100 if big else 1.0
        x[2] *= 2.0**-120
    return x.to(dtype).to(DEVICE)
