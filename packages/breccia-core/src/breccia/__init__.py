"""breccia: one neutral type for block-scaled low-precision tensors.

``ScaledTensor = data + scale + recipe + layout`` — FP8, MXFP8, MXFP4/6, NVFP4, INT4/INT8 — with the same bits on
NumPy, PyTorch, JAX and MLX. This package (``breccia-core``) holds the type, the recipes and layouts, the formats
and the numpy reference kernels; ``breccia-torch``, ``-jax``, ``-mlx``, ``-triton`` and ``-bridges`` add
subpackages to this namespace (hence ``extend_path``) and are loaded lazily on first use.
"""

from __future__ import annotations

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

from ._api import cast, cast_ste, dequantize, matmul, requantize  # noqa: E402
from ._errors import (  # noqa: E402
    BackendNotInstalledError,
    BrecciaError,
    DTypeError,
    FormatError,
    LayoutError,
    NonFiniteError,
    RecipeError,
    ShapeError,
)
from ._history import AmaxHistory  # noqa: E402
from ._layouts import Layout, PerBlock2D, PerBlockK, PerChannel, PerTensor, layout_from_dict  # noqa: E402
from ._recipes import (  # noqa: E402
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
from ._tensor import ScaledTensor, from_buffer  # noqa: E402
from ._version import __version__  # noqa: E402

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
