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

from breccia._testing import RECIPES, recipe_id  # noqa: E402  (re-exported for the tests)


@pytest.fixture(params=RECIPES, ids=recipe_id)
def recipe(request: pytest.FixtureRequest) -> breccia.Recipe:
    return request.param  # type: ignore[no-any-return]
