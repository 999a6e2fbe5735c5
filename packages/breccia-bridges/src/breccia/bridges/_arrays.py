"""Moving buffers between frameworks with their bits intact (the engine under DLPack, files and every bridge).

Two rules make this lossless: bytes travel as same-width *views* (``float8_*`` ↔ ``uint8``, ``bfloat16`` ↔
``int16``) wherever a framework or DLPack lacks a dtype, and a view is re-labelled on arrival, never converted.
Nothing here imports a framework that the caller has not already used: the target framework is imported only
when asked for, the source framework is recognised from ``sys.modules`` (DESIGN.md §1).
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import Any

import ml_dtypes
import numpy as np

from breccia._errors import BackendNotInstalledError, DTypeError
from breccia._recipes import scale_kind
from breccia._tensor import ScaledTensor, array_framework, dtype_name

__all__ = [
    "FRAMEWORKS",
    "convert",
    "from_numpy",
    "host_numpy",
    "move",
    "require",
]

FRAMEWORKS = ("numpy", "torch", "jax", "mlx")

# same-width carriers for dtypes that DLPack or a framework cannot hold natively
_CARRIER = {
    "float8_e4m3fn": "uint8",
    "float8_e5m2": "uint8",
    "float8_e8m0fnu": "uint8",
    "float4_e2m1fn_x2": "uint8",
    "bfloat16": "int16",
}


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise :class:`BackendNotInstalledError` naming the pip command that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.partition(".")[0]
        raise BackendNotInstalledError(
            f"{what} needs {top}, which is not installed: pip install 'breccia-bridges[{extra}]'"
        ) from e


def _check_framework(framework: str) -> None:
    if framework not in FRAMEWORKS:
        raise DTypeError(f"framework must be one of {FRAMEWORKS}; got {framework!r}")


def _np_dtype(name: str) -> np.dtype[Any]:
    dt: np.dtype[Any] = np.dtype(getattr(ml_dtypes, name)) if hasattr(ml_dtypes, name) else np.dtype(name)
    return dt


def _c(arr: np.ndarray) -> np.ndarray:
    """C-contiguous without promoting 0-d to 1-d (which ``np.ascontiguousarray`` does)."""
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def host_numpy(arr: Any) -> np.ndarray:
    """``arr`` as a C-contiguous host numpy array with the same bits (a view where the source allows).

    torch ``float4_e2m1fn_x2`` comes back as its packed ``uint8`` bytes; every other dtype keeps its name
    (``float8_*`` and ``bfloat16`` as ml_dtypes).
    """
    fw = array_framework(arr)
    if fw == "numpy":
        return _c(arr)
    name = dtype_name(arr)
    if fw == "torch":
        t = arr.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        carrier = _CARRIER.get(name)
        if carrier is None:
            out: np.ndarray = t.numpy()
            return out
        import torch

        raw: np.ndarray = t.view(getattr(torch, carrier)).numpy()
        return raw if name == "float4_e2m1fn_x2" else raw.view(_np_dtype(name))
    if fw == "mlx":
        import mlx.core as mx

        carrier = _CARRIER.get(name)
        if carrier is not None:  # mlx → numpy has no bfloat16
            return np.array(arr.view(getattr(mx, carrier)), copy=False).view(_np_dtype(name))
        return _c(np.array(arr, copy=False))
    if fw == "jax":
        return _c(np.asarray(arr))
    raise DTypeError(
        f"cannot read a buffer of type {type(arr).__module__}.{type(arr).__name__}; "
        f"expected a numpy, torch, jax or mlx array"
    )


def from_numpy(arr: np.ndarray, framework: str, device: Any = None) -> Any:
    """A ``framework`` array with the bits of host array ``arr`` (zero-copy into numpy and CPU torch).

    FP8 lands as the framework's native float8 dtype, or as ``uint8`` where it has none (MLX).
    """
    return move(arr, framework, device)


def _to_mlx(arr: np.ndarray) -> Any:
    mx = require("mlx.core", "mlx", "loading into mlx")
    if arr.dtype.name == "bfloat16":
        return mx.array(arr.view(np.int16)).view(mx.bfloat16)
    return mx.array(arr.view(np.uint8) if arr.dtype.name in _CARRIER else arr)


def _relabel(arr: Any, framework: str, want: str | None) -> Any:
    """View ``uint8`` bytes as the float8 dtype ``want`` where ``framework`` has it (MLX keeps bytes)."""
    if want is None or framework == "mlx" or dtype_name(arr) == want:
        return arr
    if dtype_name(arr) != "uint8":
        raise DTypeError(f"expected {want} or uint8 bytes; got {dtype_name(arr)}")
    if framework == "numpy":
        return arr.view(_np_dtype(want))
    if framework == "torch":
        import torch

        return arr.view(getattr(torch, want))
    import jax
    import jax.numpy as jnp

    return jax.lax.bitcast_convert_type(arr, jnp.dtype(want))  # XLA has no in-place relabel: one copy


def _import(arr: Any, src: str, framework: str) -> Any:
    """Zero-copy through DLPack or the buffer protocol where both sides allow, else one host copy."""
    name = dtype_name(arr)
    if framework == "numpy":
        return host_numpy(arr)  # torch/jax/mlx on CPU export views; float8 arrives as ml_dtypes
    if framework == "mlx":
        return _to_mlx(host_numpy(arr))
    if src == "numpy":
        carrier = _CARRIER.get(name)
        view = _c(arr).view(carrier) if carrier else _c(arr)
        if framework == "torch":
            torch = require("torch", "torch", "moving buffers into torch")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # read-only sources (views of jax) stay read-only
                t = torch.from_numpy(view)
            return t.view(getattr(torch, name)) if carrier and name != "float4_e2m1fn_x2" else t
        jnp = require("jax.numpy", "jax", "moving buffers into jax")
        return jnp.asarray(arr) if carrier else jnp.from_dlpack(view)
    if src == "mlx" and name == "bfloat16":
        return _import(host_numpy(arr), "numpy", framework)
    mod = (
        require("torch", "torch", "moving buffers into torch")
        if framework == "torch"
        else require("jax.numpy", "jax", "moving buffers into jax")
    )
    try:
        return mod.from_dlpack(arr)
    except (BufferError, RuntimeError, TypeError, ValueError):  # a dtype or device DLPack can't carry
        return _import(host_numpy(arr), "numpy", framework)


def _to_device(arr: Any, framework: str, device: Any) -> Any:
    if device is None:
        return arr
    if framework == "torch":
        return arr.to(device)
    if framework == "jax":
        import jax

        return jax.device_put(arr, device)
    raise DTypeError(f"device= applies to torch and jax; {framework} arrays live on the host (got device={device!r})")


def move(arr: Any, framework: str, device: Any = None, want: str | None = None) -> Any:
    """``arr`` in ``framework`` with the same bits; ``want`` names the float8 dtype the role calls for."""
    if arr is None:
        return None
    _check_framework(framework)
    src = array_framework(arr)
    out = arr if src == framework else _import(arr, src, framework)
    return _relabel(_to_device(out, framework, device), framework, want)


_SCALE_WANT = {"e8m0": "float8_e8m0fnu", "e4m3": "float8_e4m3fn"}


def convert(st: ScaledTensor, framework: str, device: Any = None) -> ScaledTensor:
    """``st`` with every buffer in ``framework`` (on ``device`` if given); recipe, layout and bits unchanged."""
    _check_framework(framework)
    fmt = st.recipe.element
    return ScaledTensor(
        move(st.data, framework, device, fmt.native if fmt.storage == "fp8" else None),
        move(st.scale, framework, device, _SCALE_WANT.get(scale_kind(st.recipe))),
        st.recipe,
        st.layout,
        st.shape,
        global_scale=move(st.global_scale, framework, device),
        zero_point=move(st.zero_point, framework, device),
    )
