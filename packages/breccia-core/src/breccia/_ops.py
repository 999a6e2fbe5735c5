"""The small array interface the recipe math is written against (DESIGN.md §6).

:mod:`breccia._math` holds the only copy of the quantization math. It uses Python operators (``+ - * / & | >> <<``
and comparisons, which every framework implements the same way) plus the handful of functions below. A backend
supplies an :class:`ArrayOps` for its arrays — numpy here, torch/jax/mlx in their add-ons — and optionally faster
bit primitives (e.g. a native float8 cast). Because all backends execute the same sequence of IEEE fp32 operations,
they agree byte for byte by construction; the tests then check that they do.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from ._formats import ElementFormat, decode_table, ml_dtype, pack_nibbles, unpack_nibbles

__all__ = ["ArrayOps", "NumpyOps"]

Array = Any

_FLOAT_SCALE = {"fp32": np.float32, "fp16": np.float16, "bf16": ml_dtypes.bfloat16}


class ArrayOps:
    """Backend primitives. Every method takes and returns arrays of the backend's own type."""

    name = "abstract"
    #: Device backends set this: ``nonfinite="propagate"`` then patches NaN codes unconditionally instead of asking
    #: the device whether any NaN is present (a host sync, and a graph break under torch.compile).
    prefer_no_sync = False

    # --- construction and conversion
    def f32(self, x: Array) -> Array:
        """``x`` as float32 (exact for fp16/bf16 inputs)."""
        raise NotImplementedError

    def i32(self, x: Array) -> Array:
        """Integer-valued float (or small int) array → int32."""
        raise NotImplementedError

    def full(self, shape: tuple[int, ...], value: float, like: Array) -> Array:
        """fp32 array of ``shape`` filled with ``value``, on ``like``'s device."""
        raise NotImplementedError

    def bits(self, x: Array) -> Array:
        """Reinterpret fp32 as int32 (no conversion)."""
        raise NotImplementedError

    def from_bits(self, b: Array) -> Array:
        """Reinterpret int32 as fp32."""
        raise NotImplementedError

    # --- elementwise and reductions
    def where(self, c: Array, a: Array, b: Array) -> Array:
        raise NotImplementedError

    def div(self, a: Array, b: float) -> Array:
        """``a / b`` for a Python-number divisor, as one correctly rounded fp32 division.

        Not the ``/`` operator: frameworks may turn division by a host scalar into multiplication by its reciprocal
        (torch on CUDA does), which differs in the last bit. The scale formulas of DESIGN.md §3 divide."""
        raise NotImplementedError

    def div_blocks(self, x: Array, d: Array) -> Array:
        """``x / d`` with ``d`` a block grid that broadcasts against ``x``, as correctly rounded fp32 divisions.

        The default is the ``/`` operator. XLA rewrites division by a broadcast into multiplication by the
        reciprocal (last-bit drift), so breccia-jax materialises the divisor first; this hook is where it can."""
        return x / d

    def mul_rounded(self, a: Array, b: Array) -> Array:
        """``a · b`` (``b`` may be a block grid) rounded to fp32 as an operation of its own: never contracted with a
        following addition into one fused multiply-add (MLX-affine dequantize rounds ``q·s`` before adding ``z``).

        The default is the ``*`` operator: eager frameworks run one operation at a time. breccia-jax overrides it,
        since XLA fuses and contracts."""
        return a * b

    def maximum(self, a: Array, b: Array | float) -> Array:
        raise NotImplementedError

    def minimum(self, a: Array, b: Array | float) -> Array:
        raise NotImplementedError

    def clip(self, x: Array, lo: float, hi: float) -> Array:
        """Clamp; NaN passes through unchanged."""
        raise NotImplementedError

    def rint(self, x: Array) -> Array:
        """Round half to even (fp32 in, fp32 out)."""
        raise NotImplementedError

    def isnan(self, x: Array) -> Array:
        raise NotImplementedError

    def isfinite(self, x: Array) -> Array:
        raise NotImplementedError

    def any(self, x: Array) -> bool:
        raise NotImplementedError

    def amax(self, x: Array, axes: tuple[int, ...]) -> Array:
        """``max(|x|)`` over ``axes`` with keepdims; NaN anywhere in a block makes its amax NaN."""
        raise NotImplementedError

    def vmin(self, x: Array, axes: tuple[int, ...]) -> Array:
        raise NotImplementedError

    def vmax(self, x: Array, axes: tuple[int, ...]) -> Array:
        raise NotImplementedError

    def reshape(self, x: Array, shape: tuple[int, ...]) -> Array:
        return x.reshape(shape)

    def broadcast_to(self, x: Array, shape: tuple[int, ...]) -> Array:
        raise NotImplementedError

    def asarray(self, value: Any, like: Array) -> Array:
        """A host value (numpy scalar/array) as an fp32 array of this backend, on ``like``'s device."""
        raise NotImplementedError

    def to_numpy(self, x: Array) -> Any:
        """Copy to host (error paths and state only — never on the hot path)."""
        raise NotImplementedError

    def pad_to(self, x: Array, shape: tuple[int, ...]) -> Array:
        """Zero-pad ``x`` at the end of each axis up to ``shape``."""
        raise NotImplementedError

    def crop(self, x: Array, shape: tuple[int, ...]) -> Array:
        if tuple(x.shape) == tuple(shape):
            return x
        return x[tuple(slice(0, n) for n in shape)]

    def encode_float(self, v: Array, fmt: ElementFormat) -> Array | None:
        """Optional native element encoder (e.g. torch's float8 cast) for clamped fp32 ``v``: integer codes, or
        ``None`` to use the shared bit-arithmetic encoder. A native encoder must be bit-identical to it."""
        return None

    # --- storage: codes (int32) <-> the dtypes a ScaledTensor holds
    def store_codes(self, codes: Array, fmt: ElementFormat) -> Array:
        """int32 codes → stored data (native fp8 dtype, packed uint8 nibbles, uint8 or int8)."""
        raise NotImplementedError

    def load_codes(self, data: Array, fmt: ElementFormat, n_last: int) -> Array:
        """Stored data → int32 codes (nibbles unpacked to ``n_last`` elements)."""
        raise NotImplementedError

    def decode(self, data: Array, fmt: ElementFormat, n_last: int) -> Array:
        """Stored data → fp32 element values (before scaling)."""
        raise NotImplementedError

    def store_float(self, x: Array, kind: str) -> Array:
        """fp32 → ``"fp32" | "fp16" | "bf16"`` with round-to-nearest-even."""
        raise NotImplementedError

    def load_float(self, x: Array) -> Array:
        """A stored float scale (fp32/fp16/bf16) → fp32."""
        return self.f32(x)

    def store_e8m0(self, b: Array) -> Array:
        """int32 biased exponents 0–255 → native E8M0 (or uint8)."""
        raise NotImplementedError

    def load_e8m0(self, s: Array) -> Array:
        """Stored E8M0 scales → int32 biased exponents."""
        raise NotImplementedError

    def store_zero_point(self, z: Array, signed: bool) -> Array:
        """int32 zero points → int8 (signed codes) or uint8 (unsigned codes)."""
        raise NotImplementedError


class NumpyOps(ArrayOps):
    """numpy implementation; the reference every other backend is compared against."""

    name = "numpy"

    def f32(self, x: Array) -> Array:
        return np.asarray(x, dtype=np.float32)

    def i32(self, x: Array) -> Array:
        return np.asarray(x).astype(np.int32)

    def full(self, shape: tuple[int, ...], value: float, like: Array) -> Array:
        return np.full(shape, value, dtype=np.float32)

    def bits(self, x: Array) -> Array:
        return np.asarray(x, dtype=np.float32).view(np.int32)

    def from_bits(self, b: Array) -> Array:
        return np.asarray(b, dtype=np.int32).view(np.float32)

    def where(self, c: Array, a: Array, b: Array) -> Array:
        return np.where(c, a, b)

    def div(self, a: Array, b: float) -> Array:
        return np.divide(a, np.float32(b))

    def div_blocks(self, x: Array, d: Array) -> Array:
        """``x / d`` with ``d`` a block grid that broadcasts against ``x``, as correctly rounded fp32 divisions.

        The default is the ``/`` operator. XLA rewrites division by a broadcast into multiplication by the
        reciprocal (last-bit drift), so breccia-jax materialises the divisor first; this hook is where it can."""
        return x / d

    def maximum(self, a: Array, b: Array | float) -> Array:
        return np.maximum(a, b)

    def minimum(self, a: Array, b: Array | float) -> Array:
        return np.minimum(a, b)

    def clip(self, x: Array, lo: float, hi: float) -> Array:
        return np.clip(x, np.float32(lo), np.float32(hi))

    def rint(self, x: Array) -> Array:
        return np.rint(x)

    def isnan(self, x: Array) -> Array:
        return np.isnan(x)

    def isfinite(self, x: Array) -> Array:
        return np.isfinite(x)

    def any(self, x: Array) -> bool:
        return bool(np.any(x))

    def amax(self, x: Array, axes: tuple[int, ...]) -> Array:
        # max and -min avoid materialising |x| (a full-size temporary); NaN propagates through both.
        if x.size == 0:
            shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
            return np.zeros(shape, np.float32)
        return np.maximum(x.max(axis=axes, keepdims=True), -x.min(axis=axes, keepdims=True))

    def vmin(self, x: Array, axes: tuple[int, ...]) -> Array:
        if x.size == 0:
            return np.zeros(tuple(1 if i in axes else n for i, n in enumerate(x.shape)), np.float32)
        return x.min(axis=axes, keepdims=True)

    def vmax(self, x: Array, axes: tuple[int, ...]) -> Array:
        if x.size == 0:
            return np.zeros(tuple(1 if i in axes else n for i, n in enumerate(x.shape)), np.float32)
        return x.max(axis=axes, keepdims=True)

    def pad_to(self, x: Array, shape: tuple[int, ...]) -> Array:
        if tuple(x.shape) == tuple(shape):
            return x
        return np.pad(x, [(0, s - n) for n, s in zip(x.shape, shape)])

    def broadcast_to(self, x: Array, shape: tuple[int, ...]) -> Array:
        return np.broadcast_to(x, shape)

    def asarray(self, value: Any, like: Array) -> Array:
        return np.asarray(value, np.float32)

    def to_numpy(self, x: Array) -> Any:
        return np.asarray(x)

    def store_codes(self, codes: Array, fmt: ElementFormat) -> Array:
        if fmt.storage == "fp8":
            return codes.astype(np.uint8).view(ml_dtype(fmt))
        if fmt.storage == "packed4":
            return pack_nibbles(codes)
        if fmt.storage == "int8":
            return codes.astype(np.int8)
        return codes.astype(np.uint8)

    def load_codes(self, data: Array, fmt: ElementFormat, n_last: int) -> Array:
        if fmt.storage == "packed4":
            return unpack_nibbles(data, n_last).astype(np.int32)
        if fmt.storage == "int8":
            return np.asarray(data).astype(np.int32)
        return np.asarray(data).view(np.uint8).astype(np.int32)

    def decode(self, data: Array, fmt: ElementFormat, n_last: int) -> Array:
        if fmt.storage == "int8":
            return np.asarray(data).astype(np.float32)
        raw = unpack_nibbles(data, n_last) if fmt.storage == "packed4" else np.asarray(data).view(np.uint8)
        return decode_table(fmt.name)[raw]

    def store_float(self, x: Array, kind: str) -> Array:
        return np.asarray(x, dtype=np.float32).astype(_FLOAT_SCALE[kind])

    def store_e8m0(self, b: Array) -> Array:
        return np.asarray(b).astype(np.uint8).view(ml_dtypes.float8_e8m0fnu)

    def load_e8m0(self, s: Array) -> Array:
        return np.asarray(s).view(np.uint8).astype(np.int32)

    def store_zero_point(self, z: Array, signed: bool) -> Array:
        return np.asarray(z).astype(np.int8 if signed else np.uint8)
