"""``breccia convert``: every output format loads back with its bridge and equals ``breccia.cast`` of the source, bit
for bit; untouched tensors and the HF directory's other files survive; the output is the same for any --workers.

The helpers here (a real sharded HF-style checkpoint, directory comparison) are shared with the other test_cli_*
files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from conftest import assert_same_bits

import breccia
from breccia.bridges import (
    load_compressed_tensors,
    load_deepseek_v3,
    load_safetensors,
    save_safetensors,
)
from breccia.bridges._cli import main
from breccia.bridges._convert_plan import resolve_recipe

LAYERS = 4
CONFIG = {"architectures": ["ToyForCausalLM"], "hidden_size": 256, "torch_dtype": "bfloat16"}


def make_src(root: Path, shards: int = LAYERS) -> dict[str, Any]:
    """An HF-style directory: bf16 and f32 linears, norms, an embedding, biases; one layer per shard + index."""
    rng = np.random.default_rng(7)
    tensors: dict[str, Any] = {"model.embed_tokens.weight": rng.standard_normal((32, 256)).astype(np.float32)}
    for i in range(LAYERS):
        p = f"model.layers.{i}"
        tensors[f"{p}.mlp.up_proj.weight"] = rng.standard_normal((64, 256)).astype(ml_dtypes.bfloat16)
        tensors[f"{p}.self_attn.q_proj.weight"] = (rng.standard_normal((128, 256)) * 0.02).astype(np.float32)
        tensors[f"{p}.self_attn.q_proj.bias"] = rng.standard_normal(128).astype(np.float32)
        tensors[f"{p}.input_layernorm.weight"] = np.ones(256, ml_dtypes.bfloat16)
    per_shard = -(-sum(v.nbytes for v in tensors.values()) // shards)
    save_safetensors(tensors, root, max_shard_size=per_shard)
    (root / "config.json").write_text(json.dumps(CONFIG))
    (root / "tokenizer.json").write_text('{"model": "toy"}')
    (root / "sub").mkdir()
    (root / "sub" / "pooling.json").write_text("{}")
    return tensors


def quantized_names(tensors: dict[str, Any]) -> list[str]:
    return [n for n in tensors if n.endswith(("up_proj.weight", "q_proj.weight"))]


def run(*argv: str) -> int:
    return main("convert", [*map(str, argv), "--no-progress"])


def dir_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def src(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    root = tmp_path / "src"
    return root, make_src(root)


def check_plain_kept(out: dict[str, Any], tensors: dict[str, Any]) -> None:
    for name, x in tensors.items():
        if name not in quantized_names(tensors):
            assert out[name].dtype == x.dtype and out[name].tobytes() == x.tobytes(), name


@pytest.mark.parametrize("alias", ["fp8", "fp8-row", "fp8-block", "mxfp8", "mxfp6", "mxfp4", "nvfp4", "int8", "int4"])
def test_breccia_format_equals_cast_of_source(src: Any, tmp_path: Path, alias: str):
    root, tensors = src
    assert run(root, tmp_path / "out", "--recipe", alias) == 0
    recipe, layout = resolve_recipe(alias)
    out = load_safetensors(tmp_path / "out")
    for name in quantized_names(tensors):
        assert_same_bits(out[name], breccia.cast(tensors[name], recipe, layout=layout))
    check_plain_kept(out, tensors)
    shards = sorted(p.name for p in root.glob("*.safetensors"))
    assert len(shards) > 2 and sorted(p.name for p in (tmp_path / "out").glob("*.safetensors")) == shards
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert {k: cfg[k] for k in CONFIG} == CONFIG
    assert cfg["quantization_config"]["recipe"] == recipe.to_dict()
    assert (tmp_path / "out" / "tokenizer.json").read_text() == '{"model": "toy"}'
    assert (tmp_path / "out" / "sub" / "pooling.json").is_file()
    assert not (tmp_path / "out.partial").exists()


@pytest.mark.parametrize("alias", ["fp8", "fp8-block", "mxfp8", "mxfp4", "nvfp4", "int4"])
def test_compressed_tensors_format_equals_cast_of_source(src: Any, tmp_path: Path, alias: str):
    root, tensors = src
    assert run(root, tmp_path / "ct", "--recipe", alias, "--format", "compressed-tensors") == 0
    recipe, layout = resolve_recipe(alias)
    out = load_compressed_tensors(tmp_path / "ct")
    for name in quantized_names(tensors):
        want = breccia.cast(tensors[name], recipe, layout=layout)
        assert_same_bits(out[name], want)
    check_plain_kept(out, tensors)
    q = json.loads((tmp_path / "ct" / "config.json").read_text())["quantization_config"]
    assert q["quant_method"] == "compressed-tensors"
    targets = sorted(t for g in q["config_groups"].values() for t in g["targets"])
    assert targets == sorted(n.removesuffix(".weight") for n in quantized_names(tensors))


def test_compressed_tensors_library_decompresses_the_output(src: Any, tmp_path: Path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("compressed_tensors")
    from compressed_tensors.entrypoints.convert.converters.ct_dequantizer import CompressedTensorsDequantizer
    from safetensors.torch import load_file

    root, tensors = src
    assert run(root, tmp_path / "ct", "--recipe", "fp8-block", "--format", "compressed-tensors") == 0
    loaded: dict[str, Any] = {}
    for f in sorted((tmp_path / "ct").glob("*.safetensors")):
        loaded.update(load_file(f))
    got = CompressedTensorsDequantizer(str(tmp_path / "ct"), dtype=torch.float32).validate(loaded)
    recipe, layout = resolve_recipe("fp8-block")
    for name in quantized_names(tensors):
        want = breccia.dequantize(breccia.cast(tensors[name], recipe, layout=layout))
        assert torch.equal(got[name].to(torch.float32), torch.as_tensor(np.asarray(want, np.float32))), name


def test_deepseek_format_equals_cast_of_source(src: Any, tmp_path: Path):
    root, tensors = src
    assert run(root, tmp_path / "ds", "--recipe", "fp8-block", "--format", "deepseek") == 0
    out = load_deepseek_v3(tmp_path / "ds")
    recipe, _ = resolve_recipe("fp8-block")
    for name in quantized_names(tensors):
        assert_same_bits(out[name], breccia.cast(tensors[name], recipe))
    check_plain_kept(out, tensors)
    q = json.loads((tmp_path / "ds" / "config.json").read_text())["quantization_config"]
    assert (q["quant_method"], q["fmt"], q["weight_block_size"]) == ("fp8", "e4m3", [128, 128])


def test_quantized_sources_are_repacked_not_requantized(src: Any, tmp_path: Path, capsys: Any):
    root, tensors = src
    assert run(root, tmp_path / "ds", "--recipe", "fp8-block", "--format", "deepseek") == 0
    assert run(tmp_path / "ds", tmp_path / "ct", "--recipe", "fp8-block", "--format", "compressed-tensors") == 0
    assert run(tmp_path / "ct", tmp_path / "br", "--recipe", "Float8BlockScaling", "--include", "*q_proj.weight") == 0
    assert "repacked" in capsys.readouterr().out
    ds, ct, br = (load_deepseek_v3(tmp_path / "ds"), load_compressed_tensors(tmp_path / "ct"),
                  load_safetensors(tmp_path / "br"))  # fmt: skip
    for name in quantized_names(tensors):
        assert_same_bits(ct[name], ds[name])  # bytes moved
    for name in quantized_names(tensors):  # 128×128 → 1×128: requantize, exactly as breccia.requantize does
        want = breccia.requantize(ds[name], breccia.Float8BlockScaling()) if "q_proj" in name else ds[name]
        assert_same_bits(br[name], want)


def test_selection_rule_and_globs(src: Any, tmp_path: Path):
    root, _ = src
    assert run(root, tmp_path / "a", "--recipe", "int8", "--include", "*.mlp.*", "--exclude", "*.layers.0.*") == 0
    out = load_safetensors(tmp_path / "a")
    scaled = sorted(n for n, v in out.items() if isinstance(v, breccia.ScaledTensor))
    assert scaled == [f"model.layers.{i}.mlp.up_proj.weight" for i in range(1, LAYERS)]
    assert run(root, tmp_path / "b", "--recipe", "int8", "--include", "*embed*") == 0  # asked for: allowed
    assert isinstance(load_safetensors(tmp_path / "b")["model.embed_tokens.weight"], breccia.ScaledTensor)


def test_workers_two_gives_the_same_bytes_as_one(src: Any, tmp_path: Path):
    root, _ = src
    assert run(root, tmp_path / "one", "--recipe", "nvfp4", "--format", "compressed-tensors") == 0
    assert run(root, tmp_path / "two", "--recipe", "nvfp4", "--format", "compressed-tensors", "--workers", "2") == 0
    assert dir_bytes(tmp_path / "one") == dir_bytes(tmp_path / "two")


def test_single_file_source(tmp_path: Path):
    x = np.random.default_rng(1).standard_normal((16, 64)).astype(np.float32)
    save_safetensors({"lin.weight": x, "lin.bias": x[0]}, tmp_path / "one.safetensors")
    assert run(tmp_path / "one.safetensors", tmp_path / "out", "--recipe", "mxfp4") == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["one.safetensors"]
    assert_same_bits(load_safetensors(tmp_path / "out")["lin.weight"], breccia.cast(x, breccia.MXFP4BlockScaling()))


def test_ray_cluster_gives_the_same_bytes(src: Any, tmp_path: Path):
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")  # see _convert_ray: never sync the project under uv
    ray = pytest.importorskip("ray")
    root, _ = src
    assert run(root, tmp_path / "local", "--recipe", "mxfp8") == 0
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        assert run(root, tmp_path / "ray", "--recipe", "mxfp8", "--ray", "auto") == 0
    finally:
        ray.shutdown()
    assert dir_bytes(tmp_path / "local") == dir_bytes(tmp_path / "ray")
