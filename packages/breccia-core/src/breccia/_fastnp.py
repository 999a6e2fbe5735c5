"""numpy fast paths: the shared math (:mod:`breccia._math`) re-expressed with in-place ufuncs.

Allocating a fresh array per elementwise step costs more than the arithmetic (page faults on every 128 KiB
temporary), so the reference keeps three scratch buffers per call and runs every step with ``out=``. The steps are
*the same IEEE operations in the same order* as :func:`breccia._math.encode_float`; a test checks the two agree
bit for bit on random and adversarial inputs, and both against ml_dtypes.
"""

from __future__ import annotations

import math

import numpy as np

from ._formats import ElementFormat

__all__ = ["Scratch", "amax_bits", "encode_float_into"]

_SIGN = np.int32(-0x80000000)


class Scratch:
    """Three reusable work buffers sized for the largest tile."""

    def __init__(self, n: int) -> None:
        self.f = np.empty(n, np.float32)
        self.s = np.empty(n, np.int32)
        self.t = np.empty(n, np.int32)

    def view(self, buf: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return buf[: math.prod(shape)].reshape(shape)


def amax_bits(x: np.ndarray, axes: tuple[int, ...], work: Scratch) -> np.ndarray:
    """Per-block ``max|x|`` (keepdims, fp32) via the integer max of the sign-cleared bit patterns.

    Non-negative floats order like their bit patterns, and every NaN pattern sorts above +inf, so a NaN anywhere in
    a block makes its amax NaN — the same result as the generic max/−min formulation, in one pass.
    """
    t = work.view(work.t, x.shape)
    np.bitwise_and(x.view(np.int32), np.int32(0x7FFFFFFF), out=t)
    return np.asarray(t.max(axis=axes, keepdims=True)).view(np.float32)


def encode_float_into(
    x: np.ndarray, divisor: np.ndarray, fmt: ElementFormat, work: Scratch, has_nan: bool, multiply: bool = False
) -> np.ndarray:
    """int32 codes (high bits unmasked) of ``clip(x / divisor, ±fmax)`` (``x · divisor`` with ``multiply``) —
    :func:`_math.encode`, in place."""
    m, bias = fmt.mbits, fmt.bias
    v = work.view(work.f, x.shape)
    (np.multiply if multiply else np.divide)(x, divisor, out=v)
    np.clip(v, np.float32(-fmt.fmax), np.float32(fmt.fmax), out=v)
    nan = np.isnan(v) if has_nan else None
    b = v.view(np.int32)
    s = work.view(work.s, x.shape)
    t = work.view(work.t, x.shape)
    np.bitwise_and(b, _SIGN, out=s)
    np.bitwise_and(b, np.int32(0x7FFFFFFF), out=b)
    np.bitwise_and(b, np.int32(0x7F800000), out=t)
    np.maximum(t, np.int32((127 + 1 - bias) << 23), out=t)
    np.add(t, np.int32((23 - m) << 23), out=t)
    c = t.view(np.float32)
    np.add(v, c, out=v)
    np.subtract(v, c, out=v)
    np.multiply(v, np.float32(2.0 ** (bias - 127)), out=v)
    np.right_shift(b, np.int32(23 - m), out=b)
    np.right_shift(s, np.int32(31 - fmt.ebits - m), out=s)
    np.bitwise_or(b, s, out=b)
    if nan is not None:
        b[nan] = fmt.nan_code if fmt.nan_code is not None else 0
    return b
