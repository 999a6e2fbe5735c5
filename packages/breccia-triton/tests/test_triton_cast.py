"""The Triton quantize is byte-identical to breccia-torch and to the numpy reference, recipe by recipe.

Runs on CUDA when available, else under ``TRITON_INTERPRET=1`` on CPU (conftest.py), at small awkward sizes:
K not a multiple of the block, odd K for 4-bit, row counts that are not a multiple of the tile, all-zero blocks,
outliers, and rows whose magnitudes reach fp32's subnormal range (scale and element subnormals both occur).
"""

from __future__ import annotations

import math
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
import torch

import breccia
from breccia._layouts import PerBlock2D, PerBlockK, PerChannel
from breccia._recipes import scale_kind
from breccia._testing import assert_same_bits, make_x, recipe_id
from breccia.triton import _cast as triton_cast
from breccia.triton import cast, supports

# the interpreter runs the kernel in numpy, which warns where the GPU silently overflows to inf (flagged inputs)
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

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


@pytest.fixture
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if a finite input takes the breccia-torch fallback (the kernel would then not be what is tested)."""

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("the Triton cast fell back to breccia-torch on finite input")

    monkeypatch.setattr(triton_cast, "_fallback", boom)


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize("recipe", RECIPES, ids=recipe_id)
def test_cast_matches_torch_and_reference(recipe: breccia.Recipe) -> None:
    two_d = isinstance(recipe.default_layout(), PerBlock2D)
    for i, (shape, dtype) in enumerate(CASES):
        x = make_input(shape, i, dtype, big=scale_kind(recipe) != "fp16")
        for lay in [recipe.default_layout(-1), recipe.default_layout(-2)] if two_d else [layout_for(recipe)]:
            assert supports(x, recipe, lay), (shape, dtype, lay)
            assert_exact(x, recipe, lay)


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_zeros_and_extremes(dtype: torch.dtype) -> None:
    """All-zero tensors (global amax 0) and values at the input dtype's limits, on a few representative recipes."""
    big = torch.finfo(dtype).max
    tiny = torch.finfo(dtype).smallest_normal / 4
    x = torch.tensor([[0.0] * 40, [big, -big, tiny, -tiny] * 10, [tiny] * 40], dtype=dtype, device=DEVICE)
    for recipe in [*SAMPLE, RECIPES[19]]:  # + NVFP4 with the torchao rules
        for xs in (x, torch.zeros_like(x)):
            st = cast(xs, recipe, layout=layout_for(recipe))
            assert st is not None
            assert_same(st, breccia.cast(xs, recipe, layout=layout_for(recipe)), dtypes=True)


# recipes that divide every element by its block's scale (on the GPU: one reciprocal per block, see _div.py)
DIVIDING = [RECIPES[i] for i in (0, 1, 3, 6, 7, 9, 17, 18, 21, 23, 25, 26)]


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("recipe", DIVIDING, ids=recipe_id)
def test_division_edge_cases(recipe: breccia.Recipe, dtype: torch.dtype) -> None:
    """Blocks of amax 1.75 whose other elements take every exponent down to the dtype's smallest subnormal (the
    fast division's residual underflows there), next to rows scaled down so far that their divisors leave the
    fast path's range: in one launch, some programs divide by reciprocal and others with ``div.rn`` (NVFP4 with a
    global scale and the INT recipes: the whole launch again with ``div.rn``, see the relaunch test below)."""
    g = torch.Generator().manual_seed(11)
    lo = -149 if dtype == torch.float32 else -133
    e = torch.randint(lo, 1, (48, 1024), generator=g).float()
    sign = torch.randint(0, 2, (48, 1024), generator=g).float() * 2 - 1
    x = sign * (1 + torch.rand((48, 1024), generator=g)) * torch.exp2(e)
    x[:, ::16] = 1.75 * sign[:, ::16]
    x[8:16] *= 2.0**-126
    x = x.to(dtype).to(DEVICE)
    assert_exact(x, recipe, layout_for(recipe))


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
@pytest.mark.parametrize(
    ("recipe", "factor"),
    [(breccia.NVFP4BlockScaling(), 2.0**60), (breccia.NVFP4BlockScaling(block_m=16), 2.0**-60),
     (breccia.INT4Scaling(scale_dtype="fp32"), 2.0**-100),
     (breccia.INT4Scaling(group_size=32, symmetric=False, scale_dtype="fp32"), 2.0**80)],
    ids=["nvfp4-huge", "nvfp4-16x16-tiny", "int4-tiny", "int4-asym-huge"],
)  # fmt: skip
def test_divisors_out_of_the_fast_range_relaunch_with_div_rn(
    recipe: breccia.Recipe, factor: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the GPU, NVFP4 with a global scale and the INT recipes have no ``div.rn`` path in the kernel: a launch
    with a divisor outside the one-reciprocal division's range (``_div``) flags it, and the host runs it again with
    ``SAFE`` (``div.rn`` for every element). Ordinary inputs take one launch; the CPU interpreter always divides
    with ``div.rn`` and never relaunches."""
    calls: list[bool] = []
    launch = triton_cast._launch
    monkeypatch.setattr(triton_cast, "_launch", lambda *a, **k: calls.append(k.get("safe", False)) or launch(*a, **k))
    x = torch.from_numpy(make_x((32, 256), 21)).to(DEVICE)  # fp32, none of make_input's extreme rows
    for xs, relaunch in ((x, False), (x * factor, DEVICE.type == "cuda")):
        calls.clear()
        assert_exact(xs, recipe)  # the references never reach _launch (conftest: BRECCIA_TRITON=0)
        assert calls == ([False, True] if relaunch else [False])


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


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize(
    ("recipe", "unit", "dtype"),
    [(breccia.INT4Scaling(), 7 * 2.0**-24, torch.bfloat16), (breccia.INT8Scaling(), 127 * 2.0**-149, torch.float32),
     (breccia.INT4Scaling(scale_dtype="bf16"), 7 * 2.0**-133, torch.float32)],
    ids=["int4-fp16-scale", "int8-fp32-scale", "int4-bf16-scale"],
)  # fmt: skip
def test_integer_codes_where_subnormal_scales_need_the_clamp(
    recipe: breccia.Recipe, unit: float, dtype: torch.dtype
) -> None:
    """Symmetric integer blocks skip the clamp on the GPU when the guard shows every quotient below QMAX + 1/4. Blocks
    whose amax puts the scale among its dtype's subnormals round the scale down by up to half its step, so codes
    reach past QMAX and must be clamped: those programs take the clamping path, in the same launch as normal ones
    (scales below the fast division's range, 2^-60, make the host relaunch with ``div.rn`` and the clamp)."""
    g = torch.Generator().manual_seed(3)
    rows, k = 64, 512
    amax = unit * (1 + 2 * torch.rand((rows, 1), generator=g, dtype=torch.float64))
    amax[::2] = 1.0 + torch.rand((rows // 2, 1), generator=g, dtype=torch.float64)  # ordinary rows between them
    x = (torch.rand((rows, k), generator=g, dtype=torch.float64) * 2 - 1) * amax
    x[:, ::32] = amax
    x = x.to(dtype).to(DEVICE)
    st = cast(x, recipe)
    assert st is not None
    ref = breccia.cast(to_np(x), recipe)
    scale = np.asarray(ref.scale, dtype=np.float64)
    q = np.rint(x.double().cpu().numpy() / np.repeat(scale, k // scale.shape[1], axis=1))
    assert (q > recipe.element.qmax).any()  # the clamp does bite somewhere
    assert_same(st, breccia.cast(x, recipe), dtypes=True)
    assert_same(st, breccia.cast(to_np(x), recipe), dtypes=False)


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
@pytest.mark.parametrize(
    "recipe",
    [breccia.INT4Scaling(group_size=16, symmetric=False, signed=False),
     breccia.INT8Scaling(granularity="group", group_size=32, symmetric=False, signed=False, scale_dtype="bf16")],
    ids=recipe_id,
)  # fmt: skip
def test_asymmetric_codes_where_the_zero_point_needs_the_clamp(recipe: breccia.Recipe, dtype: torch.dtype) -> None:
    """Asymmetric blocks skip the clamp on the GPU when the quotients of the block's min and max round inside
    ``[QMIN − zp, QMAX − zp]``. The zero point is rounded and the scale too, so in some blocks the max's code lands
    one past QMAX (or the min's one below QMIN) and must be clamped: those programs take the clamping path."""
    g = torch.Generator().manual_seed(5)
    rows, k = 128, 512
    bk = recipe.group_size
    lo = -(0.05 + 3 * torch.rand((rows, k // bk, 1), generator=g, dtype=torch.float64))
    hi = 0.05 + 3 * torch.rand((rows, k // bk, 1), generator=g, dtype=torch.float64)
    t = torch.rand((rows, k // bk, bk), generator=g, dtype=torch.float64)
    t[..., 0], t[..., 1] = 0.0, 1.0  # every block holds its lo and hi
    x = (lo + (hi - lo) * t).reshape(rows, k).to(dtype).to(DEVICE)
    st = cast(x, recipe)
    assert st is not None
    ref = breccia.cast(to_np(x), recipe)
    scale = np.repeat(np.asarray(ref.scale, dtype=np.float64), bk, axis=1)
    zp = np.repeat(np.asarray(ref.zero_point, dtype=np.float64), bk, axis=1)
    q = np.rint(x.double().cpu().numpy() / scale) + zp
    fmt = recipe.element
    assert ((q > fmt.qmax) | (q < fmt.qmin)).any()  # the clamp does bite somewhere
    assert_same(st, breccia.cast(x, recipe), dtypes=True)
    assert_same(st, ref, dtypes=False)


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize("chunks", [2, 4])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize(
    "recipe",
    [
        breccia.Float8BlockScaling(block_m=128),
        breccia.Float8BlockScaling(block_m=32, block_k=32, fp8_format="E5M2"),
        breccia.Float8BlockScaling(block_k=16, block_m=8, power_of_2_scales=True),
        breccia.Float8BlockScaling(block_m=3, block_k=6),  # rows and words not powers of two: masked lanes
    ],
    ids=recipe_id,
)
def test_two_d_tiles_of_16_bit_floats_as_pair_words(
    recipe: breccia.Recipe, dtype: torch.dtype, chunks: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16-bit inputs with even blocks take the one-pass pair-word kernel (``_tile_words`` gives a view), with
    partial tiles at both edges, several tiles per program and 2 or 4 row chunks; a view that is not word-aligned
    takes the two-pass kernel. Both must give the reference's bytes."""
    monkeypatch.setattr(triton_cast, "PAIR_CHUNKS", chunks)
    took: list[bool] = []
    tile_words = triton_cast._tile_words
    monkeypatch.setattr(triton_cast, "_tile_words", lambda *a: took.append((w := tile_words(*a)) is not None) or w)
    for i, shape in enumerate([(130, 258), (2, 20, 96), (7, 12)]):
        x = make_input(shape, 40 + i, dtype)
        x.view(-1)[:: 31 + i] *= 2.0**12 if dtype == torch.bfloat16 else 4.0  # outliers: tiles of different scales
        assert_exact(x, recipe)
        assert took[-1], shape
    x = make_input((1, 40 * 66 + 1), 45, dtype).view(-1)[1:].view(40, 66)  # data_ptr 2 bytes past a word
    st = cast(x, recipe)
    assert st is not None and not took[-1]
    assert_same(st, breccia.cast(x, recipe), dtypes=True)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("recipe", SAMPLE, ids=recipe_id)
def test_nonfinite_falls_back_like_the_reference(recipe: breccia.Recipe, bad: float) -> None:
    x = make_input((4, 50), 7, torch.bfloat16)
    x[2, 41] = bad
    with pytest.raises(breccia.NonFiniteError) as got:
        cast(x, recipe)
    with pytest.raises(breccia.NonFiniteError) as want:
        breccia.cast(x, recipe)
    assert str(got.value) == str(want.value)
    st = cast(x, recipe, nonfinite="propagate")
    assert st is not None
    assert_same(st, breccia.cast(x, recipe, nonfinite="propagate"), dtypes=True)


def test_fp16_scale_overflow_raises_like_torch() -> None:
    recipe = breccia.INT4Scaling(group_size=16)  # fp16 scales: amax / 7 overflows fp16 past 458 745
    x = torch.full((2, 32), 1e6, device=DEVICE)
    with pytest.raises(breccia.RecipeError) as got:
        cast(x, recipe)
    with pytest.raises(breccia.RecipeError) as want:
        breccia.cast(x, recipe)
    assert str(got.value) == str(want.value)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=str)
def test_reciprocal_multiplier_overflow_raises_like_torch(dtype: torch.dtype) -> None:
    """NVFP4 with torchao's reciprocal rule on a tensor whose amax (2^-118) makes ``(1/g) / s_b`` overflow: the
    kernel flags it and the cast raises the reference's RecipeError (torchao's formula would encode 0 · inf). The
    kernel's flag is conservative (``1/g > 2^118``): between that and a real overflow the fallback's bytes stand."""
    recipe = breccia.NVFP4BlockScaling(block_scale_min=2.0**-6, data_scaling="reciprocal")
    x = torch.zeros(8, 64, dtype=dtype)
    x[0, 0], x[3, 17] = 2.0**-118, -(2.0**-121)
    x = x.to(DEVICE)
    with pytest.raises(breccia.RecipeError) as got:
        cast(x, recipe)
    with pytest.raises(breccia.RecipeError) as want:
        breccia.cast(to_np(x), recipe)  # the NumPy reference: breccia.cast of a CUDA tensor routes to this kernel
    assert str(got.value) == str(want.value) and "data_scaling='divide'" in str(got.value)
    assert_exact(x * 2.0**11, recipe)  # amax 2^-107: 1/g > 2^118 flags, the fallback's bytes (no overflow)
    assert_exact(x * 2.0**20, recipe)  # amax 2^-98: in range, the kernel's bytes


@pytest.mark.parametrize("recipe", RECIPES, ids=recipe_id)
def test_full_tiles_take_the_unmasked_kernel(recipe: breccia.Recipe) -> None:
    # the exact-tiling shapes of CASES must reach the FULL specialisation (else test_cast_matches_torch... would not
    # cover it), and awkward shapes must not
    lay = layout_for(recipe) or recipe.default_layout(-1)
    plans = {shape: triton_cast._plan(torch.zeros(shape, device=DEVICE), recipe, lay) for shape, _ in CASES}
    full = {s: p is not None and triton_cast._tiling(math.prod(s[:-1]), s[-2], p)[3] for s, p in plans.items()}
    assert not full[(5, 129)] and not full[(2, 3, 37)]
    bk = lay.block_shape((128, 256))[-1]
    if bk & (bk - 1) == 0:  # power-of-two blocks divide the 256-wide rows (others, e.g. 48, leave a partial block)
        assert full[(2, 128, 256)], recipe


def test_supports_is_narrow() -> None:
    x = torch.zeros((8, 64), device=DEVICE)
    assert supports(x, breccia.MXFP8BlockScaling())
    assert not supports(x, breccia.MXFP8BlockScaling(), axis=0)  # blocks along a leading axis
    assert supports(x, breccia.Float8BlockScaling(block_m=128))
    assert not supports(x[0], breccia.Float8BlockScaling(block_m=128))  # 2-D tiles need 2 dimensions
    big = torch.zeros((512, 512), device=DEVICE)
    assert not supports(big, breccia.Float8BlockScaling(block_m=512, block_k=512))  # a tile too big for registers
    assert not supports(x, breccia.INT8Scaling(granularity="tensor"))  # per-tensor integers: not yet
    assert not supports(x, breccia.INT4Scaling(group_size=7), PerBlockK(7))  # odd 4-bit groups straddle bytes
    mlx_affine = breccia.INT4Scaling(group_size=32, signed=False, symmetric=False, zero_point_domain="float")
    assert not supports(x, mlx_affine)  # float zero points (MLX affine): breccia-torch's own driver casts them
    assert cast(x, mlx_affine) is None
    assert not supports(x.to(torch.float64), breccia.MXFP8BlockScaling())
    assert not supports(torch.zeros((0, 64), device=DEVICE), breccia.MXFP8BlockScaling())
    assert not supports(np.zeros((8, 64), np.float32), breccia.MXFP8BlockScaling())
    assert cast(x, breccia.MXFP8BlockScaling(), axis=0) is None


def test_import_is_lazy() -> None:
    code = "import sys, breccia, breccia.triton; assert 'triton' not in sys.modules and 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
