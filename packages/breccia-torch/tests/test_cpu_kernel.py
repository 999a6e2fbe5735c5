"""The optional C kernel of the torch CPU cast: its encoder against torch's native FP8 conversion and the shared
reference encoder, whole casts against the numpy reference with the kernel on and off, and every way it can be
unavailable (no compiler, a failing compiler, a corrupt cache, a failed self-check) falling back silently."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch

import breccia
from breccia import _math as M
from breccia._api import _resolve
from breccia._formats import decode_table, get_format
from breccia._ops import NumpyOps
from breccia._testing import AWKWARD_SHAPES, RECIPES, assert_same_bits, axes_for, make_x, recipe_id
from breccia.torch import _chunked
from breccia.torch import _cpu_kernel as CK

HAVE_CC = any(shutil.which(c) for c in ("cc", "gcc", "clang"))
needs_cc = pytest.mark.skipif(not HAVE_CC, reason="no C compiler on this machine: the kernel cannot be built")
KERNEL_RECIPES = [r for r in RECIPES if r.element.name in CK.FORMATS]
FP8 = {"E4M3": torch.float8_e4m3fn, "E5M2": torch.float8_e5m2}


@pytest.fixture
def kern(monkeypatch: pytest.MonkeyPatch) -> CK.CpuKernel:
    monkeypatch.delenv(CK.ENV, raising=False)
    k = CK.kernel()
    assert k is not None, f"the CPU kernel did not build: {CK.last_error()}"
    return k


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A private cache directory and a fresh load state; the process-wide kernel is reloaded afterwards."""
    monkeypatch.delenv(CK.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    CK.reset()
    yield tmp_path / "breccia"
    monkeypatch.undo()
    CK.reset()


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One entry per kernel attempt: whether the kernel produced the cast (so a test cannot pass by falling back)."""
    taken: list[bool] = []
    real = _chunked._kernel_cast

    def wrapped(*args: Any) -> Any:
        out = real(*args)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(_chunked, "_kernel_cast", wrapped)
    return taken


def encode(k: CK.CpuKernel, x: torch.Tensor, fmt: str, s: float = 1.0, multiply: bool = False) -> np.ndarray:
    """Kernel codes of a 1-D fp32 ``x`` (one block, scale ``s``), unpacked to one uint8 per element."""
    n = x.numel()
    out = torch.empty(1, (n + 1) // 2 if fmt in CK.PACKED else n, dtype=torch.uint8)
    k.encode_blocks(x.reshape(1, -1), n, torch.full((1, 1), s), multiply, fmt, out)
    got = out.numpy().reshape(-1)
    if fmt in CK.PACKED:
        if n % 2:
            assert got[-1] >> 4 == 0  # the padding nibble of an odd row
        got = np.stack([got & 15, got >> 4], axis=-1).reshape(-1)[:n]
    return got


def probe_values(name: str, n_random: int) -> np.ndarray:
    """Every code's value, every midpoint and its fp32 neighbours, out-of-range and subnormal values, ±0, and random
    fp32 bit patterns spread over the whole exponent range (both signs)."""
    fmt = get_format(name)
    table = decode_table(name)
    vals = np.unique(np.abs(table[np.isfinite(table)])).astype(np.float32)
    mids = ((vals[1:].astype(np.float64) + vals[:-1]) / 2).astype(np.float32)
    inf = np.float32(np.inf)
    beyond = np.array([fmt.fmax * 1.0001, fmt.fmax * 1.5, fmt.fmax * 64, 3.4e38, np.inf], dtype=np.float32)
    tiny = np.array([1e-45, 1e-40, 2.0**-126, 2.0**-127, vals[1] / 2, vals[1] / 3, vals[1] * 0.5001], np.float32)
    rng = np.random.default_rng(len(name))
    bits = rng.integers(0, 1 << 32, n_random, dtype=np.uint64).astype(np.uint32)
    rnd = bits.view(np.float32)
    rnd = rnd[np.isfinite(rnd)]
    x = np.concatenate([vals, mids, np.nextafter(mids, inf), np.nextafter(mids, np.float32(0)), beyond, tiny, rnd])
    return np.concatenate([x, -x]).astype(np.float32)


@needs_cc
@pytest.mark.parametrize("name", ["E4M3", "E5M2"])
@pytest.mark.parametrize(("s", "multiply"), [(1.0, False), (1.0, True), (0.7, False), (3e-5, True), (2.0**-127, False)])
def test_fp8_encoder_equals_torch_and_reference(kern: CK.CpuKernel, name: str, s: float, multiply: bool) -> None:
    fmt = get_format(name)
    x = probe_values(name, 1 << 20)
    sf = np.float32(s)
    with np.errstate(over="ignore"):
        v = np.clip(x * sf if multiply else x / sf, -fmt.fmax, fmt.fmax)
    got = encode(kern, torch.from_numpy(x), name, s, multiply)
    native = torch.from_numpy(v).to(FP8[name]).view(torch.uint8).numpy()
    shared = M.encode_float(NumpyOps(), v, fmt).astype(np.uint8)
    np.testing.assert_array_equal(got, shared)
    np.testing.assert_array_equal(got, native)
    ml = ml_dtypes.float8_e4m3fn if name == "E4M3" else ml_dtypes.float8_e5m2
    np.testing.assert_array_equal(got, v.astype(ml).view(np.uint8))


@needs_cc
@pytest.mark.parametrize("name", ["E2M1", "E2M3", "E3M2"])
@pytest.mark.parametrize(("s", "multiply"), [(1.0, False), (1.0, True), (0.3, False), (7e-3, True)])
def test_small_float_encoder_equals_reference(kern: CK.CpuKernel, name: str, s: float, multiply: bool) -> None:
    fmt = get_format(name)
    x = probe_values(name, 1 << 18)
    x = x[: x.size - 1 + x.size % 2]  # an odd count: the packed row ends in half a byte
    sf = np.float32(s)
    with np.errstate(over="ignore"):
        v = np.clip(x * sf if multiply else x / sf, -fmt.fmax, fmt.fmax)
    np.testing.assert_array_equal(
        encode(kern, torch.from_numpy(x), name, s, multiply), M.encode_float(NumpyOps(), v, fmt)
    )
    assert encode(kern, torch.tensor([-1e-30, -0.0, 0.0]), name).tolist() == [
        1 << fmt.sign_shift,
        1 << fmt.sign_shift,
        0,
    ]


@needs_cc
def test_absmax_blocks(kern: CK.CpuKernel) -> None:
    wide = torch.from_numpy(make_x((37, 300), seed=1))
    x = wide[:, :250]  # a row stride wider than the row, and a partial last block
    x[4, :40] = -0.0
    grid = torch.empty(37, 8)
    assert kern.absmax_blocks(x, 32, grid)
    want = torch.nn.functional.pad(x.abs(), (0, 6)).view(37, 8, 32).amax(-1)
    assert torch.equal(grid.view(torch.int32), want.view(torch.int32))
    for bad in (float("nan"), float("inf"), -float("inf")):
        y = x.clone()
        y[36, 249] = bad
        assert not kern.absmax_blocks(y, 32, grid)


def check_cast(x: torch.Tensor, recipe: breccia.Recipe, axis: int, nonfinite: str = "raise") -> None:
    ref_in = x.float().numpy().astype(ml_dtypes.bfloat16) if x.dtype == torch.bfloat16 else x.numpy()
    ref = breccia.cast(ref_in, recipe, axis=axis, nonfinite=nonfinite)  # type: ignore[call-overload]
    st = breccia.cast(x, recipe, axis=axis, nonfinite=nonfinite)  # type: ignore[call-overload]
    assert_same_bits(st, ref)


def inputs() -> list[torch.Tensor]:
    big = torch.from_numpy(make_x((1100, 1000), seed=3))
    nd = torch.from_numpy(make_x((3, 130, 257), seed=4))
    return [
        *(torch.from_numpy(make_x(s, seed=sum(s))) for s in AWKWARD_SHAPES),
        big,
        nd,
        torch.from_numpy(make_x((300, 517), seed=5)).t(),  # transposed: K is not the contiguous axis
        torch.from_numpy(make_x((129, 700), seed=6))[:, 1::2],  # a column stride of 2
        torch.from_numpy(make_x((1, 640), seed=7)).expand(50, 640),  # a row stride of 0
        nd.to(torch.bfloat16),
        big[:257].to(torch.float16),
        big[:300].double(),
    ]


@needs_cc
@pytest.mark.parametrize("recipe", KERNEL_RECIPES, ids=recipe_id)
def test_cast_equals_reference_with_kernel_on_and_off(
    recipe: breccia.Recipe, kern: CK.CpuKernel, spy: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    for x in inputs():
        for axis in axes_for(recipe, x.ndim):
            spy.clear()
            check_cast(x, recipe, axis)
            lay = _resolve(recipe, None, axis, "test", x.ndim)
            expect = _chunked._kernel_tile(lay, tuple(x.shape)) is not None
            assert spy == [expect], (tuple(x.shape), x.dtype, axis, spy)
    monkeypatch.setenv(CK.ENV, "0")
    spy.clear()
    for x in inputs()[-6:]:
        for axis in axes_for(recipe, x.ndim):
            check_cast(x, recipe, axis)
    assert not any(spy)


@needs_cc
def test_threads_split_rows_bit_exactly(kern: CK.CpuKernel, spy: list[bool], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CK, "_MIN_THREAD_ELEMS", 1000)
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        x = torch.from_numpy(make_x((517, 384), seed=8))
        for recipe in (
            breccia.Float8BlockScaling(block_m=128),
            breccia.NVFP4BlockScaling(),
            breccia.MXFP6BlockScaling(),
        ):
            check_cast(x, recipe, -1)
    finally:
        torch.set_num_threads(threads)
    assert spy == [True] * 3


@needs_cc
@pytest.mark.parametrize("recipe", KERNEL_RECIPES, ids=recipe_id)
def test_scale_math_in_grid_chunks_bit_exactly(
    recipe: breccia.Recipe, kern: CK.CpuKernel, spy: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_chunked, "_SCALE_CHUNK", 200)  # many chunks of grid rows, one partial at the end
    for x in (torch.from_numpy(make_x((301, 520), seed=14)), torch.from_numpy(make_x((3, 70, 300), seed=15))):
        check_cast(x, recipe, -1)
    assert spy == [True, True]


@needs_cc
@pytest.mark.parametrize(
    "recipe",
    [
        breccia.Float8CurrentScaling(),
        breccia.Float8BlockScaling(block_m=128),
        breccia.MXFP4BlockScaling(),
        breccia.NVFP4BlockScaling(),
    ],
    ids=recipe_id,
)
def test_nonfinite_input_falls_back(recipe: breccia.Recipe, kern: CK.CpuKernel, spy: list[bool]) -> None:
    for bad in (float("nan"), float("inf")):
        x = torch.from_numpy(make_x((256, 512), seed=9))
        x[200, 300] = bad
        with pytest.raises(breccia.NonFiniteError, match=r"block \(") as err:
            breccia.cast(x, recipe)
        assert spy[-1] is False  # the kernel saw the NaN/Inf and handed over
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(CK.ENV, "0")
            with pytest.raises(breccia.NonFiniteError) as eager:
                breccia.cast(x, recipe)
            off = breccia.cast(x, recipe, nonfinite="propagate")
        assert str(err.value) == str(eager.value)
        st = breccia.cast(x, recipe, nonfinite="propagate")
        assert spy[-1] is False
        assert_same_bits(st, off)
        if not recipe.has_global_scale:
            # NVFP4 two-level: a NaN/Inf makes the global scale non-finite for every block, and the numpy reference
            # then encodes the NaN quotients of the blocks without NaN/Inf as code 0xF where torch's eager path
            # gives 0 (a discrepancy older than this kernel, which only hands such input to the eager path)
            assert_same_bits(st, breccia.cast(x.numpy(), recipe, nonfinite="propagate"))


@needs_cc
def test_tensors_without_storage_take_the_eager_path(kern: CK.CpuKernel, spy: list[bool]) -> None:
    x = torch.from_numpy(make_x((4, 8, 64), seed=16))
    recipe = breccia.MXFP8BlockScaling()
    try:
        got = torch.vmap(lambda t: breccia.dequantize(breccia.cast(t, recipe, nonfinite="propagate")))(x)
    except RuntimeError as e:  # torch ≤ 2.11 has no vmap batching rule for view(dtype), which the eager cast uses
        if "Batching rule not implemented" not in str(e):
            raise
        pytest.skip(f"torch {torch.__version__}: {str(e).splitlines()[0]}")
    assert spy and not any(spy)  # vmap's batched tensors have no data pointer
    assert torch.equal(got, torch.stack([breccia.dequantize(breccia.cast(t, recipe)) for t in x]))
    assert spy[-1] is True


def test_disabled_by_env(monkeypatch: pytest.MonkeyPatch, spy: list[bool]) -> None:
    monkeypatch.setenv(CK.ENV, "0")
    assert CK.kernel() is None
    check_cast(torch.from_numpy(make_x((64, 256), seed=10)), breccia.MXFP8BlockScaling(), -1)
    assert spy == [False]


def test_missing_compiler_falls_back(isolated: Path, monkeypatch: pytest.MonkeyPatch, spy: list[bool]) -> None:
    monkeypatch.setattr(CK, "COMPILER", "/nonexistent/breccia-cc")
    assert CK.kernel() is None
    assert "/nonexistent/breccia-cc" in (CK.last_error() or "")
    assert CK.kernel() is None  # the failure is remembered, not retried per call
    for recipe in (breccia.Float8BlockScaling(), breccia.MXFP4BlockScaling()):
        check_cast(torch.from_numpy(make_x((300, 256), seed=11)), recipe, -1)
    assert spy == [False, False]
    assert not isolated.exists() or not any(isolated.iterdir())


def test_failing_compiler_falls_back(isolated: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "fake-cc"
    fake.write_text("#!/bin/sh\necho 'fake-cc 1.0'\n[ \"$1\" = --version ] && exit 0\necho broken >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(CK, "COMPILER", str(fake))
    assert CK.kernel() is None
    assert "exited 3" in (CK.last_error() or "") and "broken" in (CK.last_error() or "")
    assert not any(p.suffix == ".tmp" for p in isolated.iterdir())  # no temporary left behind
    check_cast(torch.from_numpy(make_x((40, 96), seed=12)), breccia.MXFP6BlockScaling(), -1)


@needs_cc
@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_cached_library_is_rebuilt(isolated: Path, damage: str, spy: list[bool]) -> None:
    first = CK.kernel()
    assert first is not None, CK.last_error()
    path = first.path
    assert path.parent == isolated and path.exists()
    good = path.read_bytes()
    CK.reset()
    # The damaged file replaces the good one under its name (a new inode), as another process's write would: this
    # process still maps the good build, and rewriting a mapped library in place crashes any process using it
    # (SIGBUS), which is why the cache itself only ever moves complete files into place.
    bad = path.with_name("damaged")
    bad.write_bytes(
        {"garbage": b"not a shared library" * 100, "truncated": good[: len(good) // 3], "empty": b""}[damage]
    )
    os.replace(bad, path)
    again = CK.kernel()
    assert again is not None, CK.last_error()
    assert again.path == path and len(path.read_bytes()) == len(good)
    check_cast(torch.from_numpy(make_x((33, 160), seed=13)), breccia.NVFP4BlockScaling(), -1)
    assert spy == [True]


@needs_cc
def test_failed_self_check_falls_back(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CK, "_self_check", lambda k: "E4M3 encodes 1.0 as 0x0")
    assert CK.kernel() is None
    assert "self-check" in (CK.last_error() or "")


@needs_cc
def test_concurrent_first_use_builds_once(isolated: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: CK.kernel(), range(8)))
    assert got[0] is not None and all(k is got[0] for k in got)
    assert [p.name for p in isolated.iterdir()] == [got[0].path.name]


def test_nothing_is_compiled_at_import() -> None:
    code = "import breccia, breccia.torch; from breccia.torch import _cpu_kernel as C; print(C._STATE.tried)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
