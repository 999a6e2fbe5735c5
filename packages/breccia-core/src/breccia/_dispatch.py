"""Backend dispatch without importing frameworks (DESIGN.md §1).

An array is recognised by looking for its framework in ``sys.modules`` (the array-api-compat way): if ``torch`` was
never imported, the argument cannot be a ``torch.Tensor``, so nothing is imported to find out. The matching add-on
(``breccia.torch`` …) is imported on first use; if it is missing the error names the pip command. Third-party
backends register under the entry-point group ``breccia.backends``; those are only looked at when no built-in
backend claims an array, so ``import breccia`` stays fast.
"""

from __future__ import annotations

import importlib
import sys
from functools import cache
from typing import Any, Protocol

import numpy as np

from ._errors import BackendNotInstalledError, DTypeError
from ._tensor import ScaledTensor

__all__ = ["Backend", "backend_for", "framework_of"]

_ADDONS = {"torch": "torch.Tensor", "jax": "jax.Array", "mlx": "mlx.core.array"}


class Backend(Protocol):
    """What an add-on's ``BACKEND`` object provides (see docs/architecture.md, "Adding a backend")."""

    name: str

    def cast(self, x: Any, recipe: Any, layout: Any, *, nonfinite: str, history: Any) -> Any: ...

    def dequantize(self, st: ScaledTensor, dtype: Any) -> Any: ...

    def matmul(self, a: Any, b: Any, out_dtype: Any) -> Any: ...

    def cast_ste(self, x: Any, recipe: Any, layout: Any) -> Any: ...


def _is_instance(x: Any, module: str, attr: str) -> bool:
    mod = sys.modules.get(module)
    if mod is None:
        return False
    cls: Any = mod
    for part in attr.split("."):
        cls = getattr(cls, part, None)
        if cls is None:
            return False
    return isinstance(x, cls)


def framework_of(x: Any) -> str:
    """``"numpy" | "torch" | "jax" | "mlx"`` or a registered third-party name; raises :class:`DTypeError`."""
    if isinstance(x, ScaledTensor):
        x = x.data
    if isinstance(x, (np.ndarray, np.generic, list, tuple, float, int)) and not isinstance(x, bool):
        return "numpy"
    if _is_instance(x, "torch", "Tensor"):
        return "torch"
    if _is_instance(x, "jax", "Array"):
        return "jax"
    if _is_instance(x, "mlx.core", "array"):
        return "mlx"
    for name, backend in _entry_point_backends().items():
        matches = getattr(backend, "matches", None)
        if matches is not None and matches(x):
            return name
    raise DTypeError(
        f"breccia got a {type(x).__module__}.{type(x).__qualname__}; expected a numpy, torch, jax or mlx array "
        "(or a backend registered under the 'breccia.backends' entry point)"
    )


@cache
def _entry_point_backends() -> dict[str, Any]:
    from importlib.metadata import entry_points

    found: dict[str, Any] = {}
    for ep in entry_points(group="breccia.backends"):
        try:
            found[ep.name] = ep.load()
        except Exception as e:  # a broken third-party plugin must not break breccia
            import warnings

            warnings.warn(f"breccia backend entry point {ep.name!r} failed to load: {e}", stacklevel=2)
    return found


_LOADED: dict[str, Any] = {}


def register_backend(name: str, backend: Any) -> None:
    """Called by an add-on when it is imported, so dispatch finds it with a plain dict lookup (which tracers such
    as torch.compile follow without a graph break)."""
    _LOADED[name] = backend


def _load(name: str) -> Any:
    backend = _LOADED.get(name)
    if backend is None:
        backend = _LOADED[name] = _import_backend(name)
    return backend


def _import_backend(name: str) -> Any:
    if name == "numpy":
        from ._numpy_backend import BACKEND

        return BACKEND
    if name in _ADDONS:
        try:
            mod = importlib.import_module(f"breccia.{name}")
        except ModuleNotFoundError as e:
            if e.name in (f"breccia.{name}",):
                raise BackendNotInstalledError(
                    f"got a {_ADDONS[name]}, but breccia-{name} is not installed: pip install breccia-{name}"
                ) from None
            raise
        backend = getattr(mod, "BACKEND", None)
        if backend is None:
            raise BackendNotInstalledError(
                f"got a {_ADDONS[name]}, but the installed breccia-{name} provides no backend yet: "
                f"upgrade with pip install -U breccia-{name}"
            )
        return backend
    return _entry_point_backends()[name]


def backend_for(*xs: Any, who: str = "breccia") -> Any:
    """The backend for the arrays/ScaledTensors ``xs`` (all must share a framework)."""
    names = {framework_of(x) for x in xs if x is not None}
    if len(names) > 1:
        raise DTypeError(
            f"{who} got operands from different frameworks ({', '.join(sorted(names))}); "
            "move them to one first, e.g. with breccia.bridges.from_dlpack"
        )
    name = names.pop() if names else "numpy"
    try:
        return _load(name)
    except BackendNotInstalledError as e:
        raise BackendNotInstalledError(f"{who} {e}") from None
