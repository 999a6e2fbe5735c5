"""DLPack: hand a ScaledTensor's buffers to another framework, zero-copy where both sides allow.

numpy ↔ torch (CPU) and jax/mlx → numpy/torch share memory; into jax a buffer is shared when DLPack carries its
dtype and alignment, else copied once; into MLX it is copied (MLX has no DLPack import). Float8 buffers cross as
same-width ``uint8`` views where a side lacks the dtype (numpy's ml_dtypes are not DLPack types, MLX has no
float8) and are re-labelled on arrival, so the bits never change.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from breccia._errors import DTypeError
from breccia._tensor import ScaledTensor, array_framework

from ._arrays import convert, host_numpy

__all__ = ["DLPackCapsules", "from_dlpack", "to_dlpack"]

_NOT_DLPACK = {"float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu", "bfloat16"}  # as numpy (ml_dtypes) arrays


@dataclass(frozen=True)
class DLPackCapsules:
    """The DLPack capsules of a ScaledTensor's buffers. Unpacks as ``data, scale`` (the seed API); NVFP4's
    ``global_scale`` and asymmetric recipes' ``zero_point`` are attributes (``None`` when the recipe has none)."""

    data: Any
    scale: Any
    global_scale: Any = None
    zero_point: Any = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.data, self.scale))


def _capsule(arr: Any) -> Any:
    if arr is None:
        return None
    if array_framework(arr) == "numpy" and arr.dtype.name in _NOT_DLPACK:
        arr = host_numpy(arr).view("int16" if arr.dtype.name == "bfloat16" else "uint8")
    if not hasattr(arr, "__dlpack__"):
        raise DTypeError(f"to_dlpack: a {type(arr).__module__}.{type(arr).__name__} buffer has no __dlpack__")
    return arr.__dlpack__()


def to_dlpack(st: ScaledTensor) -> DLPackCapsules:
    """Raw DLPack capsules of ``st``'s buffers (advanced use; :func:`from_dlpack` is the safe path).

    numpy float8/bfloat16 buffers are exported as ``uint8``/``int16`` views (ml_dtypes types are not DLPack types);
    a capsule carries no recipe, so rebuild with :func:`breccia.from_buffer` on the receiving side.
    """
    if not isinstance(st, ScaledTensor):
        raise DTypeError(f"to_dlpack needs a ScaledTensor; got {type(st).__name__}")
    return DLPackCapsules(_capsule(st.data), _capsule(st.scale), _capsule(st.global_scale), _capsule(st.zero_point))


def from_dlpack(st: ScaledTensor, framework: str, *, device: Any = None) -> ScaledTensor:
    """``st`` with its buffers in ``framework`` (``"numpy" | "torch" | "jax" | "mlx"``), bits and recipe unchanged.

    Shares memory where the frameworks allow (see the module docstring); ``device`` places torch/jax buffers.
    """
    if not isinstance(st, ScaledTensor):
        raise DTypeError(f"from_dlpack needs a ScaledTensor; got {type(st).__name__}")
    return convert(st, framework, device)
