"""The numpy backend object (what ``breccia.<framework>`` add-ons provide as ``BACKEND``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._errors import DTypeError
from ._layouts import Layout
from ._ops import NumpyOps
from ._recipes import Recipe
from ._reference import as_float_input, cast_numpy, dequantize_numpy
from ._reference import out_dtype as numpy_out_dtype
from ._tensor import ScaledTensor

__all__ = ["BACKEND", "NumpyBackend"]


def _dtype_str(dtype: Any) -> str:
    if dtype is None:
        return "float32"
    if isinstance(dtype, str):
        return dtype
    try:
        return str(np.dtype(dtype).name)
    except TypeError:
        raise DTypeError(f"dtype={dtype!r} is not a numpy dtype") from None


class NumpyBackend:
    name = "numpy"
    ops = NumpyOps()

    # Overflow/invalid conditions are handled explicitly (saturation, NaN policy), so numpy's warnings are noise.
    def cast(self, x: Any, recipe: Recipe, layout: Layout, *, nonfinite: str, history: Any) -> Any:
        with np.errstate(all="ignore"):
            return cast_numpy(x, recipe, layout, nonfinite=nonfinite, history=history)

    def dequantize(self, st: ScaledTensor, dtype: Any) -> np.ndarray:
        with np.errstate(all="ignore"):
            return dequantize_numpy(st, _dtype_str(dtype))

    def operand(self, x: Any) -> np.ndarray:
        """A matmul operand as fp32: dequantized ScaledTensor or a plain float array."""
        if isinstance(x, ScaledTensor):
            return dequantize_numpy(x)
        return np.asarray(as_float_input(x, "breccia.matmul"), dtype=np.float32)

    def matmul(self, a: Any, b: Any, out_dtype: Any) -> np.ndarray:
        # Dequantize to fp32 (decode(q) · scale, the contract's definition) and accumulate in fp32 (BLAS sgemm).
        out = np.matmul(self.operand(a), self.operand(b))
        dt = _dtype_str(out_dtype)
        result: np.ndarray = out if dt == "float32" else out.astype(numpy_out_dtype(dt, "breccia.matmul"))
        return result

    def cast_ste(self, x: Any, recipe: Recipe, layout: Layout) -> Any:
        arr = as_float_input(x, "breccia.cast_ste")
        st = cast_numpy(arr, recipe, layout)
        assert isinstance(st, ScaledTensor)
        return dequantize_numpy(st, arr.dtype.name if arr.dtype.name != "float64" else "float64")


BACKEND = NumpyBackend()
