"""The MLX backend object: cast/dequantize/matmul on ``mlx.core.array``.

cast and dequantize run the shared driver (:mod:`breccia._generic`) with :class:`MLXOps`, so their bytes equal the
numpy reference. matmul takes MLX's fused ``mx.quantized_matmul`` when the weight ``b`` (``[K, N]``, blocked along
K) holds a recipe MLX stores natively (:func:`breccia.mlx.mlx_mode`) — the kernel then reads the packed codes
directly, as MLX's own quantized layers do — and where it is the faster path (always on the GPU; on the CPU for
few rows, see ``_CPU_FUSED_MAX_ROWS``); otherwise it dequantizes and multiplies in fp32.
"""

from __future__ import annotations

import weakref
from typing import Any

import mlx.core as mx

from breccia._errors import BrecciaError, DTypeError
from breccia._generic import cast_generic, dequantize_generic
from breccia._layouts import Layout, PerBlockK
from breccia._recipes import Recipe
from breccia._tensor import ScaledTensor

from ._ops import MLXOps
from ._quant import MLXQuantized, mlx_mode, to_mlx_quantized

__all__ = ["BACKEND", "MLXBackend", "mlx_dtype"]

_FLOATS = (mx.float32, mx.float16, mx.bfloat16)
_NAMES = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}


def as_float_array(x: Any, who: str) -> mx.array:
    if not isinstance(x, mx.array):
        raise DTypeError(f"{who} expected an mlx.core.array; got {type(x).__name__}")
    if x.dtype not in _FLOATS:
        raise DTypeError(
            f"{who} needs a floating-point mlx array (float32, float16 or bfloat16); got dtype {x.dtype}. "
            "Convert first, e.g. x.astype(mx.float32)"
        )
    return x


def mlx_dtype(dtype: Any) -> mx.Dtype:
    """An output dtype argument (``None``, an ``mx`` float dtype or its name) as an ``mx.Dtype``."""
    if dtype is None:
        return mx.float32
    if isinstance(dtype, mx.Dtype):
        if dtype not in _FLOATS:
            raise DTypeError(f"dtype={dtype} is not a float dtype; expected one of {sorted(_NAMES)}")
        return dtype
    if isinstance(dtype, str) and dtype in _NAMES:
        return _NAMES[dtype]
    raise DTypeError(f"dtype={dtype!r}; expected an mlx float dtype or one of {sorted(_NAMES)}")


# A weight is usually multiplied many times: keep its MLX form while the ScaledTensor lives (identity-keyed).
_PACKED: weakref.WeakKeyDictionary[ScaledTensor, MLXQuantized] = weakref.WeakKeyDictionary()


def _transposed(st: ScaledTensor) -> ScaledTensor:
    """``b`` ``[K, N]`` blocked along K as the ``[N, K]`` ScaledTensor blocked along its last axis (what MLX holds).

    Whole-byte codes transpose directly; packed nibbles are unpacked, transposed and re-packed (exact)."""
    ops = MLXOps()
    fmt = st.recipe.element
    if fmt.storage == "packed4":
        data = ops.store_codes(mx.transpose(ops.load_codes(st.data, fmt, st.shape[-1])), fmt)
    else:
        data = mx.transpose(st.data)
    zp = None if st.zero_point is None else mx.transpose(st.zero_point)
    k, n = st.shape
    assert isinstance(st.layout, PerBlockK)
    lay = PerBlockK(st.layout.block_k, -1)
    return ScaledTensor(data, mx.transpose(st.scale), st.recipe, lay, (n, k), st.global_scale, zp)


def fused_weight(b: Any) -> MLXQuantized | None:
    """MLX's quantized form of the matmul weight ``b`` if ``quantized_matmul`` can take it, else ``None``."""
    if not isinstance(b, ScaledTensor) or len(b.shape) != 2:
        return None
    found = mlx_mode(b.recipe)
    lay = b.layout
    if found is None or not (isinstance(lay, PerBlockK) and lay.axis in (0, -2)) or b.shape[0] % found[1]:
        return None
    cached = _PACKED.get(b)
    if cached is None:
        try:
            cached = to_mlx_quantized(_transposed(b))
        except BrecciaError:  # not exactly representable (e.g. fp32 affine scales): dequantize instead
            return None
        _PACKED[b] = cached
    return cached


# On the CPU, MLX 0.32's quantized_matmul is a matrix-vector loop: its cost grows with the rows of x, and past a few
# rows dequantize + sgemm wins. Crossovers measured with K = N = 2048 (docs/mlx.md): mxfp8 ~6 rows, affine 4-bit
# ~20, mxfp4/nvfp4 > 64. On the GPU the fused kernel is MLX's production path and is always taken.
_CPU_FUSED_MAX_ROWS = {("mxfp8", 8): 4, ("affine", 8): 4, ("affine", 4): 16, ("mxfp4", 4): 64, ("nvfp4", 4): 64}


def _fused_pays(x: mx.array, b: ScaledTensor) -> bool:
    found = mlx_mode(b.recipe)
    if found is None:
        return False
    if mx.default_device().type == mx.DeviceType.gpu:
        return True
    rows = 1
    for d in x.shape[:-1]:
        rows *= int(d)
    return rows <= _CPU_FUSED_MAX_ROWS.get((found[0], found[2]), 0)


class MLXBackend:
    name = "mlx"
    ops = MLXOps()

    def cast(self, x: Any, recipe: Recipe, layout: Layout, *, nonfinite: str, history: Any) -> Any:
        arr = as_float_array(x, "breccia.cast")
        return cast_generic(self.ops, arr, recipe, layout, nonfinite=nonfinite, history=history)

    def dequantize(self, st: ScaledTensor, dtype: Any) -> mx.array:
        out: mx.array = dequantize_generic(self.ops, st)
        want = mlx_dtype(dtype)
        return out if want == mx.float32 else out.astype(want)

    def operand(self, x: Any) -> mx.array:
        if isinstance(x, ScaledTensor):
            return self.dequantize(x, None)
        return as_float_array(x, "breccia.matmul").astype(mx.float32)

    def matmul(self, a: Any, b: Any, out_dtype: Any) -> mx.array:
        want = mlx_dtype(out_dtype)
        x = self.operand(a)
        q = fused_weight(b) if isinstance(b, ScaledTensor) and _fused_pays(x, b) else None
        if q is not None:
            scales = q.scales if q.mode != "affine" else q.scales.astype(x.dtype)
            biases = None if q.biases is None else q.biases.astype(x.dtype)
            out = mx.quantized_matmul(x, q.w_q, scales, biases, transpose=True, **q.kwargs)
            if q.global_scale is not None:  # MLX 0.32's quantized_matmul has no global_scale: apply g after
                out = out * mx.reshape(b.global_scale, ())
            return out.astype(want)
        return mx.matmul(x, self.operand(b)).astype(want)

    def cast_ste(self, x: Any, recipe: Recipe, layout: Layout) -> mx.array:
        """Fake-quantize (``dequantize(cast(x))`` in ``x``'s dtype) with a straight-through gradient: under
        ``mx.grad`` / ``mx.value_and_grad`` the cotangent passes through the rounding unchanged (an
        ``mx.custom_function`` whose vjp is the identity), as breccia-torch's and breccia-jax's ``cast_ste`` do."""
        arr = as_float_array(x, "breccia.cast_ste")

        @mx.custom_function
        def ste(v: mx.array) -> mx.array:
            st = cast_generic(self.ops, v, recipe, layout, nonfinite="propagate")
            assert isinstance(st, ScaledTensor)
            out: mx.array = dequantize_generic(self.ops, st)
            return out.astype(v.dtype)

        @ste.vjp
        def _identity(primals: Any, cotangent: mx.array, output: Any) -> mx.array:
            return cotangent

        result: mx.array = ste(arr)  # type: ignore[assignment]  # custom_function is typed as returning object
        return result


BACKEND = MLXBackend()
