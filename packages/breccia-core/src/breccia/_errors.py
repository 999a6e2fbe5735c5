"""The error classes (DESIGN.md §7).

Every error breccia raises on purpose is a :class:`BrecciaError`, so callers can catch the whole family with one
``except``. The subclasses that describe a bad value also derive from the builtin the Python world expects
(``ValueError``, ``ImportError``), so code written against plain numpy keeps working.
"""

from __future__ import annotations

__all__ = [
    "BackendNotInstalledError",
    "BrecciaError",
    "DTypeError",
    "FormatError",
    "LayoutError",
    "NonFiniteError",
    "RecipeError",
    "ShapeError",
]


class BrecciaError(Exception):
    """Base class of every error breccia raises deliberately."""


class LayoutError(BrecciaError, ValueError):
    """Data and scale do not have the shape relation the layout requires, or the layout is malformed."""


class ShapeError(BrecciaError, ValueError):
    """An argument has a shape the operation cannot accept (e.g. mismatched contraction lengths)."""


class RecipeError(BrecciaError, ValueError):
    """A recipe is malformed, forbidden by its format, or does not fit the tensor or operation."""


class NonFiniteError(BrecciaError, ValueError):
    """The input holds NaN or Inf and the cast was asked to refuse it (``nonfinite="raise"``, the default)."""


class DTypeError(BrecciaError, TypeError):
    """An array has a dtype the operation cannot take (integer or complex input to ``cast``, wrong data dtype)."""


class FormatError(BrecciaError, ValueError):
    """A file, buffer or metadata record is malformed: wrong dtype, bad header, lying sizes."""


class BackendNotInstalledError(BrecciaError, ImportError):
    """An array of a framework arrived, but the breccia add-on for that framework is not installed."""
