"""Layouts: the shape relation between a tensor's elements and its scales (DESIGN.md §4).

A layout answers one question — which elements share a scale — as a *block shape*: one block size per axis.
``PerTensor`` is one block the size of the tensor, ``PerChannel(axis)`` one block per slice along ``axis``,
``PerBlockK`` 1-D blocks along the contraction axis, ``PerBlock2D`` tiles over the last two axes. Every kernel
(reference, torch, jax, mlx, triton) consumes layouts through :meth:`Layout.block_shape`, so a new layout is one
new class, not a new code path per backend. Scales are stored compact and row-major: ``ceil(n_i / b_i)`` per axis;
a partial last block has its own scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from ._errors import LayoutError

__all__ = ["Layout", "PerBlock2D", "PerBlockK", "PerChannel", "PerTensor", "layout_from_dict"]


def _norm_axis(axis: int, ndim: int, who: object) -> int:
    # ``who`` is the layout itself, formatted only on error (repr on the hot path would also break tracers)
    if not -ndim <= axis < ndim:
        raise LayoutError(f"{who!r} has axis={axis}, out of range for a tensor with {ndim} dimension(s)")
    return axis % ndim


def _check_block(value: object, name: str, who: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LayoutError(f"{who} needs {name} to be a positive int; got {value!r}")


@dataclass(frozen=True)
class Layout:
    """Base class. Subclasses are frozen, hashable value objects."""

    kind: ClassVar[str] = "Layout"

    def block_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Block size per axis for a tensor of logical ``shape``, each clipped to ``[1, n_i]``."""
        raise NotImplementedError

    def grid_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Blocks per axis, full rank (``ceil(n_i / b_i)``); ``scale_shape`` is this, squeezed where a layout says."""
        return tuple(-(-n // b) for n, b in zip(shape, self.block_shape(shape)))

    def scale_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the compact scale array for a tensor of logical ``shape``."""
        return self.grid_shape(shape)

    @property
    def blocked_axis(self) -> int | None:
        """The contraction axis the layout blocks along (``None`` for per-tensor)."""
        return None

    def validate_shape(self, shape: tuple[int, ...]) -> None:
        """Raise :class:`LayoutError` if the layout cannot apply to a tensor of ``shape``."""
        self.block_shape(shape)

    def check_scale(self, shape: tuple[int, ...], scale_shape: tuple[int, ...], what: str = "scale") -> None:
        """Raise :class:`LayoutError` naming the mismatch if ``scale_shape`` is wrong for ``shape``."""
        want = self.scale_shape(shape)
        if tuple(scale_shape) != want:
            raise LayoutError(
                f"{self!r} needs {what}.shape == {want} for data of shape {tuple(shape)}; got {tuple(scale_shape)}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"layout": self.kind, **asdict(self)}


@dataclass(frozen=True)
class PerTensor(Layout):
    """One scale for the whole tensor; the scale is a 0-d array."""

    kind: ClassVar[str] = "PerTensor"

    def block_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(max(n, 1) for n in shape)

    def scale_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return ()


@dataclass(frozen=True)
class PerChannel(Layout):
    """One scale per slice along ``axis`` (the reduced, contraction axis): rowwise / per-token / per-channel.

    The scale keeps the tensor's rank with ``axis`` reduced to 1, so it broadcasts against the data — the shape
    ``torch._scaled_mm`` wants for rowwise scaling (``(M, 1)`` for ``a``, ``(1, N)`` for ``b``).
    """

    axis: int = -1
    kind: ClassVar[str] = "PerChannel"

    def __post_init__(self) -> None:
        if isinstance(self.axis, bool) or not isinstance(self.axis, int):
            raise LayoutError(f"PerChannel needs axis to be an int; got {self.axis!r}")

    @property
    def blocked_axis(self) -> int:
        return self.axis

    def block_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        ax = _norm_axis(self.axis, len(shape), self)
        return tuple(max(n, 1) if i == ax else 1 for i, n in enumerate(shape))

    def scale_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        ax = _norm_axis(self.axis, len(shape), self)
        return tuple(1 if i == ax else n for i, n in enumerate(shape))


@dataclass(frozen=True)
class PerBlockK(Layout):
    """1-D blocks of ``block_k`` elements along ``axis``: FP8 1×128, MX 1×32, NVFP4 1×16, INT4 groups."""

    block_k: int = 128
    axis: int = -1
    kind: ClassVar[str] = "PerBlockK"

    def __post_init__(self) -> None:
        _check_block(self.block_k, "block_k", "PerBlockK")
        if isinstance(self.axis, bool) or not isinstance(self.axis, int):
            raise LayoutError(f"PerBlockK needs axis to be an int; got {self.axis!r}")

    @property
    def blocked_axis(self) -> int:
        return self.axis

    def block_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        ax = _norm_axis(self.axis, len(shape), self)
        return tuple(max(min(self.block_k, n), 1) if i == ax else 1 for i, n in enumerate(shape))


@dataclass(frozen=True)
class PerBlock2D(Layout):
    """Tiles of ``block_m × block_k`` over the last two axes (DeepSeek-V3 128×128 weights, NVFP4 16×16).

    ``axis`` (−1 or −2) names which of the two is the contraction axis: ``block_k`` runs along it and
    ``block_m`` along the other. Leading axes are batch axes with one tile grid each.
    """

    block_m: int = 128
    block_k: int = 128
    axis: int = -1
    kind: ClassVar[str] = "PerBlock2D"

    def __post_init__(self) -> None:
        _check_block(self.block_m, "block_m", "PerBlock2D")
        _check_block(self.block_k, "block_k", "PerBlock2D")
        if self.axis not in (-1, -2):
            raise LayoutError(f"PerBlock2D needs axis to be -1 or -2 (one of the last two axes); got {self.axis!r}")

    @property
    def blocked_axis(self) -> int:
        return self.axis

    def block_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        nd = len(shape)
        if nd < 2:
            raise LayoutError(f"{self!r} needs a tensor with at least 2 dimensions; got shape {tuple(shape)}")
        rows, cols = (self.block_m, self.block_k) if self.axis == -1 else (self.block_k, self.block_m)
        out = [1] * (nd - 2) + [rows, cols]
        return tuple(max(min(b, n), 1) for b, n in zip(out, shape))


_LAYOUTS: dict[str, type[Layout]] = {c.kind: c for c in (PerTensor, PerChannel, PerBlockK, PerBlock2D)}


def layout_from_dict(d: dict[str, Any]) -> Layout:
    """Rebuild a layout from :meth:`Layout.to_dict` output; raises :class:`LayoutError` on anything else."""
    if not isinstance(d, dict):
        raise LayoutError(f"a layout record must be a dict; got {type(d).__name__}")
    fields = dict(d)
    kind = fields.pop("layout", None)
    cls = _LAYOUTS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise LayoutError(f"unknown layout {kind!r}; expected one of {sorted(_LAYOUTS)}")
    try:
        return cls(**fields)
    except TypeError as e:
        raise LayoutError(f"bad fields for layout {kind}: {fields!r} ({e})") from None
