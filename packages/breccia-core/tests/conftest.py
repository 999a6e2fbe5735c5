"""Shared fixtures: the recipe catalogue every property test runs over."""

from __future__ import annotations

import os
import sys

import pytest
from hypothesis import HealthCheck, settings

import breccia

sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

RECIPES = [
    breccia.Float8CurrentScaling(),
    breccia.Float8CurrentScaling(fp8_format="E5M2"),
    breccia.Float8CurrentScaling(power_of_2_scales=True),
    breccia.Float8CurrentScaling(amax_epsilon=1e-3),
    breccia.DelayedScaling(),
    breccia.Float8BlockScaling(),
    breccia.Float8BlockScaling(block_k=32, fp8_format="E5M2"),
    breccia.Float8BlockScaling(block_m=128),
    breccia.Float8BlockScaling(block_k=16, block_m=8, power_of_2_scales=True),
    breccia.MXFP8BlockScaling(),
    breccia.MXFP8BlockScaling(fp8_format="E5M2", scale_rounding="floor"),
    breccia.MXFP8BlockScaling(scale_rounding="floor"),
    breccia.MXFP4BlockScaling(),
    breccia.MXFP4BlockScaling(scale_rounding="floor"),
    breccia.MXFP6BlockScaling(element="E2M3"),
    breccia.MXFP6BlockScaling(element="E3M2", scale_rounding="floor"),
    breccia.NVFP4BlockScaling(),
    breccia.NVFP4BlockScaling(block_m=16),
    breccia.NVFP4BlockScaling(per_tensor_scale=False),
    breccia.INT4Scaling(),
    breccia.INT4Scaling(group_size=32, symmetric_range="half_range", scale_dtype="bf16"),
    breccia.INT4Scaling(group_size=16, symmetric=False, signed=False, scale_dtype="fp32"),
    breccia.INT4Scaling(group_size=-1, symmetric=False),
    breccia.INT8Scaling(),
    breccia.INT8Scaling(granularity="tensor"),
    breccia.INT8Scaling(granularity="group", group_size=64, symmetric=False, signed=False),
]


def recipe_id(r: breccia.Recipe) -> str:
    return repr(r).replace(" ", "")


@pytest.fixture(params=RECIPES, ids=recipe_id)
def recipe(request: pytest.FixtureRequest) -> breccia.Recipe:
    return request.param  # type: ignore[no-any-return]
