"""The Triton quantize is byte-identical to breccia-torch and to the numpy reference, recipe by recipe.

Runs on CUDA when available, else under ``TRITON_INTERPRET=1`` on CPU (conftest.py), at small awkward sizes:
K not a multiple of the block, odd K for 4-bit, row counts that are not a multiple of the tile, all-zero blocks,
outliers, and rows whose magnitudes reach fp32's subnormal range (scale and element subnormals both occur).
"""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch
from _cast_common import (
    CASES,
    DEVICE,
    DTYPES,
    RECIPES,
    SAMPLE,
    assert_exact,
    assert_same,
    layout_for,
    make_input,
    to_np,
)

import breccia
from breccia._layouts import PerBlock2D, PerBlockK
from breccia._recipes import scale_kind
from breccia._testing import make_x, recipe_id
from breccia.triton import _cast as triton_cast
from breccia.triton import cast, supports

# the interpreter runs the kernel in numpy, which warns where the GPU silently overflows to inf (flagged inputs)
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


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


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize("recipe", SAMPLE, ids=recipe_id)
def test_int64_offsets(recipe: breccia.Recipe, monkeypatch: pytest.MonkeyPatch) -> None:
    """The int64 address path that inputs of 2^31 elements or more take (rows, 2-D tiles, pair words), run on small
    ones: the bytes are the same."""
    monkeypatch.setattr(triton_cast, "I64_FROM", 0)
    for i, (shape, dtype) in enumerate([((5, 129), torch.bfloat16), ((2, 128, 256), torch.bfloat16),
                                        ((33, 256), torch.float32)]):  # fmt: skip
        assert_exact(make_input(shape, 40 + i, dtype), recipe, layout_for(recipe))


class _Spy:
    """A kernel whose launches record one keyword (``KV``, the row length's power-of-two factor, by default) and
    then run."""

    def __init__(self, kernel: Any, seen: list[Any], key: str = "KV", default: Any = 1) -> None:
        self.kernel, self.seen, self.key, self.default = kernel, seen, key, default

    def __getitem__(self, grid: Any) -> Any:
        def launch(*args: Any, **kw: Any) -> Any:
            self.seen.append(kw.get(self.key, self.default))
            return self.kernel[grid](*args, **kw)

        return launch


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize(("knob", "grid_y", "swap"), [(False, 65535, False), (True, 65535, True), (True, 1, False)],
                         ids=["rows-first", "tiles-first", "past-grid-y"])  # fmt: skip
def test_nvfp4_2d_tiles_in_either_grid_order(
    knob: bool, grid_y: int, swap: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NVFP4 16×16 programs launched with the row's tiles along the grid's fast axis (``SWAP``, the default) or
    down the row blocks (where the row programs exceed CUDA's grid-y limit, lowered here so the host's own check
    decides): the same bytes, and the order the host should pick."""
    from breccia.triton import _kernel as K

    seen: list[bool] = []
    monkeypatch.setattr(triton_cast, "NV2D_SWAP", knob)
    monkeypatch.setattr(triton_cast, "GRID_Y_MAX", grid_y)
    monkeypatch.setattr(K, "quant_rows_kernel", _Spy(K.quant_rows_kernel, seen, "SWAP", False))
    recipes = [r for r in RECIPES if isinstance(r, breccia.NVFP4BlockScaling) and r.block_m == 16]
    assert recipes
    for i, recipe in enumerate(recipes):
        for shape, dtype in (((2, 48, 256), torch.bfloat16), ((40, 1024), torch.float16), ((33, 100), torch.float32)):
            assert_exact(make_input(shape, 70 + i, dtype), recipe, layout_for(recipe))
    assert set(seen) == {swap}


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize("k", [34, 100, 200, 48], ids=lambda k: f"K{k}")
def test_row_lengths_with_a_small_power_of_two(k: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Row lengths that are multiples of 2, 4, 8 or 16 but not of 16 (or, for 4-bit codes, 32) reach the kernels
    divided by that factor, which they multiply back (the launch's own specialisation sees only multiples of 16):
    the bytes are the same, and every kernel family takes the path."""
    from breccia.triton import _kernel as K
    from breccia.triton import _kernel2d as K2

    seen: list[int] = []
    for mod, name in ((K, "quant_rows_kernel"), (K2, "quant_tiles_kernel"), (K2, "quant_tiles_pairs_kernel")):
        monkeypatch.setattr(mod, name, _Spy(getattr(mod, name), seen))
    for i, recipe in enumerate(SAMPLE):
        for dtype in (torch.bfloat16, torch.float32):
            assert_exact(make_input((9, k), 60 + i, dtype), recipe, layout_for(recipe))
    # the row kernels take K's factor (for 4-bit codes up to 32: KD = K / 2 bytes), the pair-word kernel K / 2's
    kinds = {34: {1, 2}, 100: {2, 4}, 200: {4, 8}, 48: {1, 8, 16}}[k]
    assert set(seen) == kinds, seen


@pytest.mark.skipif(DEVICE.type != "cuda", reason="CUDA graph capture needs a GPU")
@pytest.mark.parametrize("recipe", SAMPLE, ids=recipe_id)
def test_cast_inside_cuda_graph_capture(recipe: breccia.Recipe) -> None:
    """``breccia.cast(..., nonfinite="propagate")`` can be captured in a CUDA graph: the Triton cast steps aside
    while the stream captures (its non-finite flag is read on the host, a sync capture forbids; on an H100 every
    recipe's capture failed before) and breccia-torch's sync-free driver is captured instead. The graph replayed on
    new input equals the eager cast of that input, byte for byte."""
    x = make_input((64, 256), 0, torch.bfloat16, big=False)
    layout = layout_for(recipe)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the default stream, as torch.cuda.graph requires
        breccia.cast(x, recipe, layout=layout, nonfinite="propagate")
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        st = breccia.cast(x, recipe, layout=layout, nonfinite="propagate")
    x.copy_(make_input((64, 256), 1, torch.bfloat16, big=False))
    graph.replay()
    torch.cuda.synchronize()
    assert_same(st, breccia.cast(x, recipe, layout=layout, nonfinite="propagate"), dtypes=True)


@pytest.mark.skipif(DEVICE.type != "cuda", reason="CUDA graph capture needs a GPU")
def test_raise_inside_cuda_graph_capture_is_refused() -> None:
    """``nonfinite="raise"`` needs the flag on the host, which capture forbids: breccia-torch refuses it with a
    RecipeError naming ``"propagate"`` before anything is queued, instead of torch's invalidated-capture error at
    the sync. (breccia-torch's twin checks the refusal and NaN raising afterwards; this one checks that the Triton
    path is intact after the refused capture: the stream left capture mode, and the cast outside it has the
    reference bytes.)"""
    x = make_input((64, 256), 0, torch.bfloat16, big=False)
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(breccia.RecipeError, match="nonfinite='propagate'"), torch.cuda.graph(graph):
        breccia.cast(x, breccia.Float8BlockScaling())
    assert not torch.cuda.is_current_stream_capturing()
    assert_exact(x, breccia.Float8BlockScaling())


def test_cast_steps_aside_only_for_cuda_capture() -> None:
    """The capture check runs for CUDA tensors only: on a machine whose CUDA build finds no driver (CI's) asking
    raises, yet a CPU cast goes through. On a GPU, inside a real capture, the Triton cast declines (and launches
    nothing)."""
    x = make_input((4, 64), 0, torch.float32, big=False)
    if DEVICE.type != "cuda":
        assert cast(x, breccia.Float8BlockScaling()) is not None
        return
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        got = cast(x, breccia.Float8BlockScaling())
    assert got is None


def test_hidden_factor() -> None:
    f = triton_cast._hidden_factor
    assert [f(n, 16) for n in (16, 4096, 5000, 300, 34, 129, 8)] == [1, 1, 8, 4, 2, 1, 8]
    assert [f(n, 32) for n in (48, 64, 5008, 96)] == [16, 1, 16, 1]


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
