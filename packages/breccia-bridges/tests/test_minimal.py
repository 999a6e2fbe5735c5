"""breccia-bridges with nothing but core and safetensors: importing it loads no framework, and a bridge whose
library is missing says which pip extra provides it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import cast_np

import breccia
from breccia.bridges import load_safetensors, save_safetensors

HEAVY = ["torch", "jax", "mlx", "torchao", "compressed_tensors", "transformer_engine", "triton"]


def test_import_loads_no_framework() -> None:
    code = (
        "import sys, breccia.bridges\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "assert len(breccia.bridges.__all__) >= 10\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(("framework", "module"), [("torch", "torch"), ("jax", "jax"), ("mlx", "mlx")])
def test_missing_framework_names_the_extra(tmp_path: Path, framework: str, module: str) -> None:
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed in this session")
    save_safetensors({"w": cast_np(breccia.Float8CurrentScaling())}, tmp_path / "m.safetensors")
    with pytest.raises(breccia.BackendNotInstalledError, match=rf"pip install 'breccia-bridges\[{framework}\]'"):
        load_safetensors(tmp_path / "m.safetensors", framework=framework)


def test_numpy_needs_nothing_else(tmp_path: Path) -> None:
    st = cast_np(breccia.NVFP4BlockScaling(), (4, 33))
    save_safetensors({"w": st, "b": np.zeros(3, np.float32)}, tmp_path / "m.safetensors")
    out = load_safetensors(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(breccia.dequantize(out["w"]), breccia.dequantize(st))
