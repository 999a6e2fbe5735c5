"""The E2M1 (NVFP4 and MXFP4) casts where their GPU element paths differ from the generic kernel's: quotients at
every rounding boundary, whole programs of 16-bit pair words (``_fp4.group_bytes``), every bf16 significand through
the MXFP4 f16x2 encoder, and full-size tensors of rows of different magnitude (GPU only). Byte-identical to
breccia-torch and the numpy reference, as in ``test_triton_cast.py``.
"""

from __future__ import annotations

import pytest
import torch
from _cast_common import DEVICE, RECIPES, assert_exact, assert_same, make_input

import breccia
from breccia._testing import recipe_id
from breccia.triton import _cast as triton_cast
from breccia.triton import cast

# the interpreter runs the kernel in numpy, which warns where the GPU silently overflows to inf (flagged inputs)
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize(
    "recipe",
    [breccia.NVFP4BlockScaling(per_tensor_scale=False), breccia.NVFP4BlockScaling(),
     breccia.NVFP4BlockScaling(block_scale_min=2.0**-6, data_scaling="reciprocal")],
    ids=recipe_id,
)  # fmt: skip
def test_nvfp4_quotients_at_and_around_every_midpoint(recipe: breccia.Recipe, dtype: torch.dtype) -> None:
    """NVFP4 codes round the correctly rounded fp32 quotient (an f16 rounding of it, as the MXFP4 pairs take,
    would round twice: it moves quotients within half an f16 step of an E2M1 midpoint onto it). Blocks whose
    divisor ``d = s`` takes each E4M3 significand (amax 6·s; the global amax 84 makes the global scale 2^-5
    exactly) hold elements ``m·s·(1 + k·2^-23)`` for every midpoint and code value ``m`` and ``k`` in [-40, 40]
    (fp32), or near fp16 / bf16 neighbours of ``m·s``, so the fp32 quotients fall on, just above and just below every
    rounding boundary, with both signs."""
    sig = torch.tensor([1.0, 1.125, 1.25, 1.375, 1.5, 1.625, 1.75, 1.875], dtype=torch.float64)
    grid = torch.tensor([0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0], dtype=torch.float64)
    if dtype == torch.float32:
        rel = 1.0 + torch.arange(-40, 41, dtype=torch.float64) * 2.0**-23
    else:  # the neighbours of each grid value in the input's own spacing
        rel = 1.0 + torch.arange(-3, 4, dtype=torch.float64) * (2.0**-10 if dtype == torch.float16 else 2.0**-7)
    vals = (grid[:, None] * rel[None, :]).flatten()
    vals = torch.cat([vals, -vals])
    blocks = []
    for e in (-5, -2, 2):  # E4M3 block scales s·2^5 (two-level) or s (one-level): exact, so d = s
        for s in sig * 2.0**e:
            v = vals[torch.randperm(vals.numel(), generator=torch.Generator().manual_seed(int(s * 64)))] * s
            v = torch.cat([v, torch.zeros(-v.numel() % 15, dtype=torch.float64)]).reshape(-1, 15)
            v = v.clamp(-6 * s, 6 * s)
            blocks.append(torch.cat([torch.full((v.shape[0], 1), 6.0 * s, dtype=torch.float64), v], dim=1))
    blocks.append(torch.full((1, 16), 84.0, dtype=torch.float64))  # global amax 84: g = 84 / 2688 = 2^-5 exactly
    x = torch.cat(blocks).flatten()
    x = torch.cat([x, torch.zeros(-x.numel() % 1024, dtype=torch.float64)]).reshape(-1, 1024).to(dtype).to(DEVICE)
    assert_exact(x, recipe)


E2M1_RECIPES = [r for r in RECIPES if getattr(r.element, "name", "") == "E2M1"]


@pytest.mark.skipif(DEVICE.type != "cuda", reason="full size: minutes in the interpreter")
@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize("shape", [(4096, 8192), (1024, 16384), (4096, 4096), (1001, 5128)], ids=str)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
@pytest.mark.parametrize("recipe", E2M1_RECIPES, ids=recipe_id)
def test_e2m1_at_full_size_with_rows_of_different_magnitude(
    recipe: breccia.Recipe, dtype: torch.dtype, shape: tuple[int, int]
) -> None:
    """Rows scaled from 0.01 to 4 and outliers × 50 (``benchmarks/bench_gpu.fresh_input``'s data) at one row per
    program (K ≥ 8192), two (K = 4096) and with ragged rows and blocks, against breccia-torch's own kernels. Added
    after an H200 run of 2026-12-05 found a branch's NVFP4 one-level kernel wrong at bf16 K ≥ 8192 while every
    small-size test passed (ptxas 12.8 had moved an E4M3 unpack above its pack: ``test_triton_sass.py``)."""
    from breccia.torch._backend import BACKEND  # its native driver: breccia.cast would route to this kernel

    m, k = shape
    g = torch.Generator(device=DEVICE).manual_seed(7)
    x = torch.randn(m, k, device=DEVICE, generator=g)
    x *= torch.rand(m, 1, device=DEVICE, generator=g) * 4 + 0.01
    x[::97, ::89] *= 50.0
    x = x.to(dtype)
    lay = recipe.default_layout(-1)
    st = cast(x, recipe, layout=lay)
    assert st is not None
    assert_same(st, BACKEND.cast_native(x, recipe, lay, nonfinite="raise", history=None), dtypes=True)


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("recipe", E2M1_RECIPES, ids=recipe_id)
def test_e2m1_of_16_bit_pair_words_in_whole_programs(recipe: breccia.Recipe, dtype: torch.dtype) -> None:
    """NVFP4 of fp16 / bf16 and MXFP4 of fp16 with programs of 1 024 pair words or more, the size at which the GPU
    kernel takes its element path from ``_fp4.group_bytes`` (one PTX block per four pairs; the interpreter takes the
    same signs from the words with shifts; MXFP4 of bf16 takes ``_fp4.mx4_pairs`` instead): a tensor the programs
    tile exactly, and one with a ragged last program."""
    for i, shape in enumerate([(64, 2048), (67, 1024)]):
        x = make_input(shape, 60 + i, dtype)
        plan = triton_cast._plan(x, recipe, recipe.default_layout())
        rows, nbt, _, _ = triton_cast._tiling(shape[0], shape[0], plan)
        assert rows * nbt * (plan.bk // 2) >= 1024, (shape, rows, nbt)
        assert_exact(x, recipe)


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize("recipe", [breccia.MXFP4BlockScaling(), breccia.MXFP4BlockScaling(scale_rounding="floor")],
                         ids=recipe_id)  # fmt: skip
def test_mxfp4_every_bf16_significand_at_every_relative_exponent(recipe: breccia.Recipe) -> None:
    """MXFP4 of bf16 takes the f16x2 encoder on the GPU (``_fp4``): every bf16 significand, both signs, at every
    exponent from 2 above the block's scale down to 40 below it (where codes are signed zeros), in blocks whose
    scale exponent runs from the byte's lower clamp (bf16 subnormal amaxes) to the top of bf16's range."""
    sig = 1.0 + torch.arange(128, dtype=torch.float64) / 128
    rel = torch.arange(-40, 3, dtype=torch.float64)
    vals = (sig[:, None] * torch.exp2(rel)[None, :]).flatten()
    vals = torch.cat([vals, -vals])
    vals = vals[torch.randperm(vals.numel(), generator=torch.Generator().manual_seed(5))]
    n = -(-vals.numel() // (31 * 32)) * 31 * 32  # whole rows of 32 blocks
    vals = torch.cat([vals, torch.zeros(n - vals.numel(), dtype=torch.float64)]).reshape(-1, 31)
    blocks = []
    for k in (-133, -129, -126, -100, -20, -3, 0, 5, 60, 120, 125):  # amax 1.99·2^(k+2): floor scale 2^k
        b = torch.cat([torch.full((vals.shape[0], 1), 1.9921875 * 4.0), vals], dim=1) * 2.0**k
        blocks.append(b)
    x = torch.cat(blocks).reshape(-1, 1024).to(torch.bfloat16).to(DEVICE)
    assert_exact(x, recipe)
