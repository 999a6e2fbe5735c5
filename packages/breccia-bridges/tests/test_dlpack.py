"""DLPack: every recipe across numpy / torch / jax / mlx with the bits intact, and zero-copy where the frameworks
allow it (checked by comparing data pointers)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import ALL_RECIPES, FRAMEWORKS, assert_same_bits, cast_np, framework_available

import breccia
from breccia.bridges import from_dlpack, to_dlpack

FP8_NATIVE = {"numpy", "torch", "jax"}


@pytest.mark.parametrize("recipe", ALL_RECIPES)
@pytest.mark.parametrize("src", FRAMEWORKS)
@pytest.mark.parametrize("dst", FRAMEWORKS)
def test_every_recipe_between_every_pair(recipe: breccia.Recipe, src: str, dst: str) -> None:
    ref = cast_np(recipe, (3, 67))
    a = from_dlpack(ref, framework=src)
    b = from_dlpack(a, framework=dst)
    assert b.framework == dst
    assert_same_bits(ref, b)
    if recipe.element.storage == "fp8":  # FP8 stays a float8 dtype where the framework has one, else uint8 bytes
        want = recipe.element.native if dst in FP8_NATIVE else "uint8"
        assert str(b.data.dtype).rsplit(".", 1)[-1] == want


def _ptr(arr: Any) -> int:
    mod = type(arr).__module__.split(".")[0]
    if mod == "numpy":
        return int(arr.ctypes.data)
    if mod == "torch":
        return int(arr.data_ptr())
    if mod in ("jax", "jaxlib"):
        return int(arr.unsafe_buffer_pointer())
    return int(np.from_dlpack(arr).ctypes.data)  # mlx: its own DLPack export names its buffer


ZERO_COPY = [("numpy", "torch"), ("torch", "numpy"), ("jax", "numpy"), ("jax", "torch"), ("mlx", "numpy"),
             ("mlx", "torch")]  # fmt: skip


ZC_RECIPES = [breccia.Float8BlockScaling(), breccia.MXFP8BlockScaling(), breccia.MXFP4BlockScaling()]


@pytest.mark.parametrize(("src", "dst"), ZERO_COPY)
@pytest.mark.parametrize("recipe", ZC_RECIPES)
def test_zero_copy_where_frameworks_allow(src: str, dst: str, recipe: breccia.Recipe) -> None:
    for fw in (src, dst):
        if not framework_available(fw):
            pytest.skip(f"{fw} not installed")
    a = from_dlpack(cast_np(recipe, (8, 256)), framework=src)
    b = from_dlpack(a, framework=dst)
    assert _ptr(b.data) == _ptr(a.data)
    assert _ptr(b.scale) == _ptr(a.scale)


def test_seed_api() -> None:
    torch = pytest.importorskip("torch")
    st_numpy = cast_np(breccia.MXFP8BlockScaling(), (4, 64))
    st_torch = from_dlpack(st_numpy, framework="torch")
    assert st_torch.data.dtype == torch.float8_e4m3fn and st_torch.scale.dtype == torch.float8_e8m0fnu
    data_capsule, scale_capsule = to_dlpack(st_torch)
    data = torch.from_dlpack(data_capsule)
    assert data.dtype == torch.float8_e4m3fn and data.data_ptr() == st_torch.data.data_ptr()
    assert torch.equal(torch.from_dlpack(scale_capsule).view(torch.uint8), st_torch.scale.view(torch.uint8))
    if framework_available("mlx"):
        st_mlx = from_dlpack(st_torch, framework="mlx")
        assert_same_bits(st_numpy, st_mlx)


def test_numpy_float8_exports_uint8_bytes_and_extra_buffers() -> None:
    torch = pytest.importorskip("torch")
    st = cast_np(breccia.NVFP4BlockScaling(), (2, 32))
    caps = to_dlpack(st)
    assert torch.from_dlpack(caps.scale).dtype == torch.uint8  # ml_dtypes float8 travels as its bytes
    assert torch.from_dlpack(caps.global_scale).item() == float(st.global_scale)
    assert caps.zero_point is None
    asym = cast_np(breccia.INT4Scaling(group_size=32, symmetric=False), (2, 64))
    assert torch.from_dlpack(to_dlpack(asym).zero_point).dtype == torch.int8


def test_bad_arguments() -> None:
    st = cast_np(breccia.Float8CurrentScaling())
    with pytest.raises(breccia.DTypeError, match="framework must be one of"):
        from_dlpack(st, framework="tensorflow")
    with pytest.raises(breccia.DTypeError, match="needs a ScaledTensor"):
        from_dlpack(np.zeros(3), framework="numpy")  # type: ignore[arg-type]
    with pytest.raises(breccia.DTypeError, match="device="):
        from_dlpack(st, framework="numpy", device="cuda")
