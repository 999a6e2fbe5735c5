"""breccia: one neutral type for block-scaled low-precision tensors.

``ScaledTensor = data + scale + recipe + layout`` — FP8, MXFP8, MXFP4/6, NVFP4, INT4/INT8 — with the same bits on
NumPy, PyTorch, JAX and MLX. This package (``breccia-core``) holds the type, the recipes and layouts, the formats
and the numpy reference kernels; ``breccia-torch``, ``-jax``, ``-mlx``, ``-triton`` and ``-bridges`` add
subpackages to this namespace (hence ``extend_path``) and are loaded lazily on first use.
"""

from __future__ import annotations

from importlib import import_module
from pkgutil import extend_path
from typing import TYPE_CHECKING, Any

from ._version import __version__

__path__ = extend_path(__path__, __name__)

# Public names load on first access (PEP 562), so ``import breccia`` costs a few milliseconds and pulls in neither
# numpy's extras nor ml_dtypes until a recipe or an operation is used (DESIGN.md §1: import < 100 ms).
_LAZY = {
    "_api": ("cast", "cast_ste", "dequantize", "matmul", "requantize"),
    "_errors": (
        "BackendNotInstalledError",
        "BrecciaError",
        "DTypeError",
        "FormatError",
        "LayoutError",
        "NonFiniteError",
        "RecipeError",
        "ShapeError",
    ),
    "_history": ("AmaxHistory",),
    "_layouts": ("Layout", "PerBlock2D", "PerBlockK", "PerChannel", "PerTensor", "layout_from_dict"),
    "_recipes": (
        "DelayedScaling",
        "Float8BlockScaling",
        "Float8CurrentScaling",
        "INT4Scaling",
        "INT8Scaling",
        "MXFP4BlockScaling",
        "MXFP6BlockScaling",
        "MXFP8BlockScaling",
        "NVFP4BlockScaling",
        "Recipe",
        "recipe_from_dict",
    ),
    "_tensor": ("ScaledTensor", "from_buffer"),
}
_WHERE = {name: mod for mod, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'breccia' has no attribute {name!r}")
    value = getattr(import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from ._api import cast, cast_ste, dequantize, matmul, requantize
    from ._errors import (
        BackendNotInstalledError,
        BrecciaError,
        DTypeError,
        FormatError,
        LayoutError,
        NonFiniteError,
        RecipeError,
        ShapeError,
    )
    from ._history import AmaxHistory
    from ._layouts import Layout, PerBlock2D, PerBlockK, PerChannel, PerTensor, layout_from_dict
    from ._recipes import (
        DelayedScaling,
        Float8BlockScaling,
        Float8CurrentScaling,
        INT4Scaling,
        INT8Scaling,
        MXFP4BlockScaling,
        MXFP6BlockScaling,
        MXFP8BlockScaling,
        NVFP4BlockScaling,
        Recipe,
        recipe_from_dict,
    )
    from ._tensor import ScaledTensor, from_buffer

__all__ = [
    "AmaxHistory",
    "BackendNotInstalledError",
    "BrecciaError",
    "DTypeError",
    "DelayedScaling",
    "Float8BlockScaling",
    "Float8CurrentScaling",
    "FormatError",
    "INT4Scaling",
    "INT8Scaling",
    "Layout",
    "LayoutError",
    "MXFP4BlockScaling",
    "MXFP6BlockScaling",
    "MXFP8BlockScaling",
    "NVFP4BlockScaling",
    "NonFiniteError",
    "PerBlock2D",
    "PerBlockK",
    "PerChannel",
    "PerTensor",
    "Recipe",
    "RecipeError",
    "ScaledTensor",
    "ShapeError",
    "__version__",
    "cast",
    "cast_ste",
    "dequantize",
    "from_buffer",
    "layout_from_dict",
    "matmul",
    "recipe_from_dict",
    "requantize",
]
