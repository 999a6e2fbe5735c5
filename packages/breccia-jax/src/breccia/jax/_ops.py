"""JaxOps: the array primitives of DESIGN.md §6 for ``jax.Array`` (and tracers, so casts run under ``jax.jit``).

The recipe math in :mod:`breccia._math` runs unchanged on these. Everything here is a pure ``jnp``/``lax`` op, so
a cast traces into one XLA computation; the only host transfers are :meth:`JaxOps.any` and :meth:`JaxOps.to_numpy`,
which the driver calls only on the eager path (the traced path uses :data:`TRACED_OPS`, see ``_backend``).
Storage uses jax's native dtypes: ``float8_e4m3fn`` / ``float8_e5m2`` data, ``float8_e8m0fnu`` MX scales.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from breccia import _math as M
from breccia._formats import ElementFormat, decode_table
from breccia._ops import ArrayOps

__all__ = ["TRACED_OPS", "JaxOps", "barrier"]

Array = Any  # jax.Array or a tracer; ``Any`` like core's ArrayOps, since jnp functions return loosely typed values


def barrier(x: jax.Array) -> jax.Array:
    """``lax.optimization_barrier``: XLA may not look through it, so what passes it is never a broadcast/constant."""
    out: jax.Array = lax.optimization_barrier(x)  # type: ignore[no-untyped-call]
    return out


def _x64() -> Any:
    """A context where fp64 arrays exist (``jax.enable_x64``; ``jax.experimental.enable_x64`` before jax 0.7)."""
    ctx = getattr(jax, "enable_x64", None)  # a config State in jax ≥ 0.7: never test it for truth
    if ctx is None:
        ctx = importlib.import_module("jax.experimental").enable_x64
    return ctx(True)


def _platform() -> str:
    return str(getattr(jax, "default_backend")())  # noqa: B009 — not in every jax's type stubs


def ieee_div(a: Any, d: Any) -> Array:
    """fp32 ``a / d`` correctly rounded (IEEE), on every XLA platform, for same-shape ``a`` and ``d``.

    XLA:CPU divides in IEEE fp32. XLA:GPU lowers fp32 division to PTX ``div.full`` (up to 2 ulp off), which moved
    scales and codes by an ulp on an H100. There the quotient is taken in fp64 (``div.rn.f64``, always IEEE) and
    rounded once to fp32: with 53 ≥ 2·24 + 2 bits that double rounding equals the correctly rounded fp32 quotient.
    The divisor stays behind an optimization barrier after its conversion, so the algebraic simplifier cannot turn
    the division into a reciprocal multiply (see :meth:`JaxOps.div`)."""
    if _platform() == "cpu":
        return a / barrier(d)
    with _x64():
        q = lax.convert_element_type(a, np.float64) / barrier(lax.convert_element_type(d, np.float64))
    return lax.convert_element_type(q, np.float32)


_FP8 = {"E4M3": jnp.float8_e4m3fn, "E5M2": jnp.float8_e5m2}
_FLOAT = {"fp32": jnp.float32, "fp16": jnp.float16, "bf16": jnp.bfloat16}


@cache
def _table(name: str) -> np.ndarray:
    # a numpy constant: embedding it in a trace is free, and a cached jax array would pin one device
    return np.asarray(decode_table(name), np.float32)


def _encode_ftz_safe(ops: ArrayOps, v: Any, fmt: ElementFormat) -> Array:
    """The shared encoder's rounding, with the code read from the rounded value by integer arithmetic.

    XLA:CPU flushes fp32 subnormals to zero, and the shared encoder's re-biasing multiply lands small FP4/FP6 values
    on fp32 subnormals. Here the FPU only rounds ``|v|`` onto the target grid (``(|v| + c) − c`` with a normal
    ``c``: the same RNE as the shared encoder), and the code is assembled from the rounded value's exponent and
    mantissa bits (normal targets) or from ``r / min_subnormal`` (an exact small integer, subnormal targets).
    """
    m, bias = fmt.mbits, fmt.bias
    b, r = M.round_to_grid(ops, v, fmt)  # the shared rounding; only the code assembly differs
    rb = ops.bits(r)
    normal = (((rb >> 23) - 127 + bias) << m) | ((rb >> (23 - m)) & ((1 << m) - 1))
    sub = ops.i32(r * float(2.0 ** (bias - 1 + m)))
    code = ops.where(r < fmt.min_normal, sub, normal)
    sign = (b >> 31) & 1
    return (code | (sign << (fmt.ebits + m))) & ((1 << (fmt.ebits + m + 1)) - 1)


class JaxOps(ArrayOps):
    """Eager jax: ``any`` may look at a value on the host, exactly as the numpy reference does."""

    name = "jax"

    def f32(self, x: Any) -> Array:
        return jnp.asarray(x, dtype=jnp.float32)

    def i32(self, x: Any) -> Array:
        return jnp.asarray(x).astype(jnp.int32)

    def full(self, shape: tuple[int, ...], value: float, like: Any) -> Array:
        return jnp.full(shape, value, dtype=jnp.float32)

    def bits(self, x: Any) -> Array:
        return lax.bitcast_convert_type(jnp.asarray(x, jnp.float32), jnp.int32)

    def from_bits(self, b: Any) -> Array:
        return lax.bitcast_convert_type(jnp.asarray(b, jnp.int32), jnp.float32)

    def where(self, c: Any, a: Any, b: Any) -> Array:
        return jnp.where(c, a, b)

    def div(self, a: Any, b: float) -> Array:
        # XLA's algebraic simplifier rewrites ``A / broadcast(B)`` as ``A * broadcast(1 / B)`` (last-bit drift).
        # A full-shape divisor behind an optimization barrier is not a broadcast, so the division stays IEEE.
        # ``div`` only ever sees scale grids (one value per block), so the materialised divisor is small.
        a = jnp.asarray(a, jnp.float32)
        return ieee_div(a, jnp.full(a.shape, b, dtype=jnp.float32))

    def div_blocks(self, x: Any, d: Any) -> Array:
        """The encoder's per-element ``x / d``. A non-power-of-two ``d`` is broadcast to full size behind a barrier,
        so XLA cannot turn the division into a reciprocal multiply (see ``div``). A power of two (MX scales, pow2
        FP8 scales) is multiplied by its exact reciprocal instead: that equals the division, and it avoids dividing
        by 2^-127 (an all-zero MX block's scale), which XLA's CPU flush-to-zero would turn into 0."""
        x = jnp.asarray(x, jnp.float32)
        d = jnp.asarray(d, jnp.float32)
        b = lax.bitcast_convert_type(d, jnp.int32)
        exp, mant = (b >> 23) & 0xFF, b & 0x7FFFFF
        normal = (mant == 0) & (exp > 0) & (exp < 254)
        tiny = b == 0x00400000  # 2^-127, the one subnormal power of two a scale grid holds
        recip = jnp.where(normal, (254 - exp) << 23, jnp.where(tiny, 0x7F000000, 0x3F800000))
        recip = recip | (b & jnp.int32(-0x80000000))  # a negative power of two (MLX-affine scales, q0 < 0)
        pow2 = jnp.broadcast_to(normal | tiny, x.shape)
        exact = x * jnp.broadcast_to(lax.bitcast_convert_type(recip, jnp.float32), x.shape)
        return jnp.where(pow2, exact, ieee_div(x, jnp.broadcast_to(d, x.shape)))

    def mul_rounded(self, a: Any, b: Any) -> Array:
        """XLA contracts ``a·b + c`` into one FMA inside a fusion, and neither an optimization barrier (dropped before
        fusion on CPU), a no-op ``reduce_precision`` nor an fp64 product (LLVM folds it back to fp32) stops it. A
        conditional does: its branches are computations of their own, which no fusion crosses. Both branches are
        the plain product; the predicate only has to be unknown at compile time (under ``vmap`` with a batched
        predicate JAX turns the conditional into a select, and the contraction may come back)."""
        a = jnp.asarray(a, jnp.float32)
        b = jnp.asarray(b, jnp.float32)
        out: Array = lax.cond(jnp.any(jnp.isnan(b)), jnp.multiply, jnp.multiply, a, b)
        return out

    def maximum(self, a: Any, b: Any) -> Array:
        return jnp.maximum(a, b)

    def minimum(self, a: Any, b: Any) -> Array:
        return jnp.minimum(a, b)

    def clip(self, x: Any, lo: float, hi: float) -> Array:
        return jnp.minimum(jnp.maximum(x, jnp.float32(lo)), jnp.float32(hi))  # lax max/min propagate NaN

    def rint(self, x: Any) -> Array:
        return jnp.rint(x)  # half to even

    def isnan(self, x: Any) -> Array:
        return jnp.isnan(x)

    def isfinite(self, x: Any) -> Array:
        return jnp.isfinite(x)

    def any(self, x: Any) -> bool:
        return bool(jnp.any(x))

    def amax(self, x: Any, axes: tuple[int, ...]) -> Array:
        if not axes:
            return jnp.abs(x)
        return jnp.max(jnp.abs(x), axis=axes, keepdims=True)

    def vmin(self, x: Any, axes: tuple[int, ...]) -> Array:
        return jnp.min(x, axis=axes, keepdims=True) if axes else x

    def vmax(self, x: Any, axes: tuple[int, ...]) -> Array:
        return jnp.max(x, axis=axes, keepdims=True) if axes else x

    def reshape(self, x: Any, shape: tuple[int, ...]) -> Array:
        return jnp.reshape(x, shape)

    def broadcast_to(self, x: Any, shape: tuple[int, ...]) -> Array:
        return jnp.broadcast_to(x, shape)

    def asarray(self, value: Any, like: Any) -> Array:
        return jnp.asarray(np.asarray(value, np.float32))

    def to_numpy(self, x: Any) -> Any:
        return np.asarray(x)

    def pad_to(self, x: Any, shape: tuple[int, ...]) -> Array:
        if tuple(x.shape) == tuple(shape):
            return jnp.asarray(x)
        return jnp.pad(x, [(0, s - n) for n, s in zip(x.shape, shape)])

    # --- encoding: XLA's own RNE conversion for FP8 (bit-identical to the shared encoder after the clamp)
    def encode_float(self, v: Any, fmt: ElementFormat) -> Array | None:
        if fmt.name in _FP8:
            return lax.bitcast_convert_type(v.astype(_FP8[fmt.name]), jnp.uint8).astype(jnp.int32)
        return _encode_ftz_safe(self, v, fmt)

    # --- storage
    def store_codes(self, codes: Any, fmt: ElementFormat) -> Array:
        if fmt.storage == "fp8":
            return lax.bitcast_convert_type(codes.astype(jnp.uint8), _FP8[fmt.name])
        if fmt.storage == "packed4":
            c = codes.astype(jnp.uint8) & 0x0F
            if c.shape[-1] % 2:
                c = jnp.pad(c, [(0, 0)] * (c.ndim - 1) + [(0, 1)])
            return c[..., 0::2] | (c[..., 1::2] << 4)
        if fmt.storage == "int8":
            return codes.astype(jnp.int8)
        return codes.astype(jnp.uint8)

    def load_codes(self, data: Any, fmt: ElementFormat, n_last: int) -> Array:
        if fmt.storage == "packed4":
            raw = data.astype(jnp.uint8)
            out = jnp.stack([raw & 0x0F, raw >> 4], axis=-1).reshape(*raw.shape[:-1], -1)
            return out[..., :n_last].astype(jnp.int32)
        if fmt.storage == "int8":
            return data.astype(jnp.int32)
        if data.dtype == jnp.uint8:
            return data.astype(jnp.int32)
        return lax.bitcast_convert_type(data, jnp.uint8).astype(jnp.int32)

    def decode(self, data: Any, fmt: ElementFormat, n_last: int) -> Array:
        if fmt.storage == "fp8" and data.dtype != jnp.uint8:
            return data.astype(jnp.float32)  # exact: every FP8 value is an fp32 value
        if fmt.storage == "int8":
            return data.astype(jnp.float32)
        return jnp.asarray(_table(fmt.name))[self.load_codes(data, fmt, n_last)]

    def store_float(self, x: Any, kind: str) -> Array:
        out = jnp.asarray(x, jnp.float32).astype(_FLOAT[kind])
        # XLA:GPU's default --xla_allow_excess_precision deletes an f32→bf16→f32 round trip inside a fusion, so a
        # scale rounded to bf16/fp16 and read back would keep its fp32 bits; the barrier keeps the rounding.
        return out if kind == "fp32" else barrier(out)

    def store_e8m0(self, b: Any) -> Array:
        return lax.bitcast_convert_type(jnp.asarray(b).astype(jnp.uint8), jnp.float8_e8m0fnu)

    def load_e8m0(self, s: Any) -> Array:
        if s.dtype == jnp.uint8:
            return s.astype(jnp.int32)
        return lax.bitcast_convert_type(s, jnp.uint8).astype(jnp.int32)

    def store_zero_point(self, z: Any, signed: bool) -> Array:
        return jnp.asarray(z).astype(jnp.int8 if signed else jnp.uint8)


class TracedJaxOps(JaxOps):
    """Under ``jit``/``vmap``/``grad`` tracing: never asks the host anything (``any`` would be a concretization
    error), so NaN codes are patched unconditionally — the same bytes, because patching a NaN-free block is a no-op."""

    prefer_no_sync = True

    def any(self, x: Any) -> bool:
        raise AssertionError("breccia.jax: the traced cast path must not read values on the host")


TRACED_OPS = TracedJaxOps()
