"""The per-tensor amax pass (``_amax.tensor_amax``) equals torch's ``abs().amax()`` bit for bit, and the NVFP4 global
scale it writes (``_amax.amax_and_global_scale``) equals the NumPy reference's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import breccia
from breccia.triton._amax import BLOCK, amax_and_global_scale, tensor_amax

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


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n", [16, 2 * BLOCK + 16, 3 * BLOCK], ids=lambda n: f"n{n}")
def test_global_scale_matches_reference(dtype: torch.dtype, n: int) -> None:
    """Several programs (the last one to finish writes it), random magnitudes, the largest value in the last
    program's range (so a scale written from any other program's partial amax is wrong) and a near-largest one at a
    random place; the amax from the same pass still equals torch's."""
    g = torch.Generator().manual_seed(7 * n)
    x = torch.randn(n, generator=g) * 3
    x[int(torch.randint(0, n, (1,), generator=g))] = -(1000.0 + float(torch.rand(1, generator=g)) * 500.0)
    x[-1 - int(torch.randint(0, 16, (1,), generator=g))] = -(1600.0 + float(torch.rand(1, generator=g)) * 400.0)
    x = x.to(dtype).to(DEVICE).reshape(-1, 16)
    amax, gs = amax_and_global_scale(x)
    assert gs.dtype == torch.float32 and gs.shape == () and gs.device == x.device
    assert torch.equal(amax.view(torch.int32), torch_amax(x).view(torch.int32))
    assert torch.equal(gs.cpu().view(torch.int32), _reference_global_scale(x).view(torch.int32))


@pytest.mark.parametrize(
    "fill",
    [0.0, 1e-41, 6.0 * 448.0, 2.0**-120, 3.0e38],
    ids=["zeros", "subnormal_amax", "exactly_2688", "tiny_amax", "huge_amax"],
)
def test_global_scale_edges(fill: float) -> None:
    """amax 0 gives 1 (not 0 / 2688); a subnormal or tiny amax rounds as a true division does (no flush to zero,
    no reciprocal); 2688 gives exactly 1."""
    x = torch.full((4, 32), fill, dtype=torch.float32)
    x[1, 3] = -fill
    x = x.to(DEVICE)
    _, gs = amax_and_global_scale(x)
    assert torch.equal(gs.cpu().view(torch.int32), _reference_global_scale(x).view(torch.int32))
    want = torch.tensor(1.0) if fill == 0 else torch.tensor(fill, dtype=torch.float32) / torch.tensor(2688.0)
    assert torch.equal(gs.cpu().view(torch.int32), want.view(torch.int32))


def test_global_scale_of_non_finite_and_empty_input() -> None:
    """NaN and Inf reach the scale as torch's formula gives them (the cast then falls back on its flag); an empty
    tensor's amax is 0, so its scale is 1."""
    x = torch.ones(3 * BLOCK, dtype=torch.bfloat16, device=DEVICE)
    x[BLOCK + 5] = float("inf")
    assert amax_and_global_scale(x)[1].item() == float("inf")
    x[2 * BLOCK + 1] = float("nan")
    assert torch.isnan(amax_and_global_scale(x)[1]).item()
    amax, gs = amax_and_global_scale(torch.zeros(0, dtype=torch.float16, device=DEVICE))
    assert amax.item() == 0.0 and gs.item() == 1.0
