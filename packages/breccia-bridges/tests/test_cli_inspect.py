"""``breccia inspect``: each recognised kind (plain, breccia, compressed-tensors, DeepSeek-V3) lists its logical
tensors with the recipe, logical shape and storage cost of what was written — and reads no tensor bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_cli_convert import make_src

import breccia
from breccia.bridges import save_compressed_tensors, save_deepseek_v3, save_safetensors
from breccia.bridges._cli import main
from breccia.bridges._files import _File

X = np.random.default_rng(3).standard_normal((48, 256)).astype(np.float32)


def inspect_json(path: Path, capsys: Any) -> dict[str, Any]:
    assert main("inspect", [str(path), "--json"]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def storage(st: breccia.ScaledTensor) -> int:
    return sum(np.asarray(getattr(st, p)).nbytes for p in ("data", "scale", "global_scale", "zero_point")
               if getattr(st, p) is not None)  # fmt: skip


@pytest.fixture(autouse=True)
def no_tensor_reads(monkeypatch: Any) -> None:
    """inspect must not read tensors: any read fails (compressed-tensors' tiny weight_shape excepted, see below)."""

    def refuse(self: Any, name: str, *a: Any, **k: Any) -> Any:
        if name.endswith(".weight_shape"):
            return _orig(self, name, *a, **k)
        raise AssertionError(f"inspect read tensor {name}")

    _orig = _File.read
    monkeypatch.setattr(_File, "read", refuse)


def test_plain_sharded_directory(tmp_path: Path, capsys: Any):
    tensors = make_src(tmp_path / "src")
    doc = inspect_json(tmp_path / "src", capsys)
    assert doc["format"] == "plain" and len(doc["files"]) > 2
    rows = {r["name"]: r for r in doc["tensors"]}
    assert sorted(rows) == sorted(tensors)
    for name, x in tensors.items():
        assert rows[name]["shape"] == list(x.shape) and rows[name]["bytes"] == x.nbytes
        assert rows[name]["bits_per_value"] == 8 * x.dtype.itemsize and rows[name]["recipe"] is None
    assert doc["total"]["bytes"] == sum(x.nbytes for x in tensors.values())


@pytest.mark.parametrize("recipe", [breccia.MXFP4BlockScaling(), breccia.NVFP4BlockScaling(),
                                    breccia.INT4Scaling(group_size=32, symmetric=False)])  # fmt: skip
def test_breccia_file(tmp_path: Path, capsys: Any, recipe: Any):
    st = breccia.cast(X, recipe)
    save_safetensors({"lin.weight": st, "lin.bias": X[0]}, tmp_path / "m.safetensors")
    doc = inspect_json(tmp_path / "m.safetensors", capsys)
    row = {r["name"]: r for r in doc["tensors"]}["lin.weight"]
    assert doc["format"] == "breccia"
    assert row["recipe"] == recipe.to_dict() and row["layout"] == st.layout.to_dict() and row["shape"] == [48, 256]
    assert row["bytes"] == storage(st)
    assert row["bits_per_value"] == pytest.approx(8 * storage(st) / X.size, abs=1e-4)


@pytest.mark.parametrize("recipe", [breccia.Float8BlockScaling(block_m=128), breccia.MXFP6BlockScaling(),
                                    breccia.NVFP4BlockScaling(), breccia.INT4Scaling(group_size=64)])  # fmt: skip
def test_compressed_tensors_directory(tmp_path: Path, capsys: Any, recipe: Any):
    st = breccia.cast(X, recipe)
    save_compressed_tensors({"m.proj.weight": st, "m.norm.weight": X[0]}, tmp_path / "ct", max_shard_size="8KB")
    doc = inspect_json(tmp_path / "ct", capsys)
    row = {r["name"]: r for r in doc["tensors"]}["m.proj.weight"]
    assert doc["format"] == "compressed-tensors"
    assert row["recipe"] == recipe.to_dict() and row["shape"] == [48, 256]
    on_disk = 0
    from safetensors import safe_open

    for f in (tmp_path / "ct").glob("*.safetensors"):
        with safe_open(str(f), "numpy") as fh:
            names = list(fh.keys())
            on_disk += sum(_nbytes(fh, k) for k in names if k.startswith("m.proj."))
    assert row["bytes"] == on_disk


def _nbytes(fh: Any, key: str) -> int:
    sl = fh.get_slice(key)
    sizes = {"F8_E4M3": 1, "U8": 1, "I8": 1, "F32": 4, "F16": 2, "BF16": 2, "I32": 4, "I64": 8}
    return int(np.prod(sl.get_shape(), dtype=np.int64)) * sizes[sl.get_dtype()]


def test_deepseek_directory(tmp_path: Path, capsys: Any):
    recipe = breccia.Float8BlockScaling(block_m=128)
    st = breccia.cast(X, recipe)
    save_deepseek_v3({"layers.0.w.weight": st, "embed.weight": X}, tmp_path / "ds", max_shard_size="10KB")
    doc = inspect_json(tmp_path / "ds", capsys)
    rows = {r["name"]: r for r in doc["tensors"]}
    assert doc["format"] == "deepseek" and sorted(rows) == ["embed.weight", "layers.0.w.weight"]
    assert rows["layers.0.w.weight"]["recipe"] == recipe.to_dict()
    assert rows["layers.0.w.weight"]["bytes"] == storage(st)


def test_table_lists_every_tensor(tmp_path: Path, capsys: Any):
    save_safetensors({"a.weight": breccia.cast(X, breccia.MXFP8BlockScaling()), "b": X}, tmp_path / "m.safetensors")
    assert main("inspect", [str(tmp_path / "m.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "a.weight" in out and "MXFP8BlockScaling()" in out and "2 tensors" in out and "8.250" in out
