"""``--device cpu|cuda`` selects where the breccia-torch suite runs (CI: cpu; the H100 run: cuda)."""

from __future__ import annotations

import pytest
import torch


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", choices=["cpu", "cuda"], help="torch device for the tests")


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> torch.device:
    name = request.config.getoption("--device")
    if name == "cuda" and not torch.cuda.is_available():
        pytest.fail("--device cuda given but torch.cuda.is_available() is False")
    return torch.device(name)
