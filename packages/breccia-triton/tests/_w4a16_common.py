"""Shared by the W4A16 tests: the weights and activations they multiply, the tolerance, and a 4-bit ScaledTensor
filled with every code value, every E4M3 scale byte and zero points across the 4-bit range (read through a kernel
with ``x`` = the identity, it checks every decode path)."""

from __future__ import annotations

import torch

import breccia

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
U_OUT = {torch.bfloat16: 2.0**-9, torch.float16: 2.0**-11, torch.float32: 2.0**-24}


def weight(recipe: breccia.Recipe, form: str, n: int, k: int, seed: int) -> breccia.ScaledTensor:
    """``"kn"``: breccia.matmul's ``b[K, N]`` blocked along axis 0; ``"nk"``: an ``(N, K)`` Linear weight."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g) * (torch.rand(n, 1, generator=g) + 0.1)  # rows of different magnitude
    w[:, 5] += 0.3  # an offset, so asymmetric zero points are not all mid-range
    if form == "kn":
        return breccia.cast(w.t().contiguous().to(DEVICE), recipe, axis=0)
    return breccia.cast(w.to(DEVICE), recipe, axis=-1)


def activations(m: int, k: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 1000)
    x = torch.randn(m, k, generator=g) * (torch.rand(m, 1, generator=g) * 4 + 0.25)
    return x.to(dtype).to(DEVICE)


def rel_err(out: torch.Tensor, x: torch.Tensor, w: breccia.ScaledTensor) -> float:
    """Relative Frobenius error of ``out`` against the FP64 product of ``x`` and the dequantized weight."""
    d = breccia.dequantize(w).double()
    ref = x.double() @ (d if w.layout.axis % 2 == 0 else d.t())
    return float(torch.linalg.norm(out.double() - ref) / torch.linalg.norm(ref))


def tol(out_dtype: torch.dtype, k: int) -> float:
    """The output cast's unit roundoff plus a pessimistic bound on FP32 accumulation over K products."""
    return U_OUT[out_dtype] + 8 * k * 2.0**-24


def fill_every_code(w: breccia.ScaledTensor, recipe: breccia.Recipe, period: int = 256) -> None:
    """Overwrite ``w`` in place: code bytes ``0, 1, …`` modulo ``period`` (a prime period moves each byte value across
    the positions of a word), NVFP4 scales through all 256 E4M3 bytes (subnormals, zero, negative, NaN), INT4 scales
    over 24 binades and zero points over the element's 4-bit range."""
    flat = torch.arange(w.data.numel(), dtype=torch.int64) % period
    w.data.copy_(flat.to(torch.uint8).view(w.data.dtype).reshape(w.data.shape).to(w.data.device))
    g = torch.Generator().manual_seed(1)
    if isinstance(recipe, breccia.NVFP4BlockScaling):
        codes = torch.arange(w.scale.numel(), dtype=torch.int64) % 256
        w.scale.copy_(codes.to(torch.uint8).view(torch.float8_e4m3fn).reshape(w.scale.shape).to(w.scale.device))
        return
    mag = torch.exp2(torch.randint(-12, 12, w.scale.shape, generator=g).double())
    w.scale.copy_((torch.rand(w.scale.shape, generator=g).double() * mag).to(w.scale.dtype).to(w.scale.device))
    if w.zero_point is not None:
        assert isinstance(recipe, breccia.INT4Scaling)
        lo = 0 if not recipe.element.signed else -8
        zp = torch.randint(lo, lo + 16, w.zero_point.shape, generator=g)
        w.zero_point.copy_(zp.to(w.zero_point.dtype).to(w.zero_point.device))
