"""Every recipe end to end through the public API, as a user meets it (numpy; backends join as they land)."""

from __future__ import annotations

import numpy as np
import pytest

import breccia
from breccia._demo import DEMO_RECIPES, cosine, run_demo

RECIPES = [r for _, r in DEMO_RECIPES]


@pytest.mark.parametrize("recipe", RECIPES, ids=[label for label, _ in DEMO_RECIPES])
def test_linear_layer_roundtrip(recipe: breccia.Recipe) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 512)).astype(np.float32)
    w = (rng.standard_normal((512, 256)) * 0.05).astype(np.float32)
    axis_w = -2 if isinstance(recipe.default_layout(), breccia.PerBlock2D) else 0
    y = breccia.matmul(breccia.cast(x, recipe), breccia.cast(w, recipe, axis=axis_w))
    ref = x.astype(np.float64) @ w.astype(np.float64)
    fp4 = recipe.element.bits == 4
    assert cosine(ref, y) > (0.98 if fp4 else 0.995)


def test_demo_meets_matmul_targets() -> None:
    rows = {r.label: r for r in run_demo()}
    for label, row in rows.items():
        # FP8 targets (issue 2): >= 0.999. MXFP8 "floor" (OCP v1.0) saturates the top of each block at fmax and
        # sits just below; that is the rule's known cost, and why rceil is the default.
        if label.startswith("FP8 E4M3") or label == "MXFP8 E4M3 (rceil)":
            assert row.matmul_cosine >= 0.999, label
        if label.startswith("NVFP4"):
            assert row.matmul_cosine >= 0.98, label
