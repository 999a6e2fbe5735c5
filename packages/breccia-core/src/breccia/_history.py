"""Amax history for :class:`~breccia.DelayedScaling` — state that lives outside the recipe (DESIGN.md §3).

TransformerEngine's delayed scaling quantizes step ``t`` with a scale derived from the amaxes of earlier steps,
so no synchronous reduction sits on the critical path. The history is an immutable value: ``cast(x, recipe,
history=h)`` returns the ScaledTensor *and* the new history (``h`` with this step's amax pushed), which suits
functional frameworks (JAX) and imperative loops alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._errors import RecipeError

__all__ = ["AmaxHistory"]


@dataclass(frozen=True, eq=False)
class AmaxHistory:
    """A rolling window of past amaxes, newest last. ``amaxes`` is a 1-D fp32 array (numpy by default)."""

    amaxes: Any

    @classmethod
    def for_recipe(cls, recipe: Any) -> AmaxHistory:
        """An all-zero history of ``recipe.amax_history_len`` entries (the first step then uses scale 1)."""
        n = getattr(recipe, "amax_history_len", None)
        if not isinstance(n, int) or n < 1:
            raise RecipeError(f"AmaxHistory.for_recipe needs a DelayedScaling recipe; got {recipe!r}")
        return cls(np.zeros(n, np.float32))

    def scale_amax(self, recipe: Any) -> Any:
        """The amax the next scale is computed from: the window's max, or its newest entry."""
        a = np.asarray(self.amaxes, dtype=np.float32)
        if a.ndim != 1 or a.size == 0:
            raise RecipeError(f"AmaxHistory needs a non-empty 1-D array; got shape {a.shape}")
        if getattr(recipe, "amax_compute_algo", "max") == "most_recent":
            return np.asarray(a[-1], np.float32)
        return np.asarray(a.max(), np.float32)

    def push(self, amax: Any) -> AmaxHistory:
        """A new history with ``amax`` appended and the oldest entry dropped."""
        a = np.asarray(self.amaxes, dtype=np.float32)
        return AmaxHistory(np.concatenate([a[1:], np.asarray(amax, np.float32).reshape(1)]))

    def __repr__(self) -> str:
        return f"AmaxHistory(len={len(self.amaxes)}, newest={float(np.asarray(self.amaxes)[-1])!r})"
