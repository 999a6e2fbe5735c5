"""``_fp4.e2m1_pair_bytes``, the E2M1 pair encoder of the NVFP4 and MXFP4 (fp16/fp32) kernels, against ml_dtypes'
``float4_e2m1fn`` on dense sets of fp32 values: every fp32 value from 2^-3 to 8 (every rounding boundary of the
E2M1 grid lies there), and every 251st bit pattern over the whole finite range, with both signs and in both nibbles.
The kernel runs under ``TRITON_INTERPRET=1`` in CI (the same function the GPU kernels call) and natively on a GPU.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")

from breccia.triton import _fp4  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BLOCK = 1 << 20


@triton.jit
def _pairs_kernel(v0_ptr, v1_ptr, out_ptr, n, CLAMP: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    v0 = tl.load(v0_ptr + offs, mask=m, other=0.0)
    v1 = tl.load(v1_ptr + offs, mask=m, other=0.0)
    tl.store(out_ptr + offs, _fp4.e2m1_pair_bytes(v0, v1, CLAMP).to(tl.uint8), mask=m)


def _codes(v: np.ndarray, clamp: bool) -> np.ndarray:
    """The reference nibble: ml_dtypes' round-to-nearest-even E2M1 code, after the clamp to ±6."""
    w = np.clip(v, -6.0, 6.0) if clamp else v
    return w.astype(ml_dtypes.float4_e2m1fn).view(np.uint8) & 0xF


def _check(v: np.ndarray, clamp: bool) -> None:
    other = np.random.default_rng(v.size).permutation(v) * np.float32(-1)  # the other nibble: other values, sign
    for v0, v1 in ((v, other), (other, v)):
        out = torch.empty(v.size, dtype=torch.uint8, device=DEVICE)
        a, b = torch.from_numpy(v0).to(DEVICE), torch.from_numpy(v1).to(DEVICE)
        _pairs_kernel[(-(-v.size // BLOCK),)](a, b, out, v.size, CLAMP=clamp, BLOCK=BLOCK)
        want = _codes(v0, clamp) | (_codes(v1, clamp) << 4)
        got = out.cpu().numpy()
        bad = np.nonzero(got != want)[0]
        assert bad.size == 0, f"{bad.size} bytes differ, first v = ({v0[bad[0]]!r}, {v1[bad[0]]!r})"


def _range(lo_exp: int, hi_exp: int) -> np.ndarray:
    """Every fp32 value in [2^lo_exp, 2^hi_exp)."""
    return np.arange((lo_exp + 127) << 23, (hi_exp + 127) << 23, dtype=np.int64).astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("clamp", [True, False], ids=["clamp", "no-clamp"])
def test_every_fp32_value_near_the_grid(clamp: bool) -> None:
    """Every fp32 value in [2^-3, 8) (clamped) or [2^-3, 7) (unclamped, the range the unclamped kernels feed it:
    their quotients stay below 6·(1 + 2^-23)), plus ±0 and the values just below 2^-3."""
    v = _range(-3, 3)
    if not clamp:
        v = v[v < 7.0]
    v = np.concatenate([v, np.array([0.0, 2.0**-3 * (1 - 2.0**-24), 2.0**-149], np.float32)])
    _check(v, clamp)


def test_every_251st_finite_fp32_value_clamped() -> None:
    """The rest of the finite range, sparsely: tiny values give signed zeros, large ones saturate at ±6."""
    bits = np.arange(0, 0x7F800000, 251, dtype=np.int64).astype(np.uint32)
    _check(bits.view(np.float32), True)
