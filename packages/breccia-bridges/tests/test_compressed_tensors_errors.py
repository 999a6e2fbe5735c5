"""compressed-tensors bridge: what it refuses (recipes the format cannot hold, bad arguments) and hostile checkpoint
directories (bad config.json, bad tensors) — each a breccia error naming the module, field or tensor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import CT_WEIGHT as W
from conftest import ct_cast as cast
from conftest import ct_x as make_x

import breccia
from breccia import (
    Float8CurrentScaling,
    INT4Scaling,
    INT8Scaling,
    MXFP4BlockScaling,
    MXFP6BlockScaling,
    MXFP8BlockScaling,
    NVFP4BlockScaling,
)
from breccia.bridges import load_compressed_tensors, save_compressed_tensors

torch = pytest.importorskip("torch")  # the tests edit shards with safetensors.torch
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402


@pytest.mark.parametrize(
    ("recipe", "layout", "shape", "match"),
    [
        (Float8CurrentScaling(fp8_format="E5M2"), None, (8, 32), "E5M2"),
        (breccia.DelayedScaling(), None, (8, 32), "DelayedScaling"),
        (NVFP4BlockScaling(block_m=16), None, (16, 32), "block_m=16"),
        (MXFP6BlockScaling("E3M2"), None, (8, 32), "E3M2"),
        (INT4Scaling(group_size=16, symmetric=False, signed=False), None, (8, 32), "signed=False"),
        (INT8Scaling(granularity="tensor"), None, (8, 32), "tensor"),
        (
            INT4Scaling(group_size=16, symmetric=False, signed=False, zero_point_domain="float"),
            None,
            (8, 32),
            "zero point is a float offset",
        ),
        (
            INT8Scaling(granularity="group", group_size=16, symmetric=False, signed=False, zero_point_domain="float"),
            None,
            (8, 32),
            "compressed-tensors stores integer zero points",
        ),
        (Float8CurrentScaling(), None, (2, 8, 32), r"\(2, 8, 32\)"),
        (INT4Scaling(group_size=32), breccia.PerBlockK(32, axis=0), (64, 8), "axis=0"),
        (INT4Scaling(group_size=32), None, (8, 48), "divisible by the group size 32"),
        (NVFP4BlockScaling(), None, (8, 40), "divisible by the group size 16"),
    ],
)
def test_unsupported_recipes_are_refused_listing_what_is(recipe: Any, layout: Any, shape: Any, match: str,
                                                         tmp_path: Path):  # fmt: skip
    st = breccia.cast(make_x(shape), recipe, layout=layout)
    with pytest.raises(breccia.RecipeError, match=match) as e:
        save_compressed_tensors({W: st}, tmp_path)
    assert "compressed-tensors holds: Float8CurrentScaling(E4M3)" in str(e.value)
    assert not (tmp_path / "config.json").exists()


def test_save_argument_errors(tmp_path: Path):
    st = cast(INT8Scaling(), None, (4, 8))
    with pytest.raises(breccia.FormatError, match=r"ending in '\.weight'"):
        save_compressed_tensors({"m.proj": st}, tmp_path)
    with pytest.raises(breccia.FormatError, match="quantization_config"):
        save_compressed_tensors({W: st}, tmp_path, extra_config={"quantization_config": {}})
    with pytest.raises(breccia.FormatError, match="written twice"):
        save_compressed_tensors({W: st, "m.proj.weight_scale": np.ones(4, np.float32)}, tmp_path)
    with pytest.raises(breccia.FormatError, match="expected an array"):
        save_compressed_tensors({"x": [1, 2]}, tmp_path)


# ------------------------------------------------------------------------------------------------ 4. hostile files
@pytest.fixture
def int4_dir(tmp_path: Path) -> Path:
    save_compressed_tensors({W: cast(INT4Scaling(group_size=-1, symmetric=False), None, (37, 131))}, tmp_path)
    return tmp_path


def edit_config(root: Path, fn: Any) -> None:
    cfg = json.loads((root / "config.json").read_text())
    fn(cfg["quantization_config"])
    (root / "config.json").write_text(json.dumps(cfg))


def edit_tensors(root: Path, fn: Any) -> None:
    tensors = load_file(str(root / "model.safetensors"))
    fn(tensors)
    save_file(tensors, str(root / "model.safetensors"))


def test_config_json_not_json(int4_dir: Path):
    (int4_dir / "config.json").write_text("{not json")
    with pytest.raises(breccia.FormatError, match=r"config\.json: not valid JSON"):
        load_compressed_tensors(int4_dir)


def test_config_json_missing_or_without_quantization_config(int4_dir: Path):
    (int4_dir / "config.json").write_text(json.dumps({"architectures": ["X"]}))
    with pytest.raises(breccia.FormatError, match="needs a 'quantization_config'"):
        load_compressed_tensors(int4_dir)
    (int4_dir / "config.json").unlink()
    with pytest.raises(breccia.FormatError, match="no such file"):
        load_compressed_tensors(int4_dir)


def first_weights(q: dict[str, Any]) -> dict[str, Any]:
    return next(iter(q["config_groups"].values()))["weights"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda q: first_weights(q).pop("num_bits"), r"weights \(module 'm\.proj'\)\.num_bits is missing"),
        (lambda q: first_weights(q).update(type="posit"), r"module 'm\.proj'.*type must be 'int' or 'float'"),
        (lambda q: first_weights(q).update(num_bits="4"), r"num_bits must be an int; got '4'"),
        (lambda q: first_weights(q).update(dynamic=True), "dynamic false"),
        (lambda q: first_weights(q).update(strategy="token"), "strategy 'token'"),
        (lambda q: first_weights(q).update(num_bits=3), "int num_bits=3 .* have no breccia recipe; supported"),
        (lambda q: next(iter(q["config_groups"].values())).update(format="marlin-24"), "format 'marlin-24'"),
        (lambda q: q.update(quant_method="gptq"), "quant_method is 'gptq'"),
        (lambda q: q.update(config_groups=[]), "needs 'config_groups'"),
        (lambda q: q["config_groups"].update(other=q["config_groups"]["group_0"] | {"targets": ["Linear"]})
         or q["config_groups"]["group_0"].update(targets=["Linear"]), r"2 groups target classes"),
    ],
)  # fmt: skip
def test_hostile_quantization_config(int4_dir: Path, edit: Any, match: str):
    edit_config(int4_dir, edit)
    with pytest.raises(breccia.FormatError, match=match):
        load_compressed_tensors(int4_dir)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda t: t.update({"m.proj.weight_shape": torch.tensor([37, 200])}), r"m\.proj\.weight_packed has shape"),
        (lambda t: t.update({"m.proj.weight_shape": torch.tensor([36, 131])}), r"m\.proj\.weight_shape is \[36, 131\]"),
        (lambda t: t.update({"m.proj.weight_shape": torch.tensor([37, 131, 1])}), r"m\.proj\.weight_shape"),
        (lambda t: t.pop("m.proj.weight_packed"), r"m\.proj\.weight_packed is missing"),
        (lambda t: t.pop("m.proj.weight_zero_point"), r"m\.proj\.weight_zero_point is missing"),
        (lambda t: t.update({"m.proj.weight_packed": t["m.proj.weight_packed"].view(torch.float32)}),
         r"m\.proj\.weight_packed has dtype float32"),
        (lambda t: t.update({"m.proj.weight_scale": t["m.proj.weight_scale"][:5]}), r"m\.proj\.weight_\* do not form"),
        (lambda t: t.update({"m.proj.weight_g_idx": torch.zeros(131, dtype=torch.int32)}), "weight_g_idx"),
    ],
)  # fmt: skip
def test_hostile_tensors_name_the_tensor(int4_dir: Path, edit: Any, match: str):
    edit_tensors(int4_dir, edit)
    with pytest.raises(breccia.FormatError, match=match):
        load_compressed_tensors(int4_dir)


def test_unnamed_module_without_a_single_class_target_is_refused(int4_dir: Path):
    edit_config(int4_dir, lambda q: q["config_groups"]["group_0"].update(targets=["other.proj"]))
    with pytest.raises(breccia.FormatError, match=r"no config group names module 'm\.proj' and 0 groups"):
        load_compressed_tensors(int4_dir)
    edit_config(int4_dir, lambda q: q.update(ignore=["re:m\\..*"]))
    assert isinstance(load_compressed_tensors(int4_dir)["m.proj.weight_packed"], np.ndarray)  # ignored: plain tensors


def test_symmetric_scheme_with_nonzero_zero_point_is_refused(tmp_path: Path):
    save_compressed_tensors({W: cast(INT8Scaling(), None, (8, 32))}, tmp_path)
    edit_tensors(tmp_path, lambda t: t.update({"m.proj.weight_zero_point": torch.ones(1, 8, dtype=torch.int32)}))
    with pytest.raises(breccia.FormatError, match="non-zero but the weights are declared symmetric"):
        load_compressed_tensors(tmp_path)


def test_breccia_record_that_disagrees_with_config_is_ignored(tmp_path: Path):
    st = cast(MXFP4BlockScaling(scale_rounding="floor"), None, (8, 64))
    save_compressed_tensors({W: st}, tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118
    meta["m.proj.breccia"] = json.dumps({"recipe": MXFP8BlockScaling().to_dict()})
    save_file(tensors, str(tmp_path / "model.safetensors"), metadata=meta)
    assert load_compressed_tensors(tmp_path)[W].recipe == MXFP4BlockScaling()  # config wins; default option
    meta["m.proj.breccia"] = "[1]"
    save_file(tensors, str(tmp_path / "model.safetensors"), metadata=meta)
    with pytest.raises(breccia.FormatError, match=r"metadata 'm\.proj\.breccia' is not a JSON object"):
        load_compressed_tensors(tmp_path)
