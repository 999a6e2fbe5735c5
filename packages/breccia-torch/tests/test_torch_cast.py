"""breccia-torch casts are byte-identical to the numpy reference: every recipe × dtype × awkward shape × axis."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

import breccia
from breccia._testing import AWKWARD_SHAPES, RECIPES, assert_same_bits, axes_for, make_x, recipe_id

DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def to_np(x: torch.Tensor) -> np.ndarray:
    if x.dtype == torch.bfloat16:
        return x.float().cpu().numpy().astype(ml_dtypes.bfloat16)
    return x.cpu().numpy()


@pytest.mark.parametrize("recipe", RECIPES, ids=recipe_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_bytes_equal_reference(recipe: breccia.Recipe, dtype: torch.dtype, device: torch.device) -> None:
    for shape in AWKWARD_SHAPES:
        x = torch.from_numpy(make_x(shape, seed=sum(shape))).to(dtype).to(device)
        for axis in axes_for(recipe, len(shape)):
            st = breccia.cast(x, recipe, axis=axis)
            assert isinstance(st, breccia.ScaledTensor) and st.framework == "torch"
            assert st.data.device.type == device.type and st.scale.device.type == device.type
            ref = breccia.cast(to_np(x), recipe, axis=axis)
            assert_same_bits(st, ref)
            y = breccia.dequantize(st)
            assert y.dtype == torch.float32 and y.device.type == device.type
            np.testing.assert_array_equal(y.cpu().numpy(), breccia.dequantize(ref))


@pytest.mark.parametrize("recipe", RECIPES, ids=recipe_id)
def test_native_dtypes(recipe: breccia.Recipe, device: torch.device) -> None:
    st = breccia.cast(torch.randn(4, 64, device=device), recipe)
    fmt = recipe.element
    want = {
        "fp8": {"E4M3": torch.float8_e4m3fn, "E5M2": torch.float8_e5m2}.get(fmt.name),
        "packed4": torch.uint8,
        "byte": torch.uint8,
        "int8": torch.int8,
    }[fmt.storage]
    assert st.data.dtype == want
    kind = breccia._recipes.scale_kind(recipe)
    assert (
        st.scale.dtype
        == {
            "fp32": torch.float32,
            "fp16": torch.float16,
            "bf16": torch.bfloat16,
            "e8m0": torch.float8_e8m0fnu,
            "e4m3": torch.float8_e4m3fn,
        }[kind]
    )


def test_nonfinite_policy(device: torch.device) -> None:
    x = torch.randn(8, 300, device=device)
    x[5, 260] = float("nan")
    with pytest.raises(breccia.NonFiniteError, match=r"block \(5, 8\)"):
        breccia.cast(x, breccia.MXFP8BlockScaling())
    st = breccia.cast(x, breccia.MXFP8BlockScaling(), nonfinite="propagate")
    ref = breccia.cast(x.cpu().numpy(), breccia.MXFP8BlockScaling(), nonfinite="propagate")
    assert_same_bits(st, ref)
    assert torch.isnan(breccia.dequantize(st)[5, 260])


def test_bad_input_raises_core_errors(device: torch.device) -> None:
    with pytest.raises(breccia.DTypeError, match="int32"):
        breccia.cast(torch.ones(4, 32, dtype=torch.int32, device=device), breccia.MXFP8BlockScaling())
    with pytest.raises(breccia.DTypeError, match="complex64"):
        breccia.cast(torch.ones(4, 32, dtype=torch.complex64, device=device), breccia.MXFP8BlockScaling())
    with pytest.raises(breccia.LayoutError, match="axis=3"):
        breccia.cast(torch.ones(4, 32, device=device), breccia.MXFP8BlockScaling(), axis=3)
    with pytest.raises(breccia.RecipeError, match="PerBlockK"):
        breccia.cast(torch.ones(4, 64, device=device), breccia.MXFP8BlockScaling(), layout=breccia.PerBlockK(64))
    with pytest.raises(breccia.DTypeError, match="different frameworks"):
        breccia.matmul(torch.ones(4, 32, device=device), np.ones((32, 4), np.float32))
    st = breccia.cast(torch.ones(4, 64, device=device), breccia.MXFP8BlockScaling())
    with pytest.raises(breccia.DTypeError, match="float32"):
        breccia.from_buffer(st.data.float(), st.scale, st.recipe)
    with pytest.raises(breccia.RecipeError, match="overflows the fp16 scale"):
        breccia.cast(torch.full((2, 128), 1e9, device=device), breccia.INT4Scaling())
    tiny = torch.zeros(4, 4096, device=device)  # CPU: the C kernel, contiguous and a strided view; CUDA: its path
    tiny[1, 7] = 2.0**-118
    for x in (tiny, tiny[:, :64]):
        with pytest.raises(breccia.RecipeError, match="reciprocal data scaling overflows fp32"):
            breccia.cast(x, breccia.NVFP4BlockScaling(data_scaling="reciprocal"))


def test_empty_and_scalar(device: torch.device) -> None:
    for recipe in (breccia.MXFP4BlockScaling(), breccia.Float8CurrentScaling(), breccia.INT4Scaling(symmetric=False)):
        x = torch.zeros(0, 64, device=device)
        st = breccia.cast(x, recipe)
        assert_same_bits(st, breccia.cast(x.cpu().numpy(), recipe))
        assert breccia.dequantize(st).shape == (0, 64)
    s = breccia.cast(torch.tensor(3.0, device=device), breccia.Float8CurrentScaling())
    assert float(breccia.dequantize(s)) == 3.0


@pytest.mark.parametrize("recipe", RECIPES, ids=recipe_id)
def test_large_cpu_tensors_take_the_chunked_path_bit_exactly(recipe: breccia.Recipe) -> None:
    # > MIN_ELEMS, so the row-chunked CPU path runs where it applies; bytes must equal the numpy reference
    from breccia.torch import _chunked

    cases = [((1100, 1000), torch.float32), ((1030, 1024), torch.float32), ((1030, 1024), torch.bfloat16)]
    cases.append(((1152, 1024), torch.float32))  # whole 128×128 tiles: the tiled FP8 path
    for shape, dtype in cases:
        x = torch.from_numpy(make_x(shape, seed=3)).to(dtype)
        ref_in = to_np(x)
        for axis in axes_for(recipe, 2):
            lay = recipe.default_layout(axis - 2 if axis >= 0 else axis)
            chunked = _chunked.cast_chunked(breccia.torch.BACKEND.ops, x, recipe, lay, "raise")
            ref = breccia.cast(ref_in, recipe, axis=axis)
            assert_same_bits(breccia.cast(x, recipe, axis=axis), ref)
            if chunked is not None:
                assert_same_bits(chunked, ref)
    x = torch.from_numpy(make_x((1100, 1000), seed=3))
    x[700, 5] = float("nan")
    with pytest.raises(breccia.NonFiniteError):
        breccia.cast(x, recipe)


@pytest.mark.parametrize("name", ["E4M3", "E5M2"])
def test_native_fp8_encoder_equals_shared_encoder(name: str) -> None:
    # torch's float8 cast is the encoder TorchOps uses; it must equal the shared bit arithmetic (and ml_dtypes) on
    # every representable value, every midpoint, one ulp either side of each midpoint, and random values.
    from breccia import _math as M
    from breccia._formats import get_format
    from breccia.torch._ops import TorchOps

    fmt = get_format(name)
    dt = {"E4M3": torch.float8_e4m3fn, "E5M2": torch.float8_e5m2}[name]
    vals = torch.arange(256, dtype=torch.uint8).view(dt).float()
    vals = torch.unique(vals[torch.isfinite(vals)].abs())
    mids = ((vals[1:].double() + vals[:-1].double()) / 2).float()
    g = torch.Generator().manual_seed(0)
    rnd = (torch.rand(200_000, generator=g) * 2 - 1) * fmt.fmax
    x = torch.cat(
        [
            vals,
            mids,
            torch.nextafter(mids, torch.full_like(mids, float("inf"))),
            torch.nextafter(mids, torch.zeros_like(mids)),
            rnd,
        ]
    )
    x = torch.cat([x, -x]).clamp(-fmt.fmax, fmt.fmax)
    ops = TorchOps()
    native = ops.encode_float(x, fmt).to(torch.int32)
    shared = M.encode_float(ops, x, fmt).to(torch.int32) & 0xFF
    assert torch.equal(native, shared)
    ml = ml_dtypes.float8_e4m3fn if name == "E4M3" else ml_dtypes.float8_e5m2
    ref = torch.from_numpy(x.numpy().astype(ml).view(np.uint8)).to(torch.int32)
    assert torch.equal(native, ref)


def test_raise_inside_cuda_graph_capture_is_refused(device: torch.device) -> None:
    """``nonfinite="raise"`` needs a host sync, which capture forbids: a clear RecipeError before any kernel is
    queued, instead of torch's invalidated capture; outside the capture the same call still raises on a NaN."""
    if device.type != "cuda":
        pytest.skip("CUDA graph capture needs --device cuda")
    recipe = breccia.MXFP8BlockScaling()
    x = torch.randn(64, 256, device=device)
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        breccia.cast(x, recipe, nonfinite="propagate")  # warm-up on a side stream, as capture requires
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(breccia.RecipeError, match="nonfinite='propagate'"), torch.cuda.graph(graph):
        breccia.cast(x, recipe)
    x[3, 7] = float("nan")
    with pytest.raises(breccia.NonFiniteError):
        breccia.cast(x, recipe)
