"""The jax backend object: cast/dequantize/matmul/cast_ste on ``jax.Array``, eagerly or under tracing.

cast and dequantize run the shared driver (:mod:`breccia._generic`) with :class:`JaxOps`; nothing goes through
numpy. Recipe and layout are Python values, so they are static under ``jax.jit`` by construction.

Non-finite policy. Eagerly, ``nonfinite="raise"`` behaves exactly as the numpy reference: the small block-amax
array is checked on the host and :class:`~breccia.NonFiniteError` names the first offending block. Under tracing
(``jit``, ``vmap``, ``grad``, ``shard_map``) no value exists to check, and a host round trip would serialise the
program, so the traced cast always takes the ``"propagate"`` path: NaN/Inf flow into the output as the format
allows (NaN codes, E8M0 byte 255). The bytes are the reference's ``"propagate"`` bytes, which for finite input equal
its ``"raise"`` bytes. docs/jax.md shows how to detect non-finite blocks from the result inside a jitted step.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from breccia._errors import DTypeError, RecipeError
from breccia._generic import cast_generic, dequantize_generic
from breccia._layouts import Layout
from breccia._recipes import Recipe
from breccia._tensor import ScaledTensor

from ._ops import TRACED_OPS, JaxOps

__all__ = ["BACKEND", "JaxBackend", "as_float_array", "is_traced", "jax_dtype"]

_NAMES = {"float32": jnp.float32, "float16": jnp.float16, "bfloat16": jnp.bfloat16, "float64": jnp.float64}
_FLOATS = tuple(jnp.dtype(d) for d in _NAMES.values())


def as_float_array(x: Any, who: str) -> jax.Array:
    """``x`` checked to be a floating-point jax array (or tracer)."""
    if not isinstance(x, jax.Array):
        raise DTypeError(f"{who} expected a jax.Array; got {type(x).__name__}")
    if jnp.dtype(x.dtype) not in _FLOATS:
        raise DTypeError(
            f"{who} needs a floating-point array (float32, float16, bfloat16 or float64); got dtype {x.dtype}. "
            "Convert first, e.g. x.astype(jnp.float32)"
        )
    return x


def jax_dtype(dtype: Any) -> Any:
    """The jnp float dtype for ``dtype`` (``None`` → float32; a name or a jnp/numpy dtype)."""
    if dtype is None:
        return jnp.float32
    if isinstance(dtype, str):
        if dtype not in _NAMES:
            raise DTypeError(f"dtype={dtype!r}; expected one of {sorted(_NAMES)}")
        return _NAMES[dtype]
    try:
        dt = jnp.dtype(dtype)
    except TypeError:
        raise DTypeError(f"dtype={dtype!r} is not a jax dtype; expected one of {sorted(_NAMES)}") from None
    if dt not in _FLOATS:
        raise DTypeError(f"dtype={dtype!r} is not a float dtype; expected one of {sorted(_NAMES)}")
    return dt


def is_traced(*xs: Any) -> bool:
    """True when any of ``xs`` is an abstract value being traced (inside jit/vmap/grad): no host reads allowed."""
    return any(isinstance(x, jax.core.Tracer) for x in xs)


class JaxBackend:
    name = "jax"
    ops = JaxOps()

    def cast(self, x: Any, recipe: Recipe, layout: Layout, *, nonfinite: str, history: Any) -> Any:
        arr = as_float_array(x, "breccia.cast")
        if not is_traced(arr):
            return cast_generic(self.ops, arr, recipe, layout, nonfinite=nonfinite, history=history)
        if history is not None:
            raise RecipeError(
                "breccia.cast(..., history=...) reads the amax back to the host to update the AmaxHistory, which "
                "cannot happen inside jax.jit/vmap/grad; call it outside the traced function, or use "
                "Float8CurrentScaling inside jit"
            )
        return cast_generic(TRACED_OPS, arr, recipe, layout, nonfinite="propagate")

    def dequantize(self, st: ScaledTensor, dtype: Any) -> jax.Array:
        want = jax_dtype(dtype)
        out: jax.Array = dequantize_generic(self.ops, st)
        return out if want == jnp.float32 else out.astype(want)

    def operand(self, x: Any) -> jax.Array:
        if isinstance(x, ScaledTensor):
            return self.dequantize(x, None)
        return as_float_array(x, "breccia.matmul").astype(jnp.float32)

    def matmul(self, a: Any, b: Any, out_dtype: Any) -> jax.Array:
        from ._mm import scaled_matmul

        return scaled_matmul(self, a, b, jax_dtype(out_dtype))

    def cast_ste(self, x: Any, recipe: Recipe, layout: Layout) -> jax.Array:
        from ._ste import cast_ste

        return cast_ste(as_float_array(x, "breccia.cast_ste"), recipe, layout)


BACKEND = JaxBackend()
