"""The per-tensor amax pass (``_amax.tensor_amax``) equals torch's ``abs().amax()`` bit for bit, and the NVFP4 global
scale the encode kernel computes from it and writes (program (0, 0) of ``quant_rows_kernel``) equals the NumPy
reference's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import breccia
from breccia.triton import _cast
from breccia.triton._amax import BLOCK, tensor_amax

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
DTYPES = [torch.bfloat16, torch.float16, torch.float32]


def torch_amax(x: torch.Tensor) -> torch.Tensor:
    return x.float().abs().amax().reshape(1) if x.numel() else torch.zeros(1, device=x.device)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n", [1, 7, 2 * BLOCK + 3, 3 * BLOCK], ids=lambda n: f"n{n}")
def test_amax_matches_torch(dtype: torch.dtype, n: int) -> None:
    """Random magnitudes spanning the dtype's range (subnormals included), both signs; the largest element placed
    at a random position, negative, so a reduction that drops the sign bit or a tail element fails."""
    g = torch.Generator().manual_seed(n)
    info = torch.finfo(dtype)
    e = torch.randint(int(torch.log2(torch.tensor(info.smallest_normal)).item()) - 8, 10, (n,), generator=g)
    x = (torch.rand(n, generator=g) + 0.5) * torch.exp2(e.float()) * (torch.randint(0, 2, (n,), generator=g) * 2 - 1)
    x[int(torch.randint(0, n, (1,), generator=g))] = -3000.0
    x = x.to(dtype).to(DEVICE)
    got = tensor_amax(x)
    assert got.dtype == torch.float32 and got.shape == (1,)
    assert torch.equal(got.view(torch.int32), torch_amax(x).view(torch.int32))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_amax_of_unaligned_view_and_special_values(dtype: torch.dtype) -> None:
    """An odd-offset view (16-bit inputs cannot be read as pairs), all zeros (−0 included), Inf, and NaN."""
    base = torch.linspace(-2, 1, 4 * BLOCK + 5, dtype=torch.float32).to(dtype).to(DEVICE)
    x = base[1:]
    assert torch.equal(tensor_amax(x).view(torch.int32), torch_amax(x).view(torch.int32))
    zeros = -torch.zeros(999, dtype=dtype, device=DEVICE)
    assert tensor_amax(zeros).item() == 0.0 and tensor_amax(zeros).view(torch.int32).item() == 0
    assert tensor_amax(torch.zeros(0, dtype=dtype, device=DEVICE)).item() == 0.0
    y = base.clone()
    y[17] = -float("inf")
    assert tensor_amax(y).item() == float("inf")
    y[BLOCK + 2] = float("nan")
    assert torch.isnan(tensor_amax(y)).item()


def _reference_global_scale(x: torch.Tensor) -> torch.Tensor:
    """NVFP4's global scale from breccia-core's NumPy reference (the contract), as a float32 tensor of shape ()."""
    st = breccia.cast(x.float().cpu().numpy(), breccia.NVFP4BlockScaling())
    return torch.from_numpy(np.asarray(st.global_scale, dtype=np.float32).reshape(()))


def _kernel_global_scale(x: torch.Tensor, recipe: breccia.Recipe | None = None) -> torch.Tensor:
    """The global scale of breccia-triton's cast: the encode kernel's store. The tests that call this use the
    ``no_fallback`` fixture, since a fallback to breccia-torch would hide a kernel that does not write it."""
    st = _cast.cast(x, recipe or breccia.NVFP4BlockScaling())
    assert st is not None and isinstance(st.global_scale, torch.Tensor)
    assert st.global_scale.dtype == torch.float32 and st.global_scale.shape == () and st.global_scale.device == x.device
    return st.global_scale.cpu()


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(1, 16), (64, 512), (3, 2 * BLOCK + 32)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_global_scale_matches_reference(dtype: torch.dtype, shape: tuple[int, int]) -> None:
    """Random magnitudes, the largest value in the last row and column block (so a scale computed from program
    (0, 0)'s own blocks instead of the tensor amax is wrong) and a near-largest one at a random place."""
    g = torch.Generator().manual_seed(7 * shape[0] + shape[1])
    x = torch.randn(*shape, generator=g) * 3
    x[int(torch.randint(0, shape[0], (1,), generator=g)), int(torch.randint(0, shape[1], (1,), generator=g))] = -1200.0
    x[-1, -1 - int(torch.randint(0, 16, (1,), generator=g))] = -(1600.0 + float(torch.rand(1, generator=g)) * 400.0)
    x = x.to(dtype).to(DEVICE)
    got = _kernel_global_scale(x)
    assert torch.equal(got.view(torch.int32), _reference_global_scale(x).view(torch.int32))


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize(
    "fill",
    [0.0, 1e-41, 6.0 * 448.0, 2.0**-120, 3.0e38],
    ids=["zeros", "subnormal_amax", "exactly_2688", "tiny_amax", "huge_amax"],
)
def test_global_scale_edges(fill: float) -> None:
    """amax 0 gives 1 (not 0 / 2688); a subnormal or tiny amax rounds as a true division does (no flush to zero,
    no reciprocal: those two leave the fast division's range, so the scale comes from the SAFE relaunch); 2688
    gives exactly 1."""
    x = torch.full((4, 32), fill, dtype=torch.float32)
    x[1, 3] = -fill
    x = x.to(DEVICE)
    got = _kernel_global_scale(x)
    assert torch.equal(got.view(torch.int32), _reference_global_scale(x).view(torch.int32))
    want = torch.tensor(1.0) if fill == 0 else torch.tensor(fill, dtype=torch.float32) / torch.tensor(2688.0)
    assert torch.equal(got.view(torch.int32), want.view(torch.int32))


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize(
    "r",
    [
        breccia.NVFP4BlockScaling(block_scale_min=2.0**-6, data_scaling="reciprocal"),
        breccia.NVFP4BlockScaling(block_m=16),
    ],
    ids=["torchao_rules", "16x16"],
)
def test_global_scale_of_the_other_two_level_recipes(r: breccia.Recipe) -> None:
    """The torchao rules (a reciprocal multiplier) and the 16×16 tiles (the row-tile launch) write it too."""
    x = (torch.randn(64, 256, generator=torch.Generator().manual_seed(3)) * 5).to(torch.bfloat16).to(DEVICE)
    want = torch.from_numpy(np.asarray(breccia.cast(x.float().cpu().numpy(), r).global_scale, np.float32).reshape(()))
    assert torch.equal(_kernel_global_scale(x, r).view(torch.int32), want.view(torch.int32))


def test_one_level_nvfp4_has_no_global_scale() -> None:
    st = _cast.cast(torch.ones(4, 32, device=DEVICE), breccia.NVFP4BlockScaling(per_tensor_scale=False))
    assert st is not None and st.global_scale is None
