"""ScaledTensor: ``data + scale + recipe + layout`` as a frozen value object (DESIGN.md §2).

The dataclass never copies or converts its buffers: they belong to one framework and one device, and the
framework-specific work happens in free functions (:func:`breccia.cast`, :func:`breccia.dequantize` …). Validation
in ``__post_init__`` is framework-neutral: it reads only ``.shape`` and the dtype's *name*, so a torch, jax or mlx
buffer is checked by the same rules as a numpy one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ._errors import DTypeError, LayoutError, RecipeError
from ._formats import ElementFormat
from ._layouts import Layout
from ._recipes import Recipe, scale_kind

__all__ = ["ScaledTensor", "array_framework", "dtype_name", "from_buffer"]


def array_framework(x: Any) -> str:
    """``"numpy" | "torch" | "jax" | "mlx" | <module>`` for an array, from its type's module (no imports)."""
    mod = type(x).__module__.split(".", 1)[0]
    if mod == "jaxlib":
        return "jax"
    return mod


def dtype_name(x: Any) -> str:
    """The dtype's short name (``float8_e4m3fn``, ``uint8`` …) the same way for every framework."""
    return str(getattr(x, "dtype", type(x).__name__)).rsplit(".", 1)[-1]


_NO_FP8 = {"mlx"}  # frameworks without float8 dtypes keep the same bytes as uint8 (DESIGN.md §5)


def _data_dtypes(fmt: ElementFormat, fw: str) -> set[str]:
    if fmt.storage == "fp8":
        return {fmt.native or "", "uint8"} if fw in _NO_FP8 else {fmt.native or ""}
    if fmt.storage == "packed4":
        return {"uint8", "float4_e2m1fn_x2"} if fmt.name == "E2M1" else {"uint8"}
    if fmt.storage == "int8":
        return {"int8"}
    return {"uint8"}


_FLOAT_NAMES = {
    "fp32": "float32",
    "fp16": "float16",
    "bf16": "bfloat16",
    "e8m0": "float8_e8m0fnu",
    "e4m3": "float8_e4m3fn",
}


def _scale_dtypes(recipe: Recipe, fw: str) -> set[str]:
    kind = scale_kind(recipe)
    want = {_FLOAT_NAMES[kind]}
    if kind in ("e8m0", "e4m3") and fw in _NO_FP8:
        want.add("uint8")
    return want


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in x.shape)


@dataclass(frozen=True, eq=False)
class ScaledTensor:
    """A block-scaled low-precision tensor: ``x ≈ decode(data) · scale`` block by block.

    Fields: ``data`` (codes: native float8, packed uint8 nibbles, uint8 or int8), ``scale`` (per the layout; fp32,
    fp16/bf16, E8M0 or E4M3), ``recipe``, ``layout``, ``shape`` (logical shape; packed buffers don't carry it),
    ``global_scale`` (NVFP4's per-tensor fp32 scale) and ``zero_point`` (asymmetric integer recipes).
    Equality is identity (buffers are arrays); compare contents with :func:`breccia.dequantize`.
    """

    data: Any
    scale: Any
    recipe: Recipe
    layout: Layout
    shape: tuple[int, ...] = field(default=None)  # type: ignore[arg-type]  # filled in __post_init__
    global_scale: Any = None
    zero_point: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.recipe, Recipe):
            raise LayoutError(f"ScaledTensor needs recipe to be a breccia recipe; got {self.recipe!r}")
        if not isinstance(self.layout, Layout):
            raise LayoutError(f"ScaledTensor needs layout to be a breccia layout; got {self.layout!r}")
        for name in ("data", "scale"):
            if not hasattr(getattr(self, name), "shape"):
                raise DTypeError(f"ScaledTensor needs {name} to be an array; got {type(getattr(self, name)).__name__}")
        fmt = self.recipe.element
        dshape = _shape(self.data)
        if self.shape is None:
            if fmt.storage == "packed4":
                if not dshape:
                    raise LayoutError("packed 4-bit data must have at least one dimension")
                object.__setattr__(self, "shape", (*dshape[:-1], dshape[-1] * 2))
            else:
                object.__setattr__(self, "shape", dshape)
        else:
            try:
                shape = tuple(int(n) for n in self.shape)
            except (TypeError, ValueError):
                raise LayoutError(f"ScaledTensor needs shape to be a tuple of ints; got {self.shape!r}") from None
            if any(n < 0 for n in shape):
                raise LayoutError(f"ScaledTensor got a negative dimension in shape={shape}")
            object.__setattr__(self, "shape", shape)
        self.recipe.check_layout(self.layout)
        self.validate()

    def validate(self) -> None:
        """Check every invariant between buffers, recipe and layout; raise a :class:`BrecciaError` naming it."""
        fmt = self.recipe.element
        fw = array_framework(self.data)
        shape = self.shape
        want = (*shape[:-1], (shape[-1] + 1) // 2) if fmt.storage == "packed4" and shape else shape
        if _shape(self.data) != tuple(want):
            packed = " (two 4-bit codes per byte)" if fmt.storage == "packed4" else ""
            raise LayoutError(
                f"{self.recipe.name} data for logical shape {shape} must have shape {tuple(want)}{packed}; "
                f"got {_shape(self.data)}"
            )
        ok = _data_dtypes(fmt, fw)
        if dtype_name(self.data) not in ok:
            raise DTypeError(
                f"{self.recipe.name} needs data of dtype {' or '.join(sorted(ok))} ({fmt.name} codes); "
                f"got {dtype_name(self.data)}"
            )
        self.layout.validate_shape(shape)
        self.layout.check_scale(shape, _shape(self.scale))
        ok = _scale_dtypes(self.recipe, fw)
        if dtype_name(self.scale) not in ok:
            raise DTypeError(
                f"{self.recipe.name} needs scale of dtype {' or '.join(sorted(ok))}; got {dtype_name(self.scale)}"
            )
        for name, arr in (
            ("scale", self.scale),
            ("global_scale", self.global_scale),
            ("zero_point", self.zero_point),
        ):
            if arr is not None and array_framework(arr) != fw:
                raise DTypeError(
                    f"ScaledTensor buffers must share one framework: data is {fw}, {name} is {array_framework(arr)}"
                )
            if arr is not None and fw == "torch" and str(arr.device) != str(self.data.device):
                raise DTypeError(
                    f"ScaledTensor buffers must share one device: data on {self.data.device}, {name} on {arr.device}"
                )
        if self.recipe.has_global_scale:
            if self.global_scale is None:
                raise LayoutError(f"{self.recipe!r} needs a global_scale (fp32, shape ()); got None")
            if _shape(self.global_scale) != () or dtype_name(self.global_scale) != "float32":
                raise LayoutError(
                    f"global_scale must be a float32 array of shape (); got dtype "
                    f"{dtype_name(self.global_scale)} shape {_shape(self.global_scale)}"
                )
        elif self.global_scale is not None:
            raise LayoutError(f"{self.recipe!r} has no global scale; got global_scale={self.global_scale!r}")
        if self.recipe.has_zero_point:
            if self.zero_point is None:
                raise LayoutError(f"{self.recipe!r} is asymmetric and needs a zero_point; got None")
            self.layout.check_scale(shape, _shape(self.zero_point), what="zero_point")
            if getattr(self.recipe, "float_zero_point", False):
                zdt = _FLOAT_NAMES[scale_kind(self.recipe)]
                why = "zero_point_domain='float' keeps a float offset of the scale dtype"
            else:
                zdt = "int8" if fmt.signed else "uint8"
                why = "same signedness as the codes"
            if dtype_name(self.zero_point) != zdt:
                raise DTypeError(
                    f"{self.recipe.name} needs zero_point of dtype {zdt} ({why}); got {dtype_name(self.zero_point)}"
                )
        elif self.zero_point is not None:
            raise LayoutError(f"{self.recipe!r} is symmetric and takes no zero_point")

    # -- read-only conveniences (no computation on the buffers)
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def framework(self) -> str:
        return array_framework(self.data)

    @property
    def nbytes(self) -> int:
        """Bytes of every buffer (data, scale, global scale, zero point)."""
        total = 0
        for arr in (self.data, self.scale, self.global_scale, self.zero_point):
            if arr is not None:
                total += int(getattr(arr, "nbytes", 0))
        return total

    @property
    def bits_per_value(self) -> float:
        """Storage cost per logical element, scales included."""
        return 8.0 * self.nbytes / self.size if self.size else float("nan")

    def __repr__(self) -> str:
        extra = ""
        if self.global_scale is not None:
            extra += ", global_scale=…"
        if self.zero_point is not None:
            extra += ", zero_point=…"
        return (
            f"ScaledTensor(shape={self.shape}, recipe={self.recipe!r}, layout={self.layout!r}, "
            f"data={self.framework}:{dtype_name(self.data)}{list(_shape(self.data))}, "
            f"scale={dtype_name(self.scale)}{list(_shape(self.scale))}{extra})"
        )


def from_buffer(
    data: Any,
    scale: Any,
    recipe: Recipe,
    layout: Layout | None = None,
    *,
    shape: tuple[int, ...] | None = None,
    axis: int = -1,
    global_scale: Any = None,
    zero_point: Any = None,
) -> ScaledTensor:
    """Wrap existing buffers (no copy) as a ScaledTensor, with the recipe's default layout along ``axis``."""
    if not isinstance(recipe, Recipe):
        raise RecipeError(f"from_buffer needs a breccia recipe; got {recipe!r}")
    return ScaledTensor(
        data,
        scale,
        recipe,
        layout if layout is not None else recipe.default_layout(axis),
        shape,  # type: ignore[arg-type]  # None means "infer from data"
        global_scale,
        zero_point,
    )
