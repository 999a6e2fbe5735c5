"""Shared helpers for the bridge tests: byte-level comparison of ScaledTensors across frameworks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import breccia
from breccia._testing import RECIPES, recipe_id
from breccia.bridges._arrays import host_numpy

PARTS = ("data", "scale", "global_scale", "zero_point")


def assert_same_bits(a: breccia.ScaledTensor, b: breccia.ScaledTensor) -> None:
    """Same recipe, layout, shape and the same bytes in every buffer (frameworks may differ)."""
    assert a.recipe == b.recipe, (a.recipe, b.recipe)
    assert a.layout == b.layout, (a.layout, b.layout)
    assert a.shape == b.shape, (a.shape, b.shape)
    for part in PARTS:
        x, y = getattr(a, part), getattr(b, part)
        assert (x is None) == (y is None), part
        if x is None:
            continue
        hx, hy = host_numpy(x), host_numpy(y)
        assert hx.shape == hy.shape, (part, hx.shape, hy.shape)
        assert hx.tobytes() == hy.tobytes(), f"{part} bytes differ"


def cast_np(recipe: Any, shape: tuple[int, ...] = (5, 70), seed: int = 0) -> breccia.ScaledTensor:
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 3
    return breccia.cast(x, recipe)


def framework_available(name: str) -> bool:
    try:
        __import__({"jax": "jax.numpy", "mlx": "mlx.core"}.get(name, name))
    except ImportError:
        return False
    return True


FRAMEWORKS = [
    pytest.param(f, marks=pytest.mark.skipif(not framework_available(f), reason=f"{f} not installed"))
    for f in ("numpy", "torch", "jax", "mlx")
]
ALL_RECIPES = [pytest.param(r, id=recipe_id(r)) for r in RECIPES]


# compressed-tensors tests: the weight name they write and awkward inputs (row magnitudes e^±2, 2% outliers)
CT_WEIGHT = "m.proj.weight"


def ct_x(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * np.exp(rng.uniform(-2, 2, (*shape[:-1], 1)))
    return (x + (rng.uniform(size=shape) < 0.02) * 20 * rng.standard_normal(shape)).astype(np.float32)


def ct_cast(recipe: Any, layout: Any, shape: tuple[int, int], seed: int = 0) -> breccia.ScaledTensor:
    return breccia.cast(ct_x(shape, seed), recipe, layout=layout)
