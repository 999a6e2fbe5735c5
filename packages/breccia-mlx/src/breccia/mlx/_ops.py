"""MLXOps: the array primitives of DESIGN.md §6 for ``mlx.core.array``.

The recipe math in :mod:`breccia._math` runs unchanged on these, so MLX casts are byte-identical to the numpy
reference by construction (and tested to be). MLX has no float8 dtypes (DESIGN.md §5): FP8 data, E8M0 and E4M3
scales are held as uint8 with the same bytes. Bit reinterpretation uses ``array.view``; every operation stays in
MLX (no NumPy round trip) except :meth:`to_numpy`, which only error paths and history state use.

Facts this relies on, each checked by ``tests/test_mlx_ops.py`` on the installed MLX: fp32 division is correctly
rounded (IEEE), ``mx.round`` rounds half to even, fp32 subnormals are not flushed to zero on the CPU, NaN
propagates through ``max``/``min``/``maximum``/``clip``, and ``astype`` to fp16/bf16 rounds to nearest even
(NaN excepted: see :meth:`MLXOps.store_float`).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import mlx.core as mx
import numpy as np

from breccia._formats import ElementFormat, decode_table
from breccia._ops import ArrayOps

__all__ = ["MLXOps"]

_FLOAT = {"fp32": mx.float32, "fp16": mx.float16, "bf16": mx.bfloat16}


@cache
def _table(name: str) -> mx.array:
    """Decode table of a format (fp32 value per code) as an MLX array, built once from breccia's table."""
    return mx.array(np.array(decode_table(name)))


class MLXOps(ArrayOps):
    """ArrayOps for MLX arrays (eager, so a host sync in :meth:`any` is cheap and allowed)."""

    name = "mlx"

    # --- construction and conversion
    def f32(self, x: Any) -> mx.array:
        return x.astype(mx.float32) if isinstance(x, mx.array) else mx.array(x, dtype=mx.float32)

    def i32(self, x: Any) -> mx.array:
        return x.astype(mx.int32) if isinstance(x, mx.array) else mx.array(x, dtype=mx.int32)

    def full(self, shape: tuple[int, ...], value: float, like: Any) -> mx.array:
        return mx.full(shape, value, dtype=mx.float32)

    def bits(self, x: mx.array) -> mx.array:
        return x.astype(mx.float32).view(mx.int32)

    def from_bits(self, b: mx.array) -> mx.array:
        return b.astype(mx.int32).view(mx.float32)

    # --- elementwise and reductions
    def where(self, c: mx.array, a: Any, b: Any) -> mx.array:
        return mx.where(c, a, b)

    def div(self, a: mx.array, b: float) -> mx.array:
        # an fp32 array divisor: one correctly rounded division per element, never a reciprocal multiply
        return mx.divide(a, mx.array(b, dtype=mx.float32))

    def maximum(self, a: mx.array, b: Any) -> mx.array:
        return mx.maximum(a, b)

    def minimum(self, a: mx.array, b: Any) -> mx.array:
        return mx.minimum(a, b)

    def clip(self, x: mx.array, lo: float, hi: float) -> mx.array:
        return mx.clip(x, lo, hi)

    def rint(self, x: mx.array) -> mx.array:
        return mx.round(x)  # half to even

    def isnan(self, x: mx.array) -> mx.array:
        return mx.isnan(x)

    def isfinite(self, x: mx.array) -> mx.array:
        return mx.isfinite(x)

    def any(self, x: mx.array) -> bool:
        return bool(mx.any(x).item())

    def _empty_stat(self, x: mx.array, axes: tuple[int, ...]) -> mx.array:
        return mx.zeros(tuple(1 if i in axes else n for i, n in enumerate(x.shape)), dtype=mx.float32)

    def amax(self, x: mx.array, axes: tuple[int, ...]) -> mx.array:
        if x.size == 0:
            return self._empty_stat(x, axes)
        # max and -min (as the reference does): no full-size |x| temporary, NaN propagates through both
        return mx.maximum(mx.max(x, axis=axes, keepdims=True), -mx.min(x, axis=axes, keepdims=True))

    def vmin(self, x: mx.array, axes: tuple[int, ...]) -> mx.array:
        return self._empty_stat(x, axes) if x.size == 0 else mx.min(x, axis=axes, keepdims=True)

    def vmax(self, x: mx.array, axes: tuple[int, ...]) -> mx.array:
        return self._empty_stat(x, axes) if x.size == 0 else mx.max(x, axis=axes, keepdims=True)

    def reshape(self, x: mx.array, shape: tuple[int, ...]) -> mx.array:
        return mx.reshape(x, shape)

    def broadcast_to(self, x: mx.array, shape: tuple[int, ...]) -> mx.array:
        return mx.broadcast_to(x, shape)

    def asarray(self, value: Any, like: Any) -> mx.array:
        return mx.array(np.asarray(value, np.float32))

    def to_numpy(self, x: mx.array) -> Any:
        if x.dtype == mx.bfloat16:  # numpy's buffer protocol has no bfloat16
            x = x.astype(mx.float32)
        return np.array(x)

    def pad_to(self, x: mx.array, shape: tuple[int, ...]) -> mx.array:
        if tuple(x.shape) == tuple(shape):
            return x
        return mx.pad(x, [(0, s - n) for n, s in zip(x.shape, shape)])

    # --- encoding: MLX's own E4M3 conversion (RNE, saturating, bit-identical to the shared encoder after the clamp)
    def encode_float(self, v: mx.array, fmt: ElementFormat) -> mx.array | None:
        """``mx.to_fp8`` for E4M3 (about 10× faster on the CPU than the ~20-op shared encoder, and equal to it on
        every value boundary, midpoint, subnormal and signed zero: ``tests/test_mlx_ops.py``); ``None`` (the shared
        encoder of :mod:`breccia._math`) for every other format, which MLX has no conversion for."""
        if fmt.name == "E4M3":
            return mx.to_fp8(v).astype(mx.int32)
        return None

    # --- storage
    def store_codes(self, codes: mx.array, fmt: ElementFormat) -> mx.array:
        if fmt.storage == "packed4":
            c = codes.astype(mx.uint8) & 0x0F
            if c.ndim == 0:
                c = mx.reshape(c, (1,))
            if c.shape[-1] % 2:
                c = mx.pad(c, [(0, 0)] * (c.ndim - 1) + [(0, 1)])
            return c[..., 0::2] | (c[..., 1::2] << 4)
        if fmt.storage == "int8":
            return codes.astype(mx.int8)
        return codes.astype(mx.uint8)  # fp8 codes, FP6 and unsigned ints: one byte each

    def load_codes(self, data: mx.array, fmt: ElementFormat, n_last: int) -> mx.array:
        if fmt.storage == "packed4":
            raw = data.view(mx.uint8)
            both = mx.stack([raw & 0x0F, raw >> 4], axis=-1)
            out = mx.reshape(both, (*raw.shape[:-1], raw.shape[-1] * 2))
            return out[..., :n_last].astype(mx.int32)
        if fmt.storage == "int8":
            return data.astype(mx.int32)
        return data.view(mx.uint8).astype(mx.int32)

    def decode(self, data: mx.array, fmt: ElementFormat, n_last: int) -> mx.array:
        if fmt.storage == "int8":
            return data.astype(mx.float32)
        codes = self.load_codes(data, fmt, n_last)
        return mx.take(_table(fmt.name), codes)

    def store_float(self, x: mx.array, kind: str) -> mx.array:
        x = x.astype(mx.float32)
        out = x.astype(_FLOAT[kind])
        if kind == "fp32":
            return out
        # NaN: MLX's fp32→fp16 conversion drops the quiet bit (0x7D00 where numpy and torch give 0x7E00). Rebuild
        # the NaN the reference produces: numpy keeps the top payload bits for fp16, ml_dtypes canonicalises bf16.
        b = x.view(mx.uint32)
        sign = (b >> 16) & 0x8000
        if kind == "fp16":
            mant = (b >> 13) & 0x3FF
            nan = sign | 0x7C00 | mx.where(mant == 0, 0x200, mant)
        else:
            nan = sign | 0x7FC0
        bits = mx.where(mx.isnan(x), nan.astype(mx.uint16), out.view(mx.uint16))
        return bits.view(_FLOAT[kind])

    def store_e8m0(self, b: mx.array) -> mx.array:
        return b.astype(mx.uint8)

    def load_e8m0(self, s: mx.array) -> mx.array:
        return s.view(mx.uint8).astype(mx.int32)

    def store_zero_point(self, z: mx.array, signed: bool) -> mx.array:
        return z.astype(mx.int8 if signed else mx.uint8)
