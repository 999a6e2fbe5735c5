"""The per-tensor amax pass (``_amax.tensor_amax``) equals torch's ``abs().amax()`` bit for bit."""

from __future__ import annotations

import pytest
import torch

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
