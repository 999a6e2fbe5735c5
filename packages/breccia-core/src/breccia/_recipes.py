"""Recipes: declarative, frozen, hashable descriptions of *how* a tensor is quantized (DESIGN.md §3).

A recipe names the element format, the scale rule and the default scope; it holds no arrays and no code paths.
The math lives once in :mod:`breccia._math`. Every field is validated on construction, so a recipe that exists is
a recipe every backend can run; block sizes the hardware formats fix (MX 32, NVFP4 16) are enforced here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from ._errors import RecipeError
from ._formats import ElementFormat, get_format
from ._layouts import Layout, PerBlock2D, PerBlockK, PerChannel, PerTensor
from ._recipe_base import _FP8, _RANGES, _SCALE_DTYPES, Recipe, ScaleKind, _bool, _choice, _FP8Element, _int

__all__ = [
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
]


@dataclass(frozen=True)
class Float8CurrentScaling(_FP8Element, Recipe):
    """FP8 with one fp32 scale ``amax / fmax`` computed from the tensor itself (per tensor, or per row/channel
    with ``layout=PerChannel(axis)``). ``power_of_2_scales`` rounds the scale up to a power of two."""

    fp8_format: str = "E4M3"
    power_of_2_scales: bool = False
    amax_epsilon: float = 0.0
    name: ClassVar[str] = "Float8CurrentScaling"

    def __post_init__(self) -> None:
        _choice(self.name, "fp8_format", self.fp8_format, _FP8)
        _bool(self.name, "power_of_2_scales", self.power_of_2_scales)
        if not isinstance(self.amax_epsilon, (int, float)) or not 0.0 <= float(self.amax_epsilon) < float("inf"):
            raise RecipeError(f"{self.name} needs amax_epsilon to be a finite float >= 0; got {self.amax_epsilon!r}")

    def default_layout(self, axis: int = -1) -> Layout:
        return PerTensor()

    def allowed_layouts(self) -> tuple[type[Layout], ...]:
        return (PerTensor, PerChannel)


@dataclass(frozen=True)
class DelayedScaling(_FP8Element, Recipe):
    """TransformerEngine's delayed scaling: the scale comes from a history of past amaxes.

    The history is state the caller holds (:class:`breccia.AmaxHistory`), passed to ``cast(..., history=h)``,
    which returns the ScaledTensor and the updated history. Without a history the current amax is used.
    """

    fp8_format: str = "E4M3"
    amax_history_len: int = 16
    margin: int = 0
    amax_compute_algo: str = "max"
    name: ClassVar[str] = "DelayedScaling"

    def __post_init__(self) -> None:
        _choice(self.name, "fp8_format", self.fp8_format, _FP8)
        _int(self.name, "amax_history_len", self.amax_history_len)
        _int(self.name, "margin", self.margin, lo=0)
        _choice(self.name, "amax_compute_algo", self.amax_compute_algo, ("max", "most_recent"))

    def default_layout(self, axis: int = -1) -> Layout:
        return PerTensor()


@dataclass(frozen=True)
class Float8BlockScaling(_FP8Element, Recipe):
    """FP8 with an fp32 scale per ``block_m × block_k`` block: 1×128 activations, 128×128 weights (DeepSeek-V3).
    ``power_of_2_scales=True`` rounds each scale up to a power of two (DeepSeek-V3.1 ``ue8m0``)."""

    fp8_format: str = "E4M3"
    block_k: int = 128
    block_m: int = 1
    power_of_2_scales: bool = False
    name: ClassVar[str] = "Float8BlockScaling"

    def __post_init__(self) -> None:
        _choice(self.name, "fp8_format", self.fp8_format, _FP8)
        _int(self.name, "block_k", self.block_k)
        _int(self.name, "block_m", self.block_m)
        _bool(self.name, "power_of_2_scales", self.power_of_2_scales)

    def default_layout(self, axis: int = -1) -> Layout:
        if self.block_m == 1:
            return PerBlockK(self.block_k, axis)
        return PerBlock2D(self.block_m, self.block_k, axis if axis in (-1, -2) else -1)


@dataclass(frozen=True)
class _MXBase(Recipe):
    scale_kind: ClassVar[ScaleKind] = "e8m0"

    def _check_mx(self) -> None:
        if self.block_size != 32:  # type: ignore[attr-defined]
            raise RecipeError(
                f"{self.name} fixes block_size=32 (OCP MX v1.0); got block_size={self.block_size!r}"  # type: ignore[attr-defined]
            )
        _choice(self.name, "scale_rounding", self.scale_rounding, ("rceil", "floor"))  # type: ignore[attr-defined]

    def default_layout(self, axis: int = -1) -> Layout:
        return PerBlockK(32, axis)


@dataclass(frozen=True)
class MXFP8BlockScaling(_MXBase):
    """OCP MXFP8: FP8 elements, one E8M0 (power-of-two) scale per 32 along K.
    ``scale_rounding="rceil"`` (TE, cuBLAS, JAX, MLX) or ``"floor"`` (OCP v1.0 §6.3, torchao's default)."""

    fp8_format: str = "E4M3"
    block_size: int = 32
    scale_rounding: str = "rceil"
    name: ClassVar[str] = "MXFP8BlockScaling"

    def __post_init__(self) -> None:
        _choice(self.name, "fp8_format", self.fp8_format, ("E4M3", "E5M2"))
        self._check_mx()

    @property
    def element(self) -> ElementFormat:
        return get_format(self.fp8_format)


@dataclass(frozen=True)
class MXFP4BlockScaling(_MXBase):
    """OCP MXFP4: E2M1 elements packed two per byte, one E8M0 scale per 32 along K."""

    block_size: int = 32
    scale_rounding: str = "rceil"
    name: ClassVar[str] = "MXFP4BlockScaling"

    def __post_init__(self) -> None:
        self._check_mx()

    @property
    def element(self) -> ElementFormat:
        return get_format("E2M1")


@dataclass(frozen=True, init=False)
class MXFP6BlockScaling(_MXBase):
    """OCP MXFP6: E2M3 or E3M2 elements (one code per byte), one E8M0 scale per 32 along K."""

    element_format: str = "E2M3"
    block_size: int = 32
    scale_rounding: str = "rceil"
    name: ClassVar[str] = "MXFP6BlockScaling"

    def __init__(self, element: str = "E2M3", block_size: int = 32, scale_rounding: str = "rceil", **kw: Any) -> None:
        # DESIGN.md spells the argument ``element=``; the dataclass field is ``element_format`` because
        # ``element`` is the ElementFormat property every recipe has.
        element = kw.pop("element_format", element)
        if kw:
            raise RecipeError(f"{self.name} got unexpected arguments {sorted(kw)}")
        object.__setattr__(self, "element_format", element)
        object.__setattr__(self, "block_size", block_size)
        object.__setattr__(self, "scale_rounding", scale_rounding)
        _choice(self.name, "element", element, ("E2M3", "E3M2"))
        self._check_mx()

    @property
    def element(self) -> ElementFormat:
        return get_format(self.element_format)


@dataclass(frozen=True)
class NVFP4BlockScaling(Recipe):
    """NVIDIA NVFP4: E2M1 elements, an E4M3 scale per 16 (1×16, or 16×16 with ``block_m=16``) and, by default,
    a second-level fp32 per-tensor ``global_scale = amax / (448·6)``; ``per_tensor_scale=False`` is the
    one-level form (MLX's default ``mx.quantize(mode="nvfp4")``).

    Two options reproduce torchao's ``nvfp4_quantize`` byte for byte: ``block_scale_min=2**-6`` (torchao clamps the
    pre-rounding block scale to E4M3's smallest normal) and ``data_scaling="reciprocal"`` (torchao multiplies the
    data by ``(1/global)/block_scale`` instead of dividing by their product) — see :data:`NVFP4_TORCHAO`."""

    fp4_format: str = "E2M1"
    block_size: int = 16
    scale_format: str = "E4M3"
    block_m: int = 1
    per_tensor_scale: bool = True
    block_scale_min: float = 0.0
    data_scaling: str = "divide"
    name: ClassVar[str] = "NVFP4BlockScaling"
    scale_kind: ClassVar[ScaleKind] = "e4m3"

    def __post_init__(self) -> None:
        _choice(self.name, "fp4_format", self.fp4_format, ("E2M1",))
        if not isinstance(self.block_scale_min, (int, float)) or not 0.0 <= float(self.block_scale_min) <= 448.0:
            raise RecipeError(f"{self.name} needs block_scale_min in [0, 448]; got {self.block_scale_min!r}")
        _choice(self.name, "data_scaling", self.data_scaling, ("divide", "reciprocal"))
        _choice(self.name, "scale_format", self.scale_format, ("E4M3",))
        if self.block_size != 16:
            raise RecipeError(f"{self.name} fixes block_size=16 (NVFP4); got block_size={self.block_size!r}")
        _choice(self.name, "block_m", self.block_m, (1, 16))
        _bool(self.name, "per_tensor_scale", self.per_tensor_scale)

    @property
    def element(self) -> ElementFormat:
        return get_format("E2M1")

    @property
    def has_global_scale(self) -> bool:
        return self.per_tensor_scale

    def default_layout(self, axis: int = -1) -> Layout:
        if self.block_m == 1:
            return PerBlockK(16, axis)
        return PerBlock2D(16, 16, axis if axis in (-1, -2) else -1)


@dataclass(frozen=True)
class _IntBase(Recipe):
    if TYPE_CHECKING:  # the fields INT4Scaling and INT8Scaling both declare (annotations only, not fields here)
        signed: bool
        scale_dtype: str
        symmetric: bool
        symmetric_range: str
        zero_point_domain: str

    def _scale_kind(self) -> ScaleKind:
        return self.scale_dtype  # type: ignore[return-value]

    @property
    def has_zero_point(self) -> bool:
        return not self.symmetric

    @property
    def float_zero_point(self) -> bool:
        """True for ``zero_point_domain="float"``: the zero point is a float offset of the scale dtype (MLX affine)."""
        return self.zero_point_domain == "float"

    def _check_int(self) -> None:
        """The checks INT4 and INT8 share (symmetry, signedness, the zero-point domain)."""
        who = self.name
        _bool(who, "signed", self.signed)
        _choice(who, "scale_dtype", self.scale_dtype, _SCALE_DTYPES)
        _bool(who, "symmetric", self.symmetric)
        _choice(who, "symmetric_range", self.symmetric_range, _RANGES)
        _choice(who, "zero_point_domain", self.zero_point_domain, ("int", "float"))
        if self.symmetric and not self.signed:
            raise RecipeError(f"{who}(symmetric=True) needs signed=True; unsigned codes need a zero point")
        if self.float_zero_point and (self.symmetric or self.signed):
            raise RecipeError(
                f"{who} got zero_point_domain='float' with symmetric={self.symmetric!r}, signed={self.signed!r}; "
                "the float domain needs symmetric=False and signed=False (unsigned codes plus a float offset)"
            )


@dataclass(frozen=True)
class INT4Scaling(_IntBase):
    """INT4 with one scale per ``group_size`` elements along K (GPTQ/AWQ family); ``group_size=-1`` is one group
    per row. Symmetric: ``s = amax / 7`` (``symmetric_range="half_range"``: ``amax / 7.5`` as torchao and
    compressed-tensors do); ``symmetric=False`` adds an integer ``zero_point``:
    ``x ≈ (q − zp) · s``. Codes are packed two per byte, element 2i in the low nibble.

    ``zero_point_domain="float"`` (with ``symmetric=False, signed=False``) is MLX's affine form instead: the
    zero point ``z`` is a float array of ``scale_dtype`` (the scale's shape) and dequantize computes, in that dtype
    ``T``, ``x = round_T(round_T(q·s) + z)`` — for fp32 plain ``q·s + z`` — which is what ``mx.dequantize`` does, so
    MLX's ``mx.quantize`` output converts losslessly. cast follows ``mx.quantize``'s rule (docs/recipes.md); its
    scales may be negative."""

    group_size: int = 128
    signed: bool = True
    scale_dtype: str = "fp16"
    symmetric: bool = True
    symmetric_range: str = "qmax"
    zero_point_domain: str = "int"
    name: ClassVar[str] = "INT4Scaling"

    def __post_init__(self) -> None:
        if self.group_size != -1:
            _int(self.name, "group_size", self.group_size)
        self._check_int()

    @property
    def element(self) -> ElementFormat:
        return get_format("INT4" if self.signed else "UINT4")

    def default_layout(self, axis: int = -1) -> Layout:
        return PerChannel(axis) if self.group_size == -1 else PerBlockK(self.group_size, axis)

    def allowed_layouts(self) -> tuple[type[Layout], ...]:
        return (PerChannel, PerBlockK)


@dataclass(frozen=True)
class INT8Scaling(_IntBase):
    """INT8 (W8A8): ``granularity`` ``"channel"`` (per row / per token along K), ``"tensor"`` or ``"group"``.
    Zero points and ``zero_point_domain`` as :class:`INT4Scaling` (``"float"``: MLX's 8-bit affine form)."""

    granularity: str = "channel"
    group_size: int = 128
    signed: bool = True
    scale_dtype: str = "fp32"
    symmetric: bool = True
    symmetric_range: str = "qmax"
    zero_point_domain: str = "int"
    name: ClassVar[str] = "INT8Scaling"

    def __post_init__(self) -> None:
        _choice(self.name, "granularity", self.granularity, ("channel", "tensor", "group"))
        _int(self.name, "group_size", self.group_size)
        self._check_int()

    @property
    def element(self) -> ElementFormat:
        return get_format("INT8" if self.signed else "UINT8")

    def default_layout(self, axis: int = -1) -> Layout:
        if self.granularity == "tensor":
            return PerTensor()
        if self.granularity == "channel":
            return PerChannel(axis)
        return PerBlockK(self.group_size, axis)


#: NVFP4 with torchao 0.18's rounding rules (``torchao.prototype.mx_formats.nvfp4_tensor.nvfp4_quantize``).
NVFP4_TORCHAO = NVFP4BlockScaling(block_scale_min=2.0**-6, data_scaling="reciprocal")


def scale_kind(recipe: Recipe) -> ScaleKind:
    """How a recipe's per-block scale is stored: fp32/fp16/bf16 floats, E8M0 bytes or E4M3 bytes."""
    if isinstance(recipe, _IntBase):
        return recipe._scale_kind()
    return recipe.scale_kind


_RECIPES: dict[str, type[Recipe]] = {
    c.name: c
    for c in (
        Float8CurrentScaling,
        DelayedScaling,
        Float8BlockScaling,
        MXFP8BlockScaling,
        MXFP4BlockScaling,
        MXFP6BlockScaling,
        NVFP4BlockScaling,
        INT4Scaling,
        INT8Scaling,
    )
}


def recipe_from_dict(d: dict[str, Any]) -> Recipe:
    """Rebuild a recipe from :meth:`Recipe.to_dict` output; raises :class:`RecipeError` on anything else."""
    if not isinstance(d, dict):
        raise RecipeError(f"a recipe record must be a dict; got {type(d).__name__}")
    params = dict(d)
    name = params.pop("recipe", None)
    cls = _RECIPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise RecipeError(f"unknown recipe {name!r}; expected one of {sorted(_RECIPES)}")
    known = {f.name for f in fields(cls)}
    extra = set(params) - known
    if extra:
        raise RecipeError(f"recipe {name} has no field(s) {sorted(extra)}")
    if cls is MXFP6BlockScaling and "element_format" in params:
        params["element"] = params.pop("element_format")
    return cls(**params)
