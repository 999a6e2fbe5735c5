"""The recipe base class and the field validators every recipe shares (the concrete recipes are in
:mod:`breccia._recipes`, which re-exports :class:`Recipe`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

from ._errors import RecipeError
from ._formats import ElementFormat, get_format
from ._layouts import Layout, PerBlock2D, PerBlockK

__all__ = ["Recipe", "ScaleKind"]

ScaleKind = Literal["fp32", "fp16", "bf16", "e8m0", "e4m3"]
_FP8 = ("E4M3", "E5M2", "HYBRID")
_SCALE_DTYPES = ("fp16", "bf16", "fp32")
# Symmetric integer scale rule: "qmax" = amax / qmax (amax maps to ±7 / ±127 exactly; cast∘dequantize is a fixed
# point) — "half_range" = amax / ((qmax − qmin) / 2) = amax / 7.5 (torchao, compressed-tensors, GPTQ).
_RANGES = ("qmax", "half_range")


def _choice(who: str, name: str, value: object, allowed: tuple[object, ...]) -> None:
    if value not in allowed:
        raise RecipeError(f"{who} got {name}={value!r}; expected one of {', '.join(map(repr, allowed))}")


def _int(who: str, name: str, value: object, lo: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise RecipeError(f"{who} needs {name} to be an int >= {lo}; got {value!r}")


def _bool(who: str, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise RecipeError(f"{who} needs {name} to be True or False; got {value!r}")


@dataclass(frozen=True)
class Recipe:
    """Base class of every recipe."""

    name: ClassVar[str] = "Recipe"
    scale_kind: ClassVar[ScaleKind] = "fp32"

    @property
    def element(self) -> ElementFormat:
        """The element format of the quantized data."""
        raise NotImplementedError

    @property
    def grad_element(self) -> ElementFormat:
        """Element format for gradients in training (E5M2 for ``fp8_format="HYBRID"``)."""
        return self.element

    @property
    def has_global_scale(self) -> bool:
        return False

    @property
    def has_zero_point(self) -> bool:
        return False

    def default_layout(self, axis: int = -1) -> Layout:
        """The layout ``cast`` uses when none is given, blocking along ``axis``."""
        raise NotImplementedError

    def allowed_layouts(self) -> tuple[type[Layout], ...]:
        return (type(self.default_layout()),)

    def check_layout(self, layout: Layout) -> None:
        """Raise :class:`RecipeError` if ``layout`` is not a scope this recipe defines."""
        if not isinstance(layout, Layout):
            raise RecipeError(f"layout must be a breccia layout (PerTensor, PerBlockK, ...); got {layout!r}")
        allowed = self.allowed_layouts()
        if not isinstance(layout, allowed):
            names = ", ".join(c.kind for c in allowed)
            raise RecipeError(f"{self!r} cannot use layout {layout!r}; it supports {names}")
        want = self.default_layout(getattr(layout, "axis", -1))
        if type(want) is type(layout) and isinstance(layout, (PerBlockK, PerBlock2D)) and want != layout:
            raise RecipeError(f"{self!r} fixes its blocks as {want!r}; got layout {layout!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.name, **asdict(self)}


class _FP8Element:
    """``element`` / ``grad_element`` of the recipes with an ``fp8_format`` field ("HYBRID": E4M3 forward,
    E5M2 gradients, as TransformerEngine's Format.HYBRID)."""

    fp8_format: str

    @property
    def element(self) -> ElementFormat:
        return get_format("E4M3" if self.fp8_format == "HYBRID" else self.fp8_format)

    @property
    def grad_element(self) -> ElementFormat:
        return get_format("E5M2" if self.fp8_format == "HYBRID" else self.fp8_format)
