"""torchao 0.18 bridge: what it refuses, and how. Recipes torchao has no tensor for, MLX-affine float zero points,
objects that are not torchao tensors, bad arguments and a missing torchao each raise a breccia error that names the
problem; importing the bridge imports no framework. The conversions themselves are in ``test_torchao_bridge.py``."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import breccia
from breccia.bridges import from_torchao, to_torchao

torchao = pytest.importorskip("torchao")
torch = pytest.importorskip("torch")

from test_torchao_bridge import E4M3, weights  # noqa: E402  (the shared input generator)
from torchao.prototype.mx_formats.mx_tensor import MXTensor  # noqa: E402
from torchao.quantization.granularity import PerRow  # noqa: E402


@pytest.mark.parametrize(
    "recipe",
    [breccia.INT8Scaling(), breccia.NVFP4BlockScaling(block_m=16),
     breccia.INT4Scaling(group_size=32, signed=False, symmetric=False)],
    ids=["int8", "nvfp4-16x16", "uint4"],
)  # fmt: skip
def test_unsupported_recipe_names_it_and_the_supported_ones(recipe: Any) -> None:
    st = breccia.cast(weights((32, 64), dtype=torch.float32), recipe)
    with pytest.raises(breccia.RecipeError) as e:
        to_torchao(st)
    assert (
        recipe.name in str(e.value) and "Float8CurrentScaling" in str(e.value) and "MXFP4BlockScaling" in str(e.value)
    )


@pytest.mark.parametrize("bits", [4, 8])
def test_float_zero_point_is_refused(bits: int) -> None:
    """MLX-affine recipes (float zero points, unsigned codes) have no torchao tensor: refused, naming the field."""
    kw: dict[str, Any] = dict(signed=False, symmetric=False, zero_point_domain="float", scale_dtype="bf16")
    recipe = (
        breccia.INT4Scaling(group_size=32, **kw)
        if bits == 4
        else breccia.INT8Scaling(granularity="group", group_size=32, **kw)
    )
    st = breccia.cast(weights((32, 64), dtype=torch.float32), recipe)
    with pytest.raises(breccia.RecipeError, match="zero_point_domain='float'") as e:
        to_torchao(st)
    assert "Float8CurrentScaling" in str(e.value)
    int4 = to_torchao(breccia.cast(weights((32, 64), dtype=torch.bfloat16), breccia.INT4Scaling(group_size=32)))
    with pytest.raises(breccia.RecipeError, match="does not describe the bits"):
        from_torchao(int4, recipe=recipe)


@pytest.mark.parametrize("kind", ["torch", "numpy", "str", "none", "torchao-int8"])
def test_from_torchao_rejects_foreign_objects(kind: str) -> None:
    from torchao.quantization import Int8Tensor

    obj = {"torch": torch.zeros(4, 4), "numpy": np.zeros((4, 4)), "str": "weights", "none": None}.get(kind)
    if kind == "torchao-int8":
        obj = Int8Tensor.from_hp(weights((4, 64), dtype=torch.float32), granularity=PerRow())
    with pytest.raises(breccia.DTypeError, match="Float8Tensor, Int4Tensor, MXTensor or NVFP4Tensor"):
        from_torchao(obj)


def test_bad_arguments() -> None:
    t = MXTensor.to_mx(weights((4, 64)), E4M3)
    with pytest.raises(breccia.RecipeError, match="does not describe the bits"):
        from_torchao(t, recipe=breccia.MXFP8BlockScaling("E5M2"))
    with pytest.raises(breccia.RecipeError, match="breccia recipe"):
        from_torchao(t, recipe="MXFP8")  # type: ignore[arg-type]
    with pytest.raises(breccia.DTypeError, match="ScaledTensor"):
        to_torchao(t)
    with pytest.raises(breccia.DTypeError, match="like= must be a torchao MXTensor"):
        to_torchao(from_torchao(t), like=torch.zeros(1))


def test_torchao_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    st = breccia.cast(weights((4, 64), dtype=torch.float32), breccia.MXFP8BlockScaling())
    monkeypatch.setitem(sys.modules, "torchao", None)
    for call in (lambda: from_torchao(torch.zeros(2)), lambda: to_torchao(st)):
        with pytest.raises(breccia.BackendNotInstalledError, match=r"pip install 'breccia-bridges\[torchao\]'"):
            call()


def test_importing_the_bridge_imports_no_framework() -> None:
    code = "import sys, breccia.bridges._torchao; print(sorted({'torch', 'torchao'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
