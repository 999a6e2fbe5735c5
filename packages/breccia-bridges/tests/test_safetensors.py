"""breccia's safetensors convention: bit-exact round trips for every recipe into every framework, interop with
plain safetensors readers, laziness, sharded checkpoints and atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import ALL_RECIPES, FRAMEWORKS, assert_same_bits, cast_np

import breccia
from breccia.bridges import _files, load_safetensors, open_safetensors, save_safetensors


@pytest.mark.parametrize("recipe", ALL_RECIPES)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_round_trip_every_recipe(tmp_path: Path, recipe: breccia.Recipe, framework: str) -> None:
    st = cast_np(recipe, (3, 5, 77))
    save_safetensors({"w": st}, tmp_path / "m.safetensors")
    out = load_safetensors(tmp_path / "m.safetensors", framework=framework)
    assert set(out) == {"w"}
    assert out["w"].framework == framework
    assert_same_bits(st, out["w"])


@pytest.mark.parametrize("recipe", [breccia.MXFP4BlockScaling(), breccia.INT4Scaling(group_size=32, symmetric=False)])
@pytest.mark.parametrize("axis", [0, 1])
def test_round_trip_other_axes_and_odd_packed_rows(tmp_path: Path, recipe: breccia.Recipe, axis: int) -> None:
    x = np.random.default_rng(1).standard_normal((67, 33)).astype(np.float32)
    st = breccia.cast(x, recipe, axis=axis)
    save_safetensors({"w": st}, tmp_path / "m.safetensors")
    assert_same_bits(st, load_safetensors(tmp_path / "m.safetensors")["w"])


def test_saves_from_torch_with_real_dtypes(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    x = torch.randn(4, 96)
    sts = {
        "fp8": breccia.cast(x, breccia.Float8BlockScaling()),
        "mx": breccia.cast(x, breccia.MXFP8BlockScaling(fp8_format="E5M2")),
        "nv": breccia.cast(x, breccia.NVFP4BlockScaling()),
    }
    save_safetensors(sts, tmp_path / "m.safetensors")
    raw = load_file(tmp_path / "m.safetensors")
    assert raw["fp8.data"].dtype == torch.float8_e4m3fn
    assert raw["mx.data"].dtype == torch.float8_e5m2
    assert raw["mx.scale"].dtype == torch.float8_e8m0fnu
    assert raw["nv.data"].dtype == torch.float4_e2m1fn_x2
    assert raw["nv.scale"].dtype == torch.float8_e4m3fn
    assert raw["nv.global_scale"].dtype == torch.float32 and raw["nv.global_scale"].shape == ()
    assert torch.equal(raw["fp8.data"].view(torch.uint8), sts["fp8"].data.view(torch.uint8))
    for name, st in sts.items():
        back = load_safetensors(tmp_path / "m.safetensors", framework="torch")[name]
        assert_same_bits(st, back)
        assert torch.equal(breccia.dequantize(back), breccia.dequantize(st))


def test_plain_tensors_survive_load_then_save(tmp_path: Path) -> None:
    import ml_dtypes

    plain = {
        "norm": np.linspace(-1, 1, 7, dtype=np.float32),
        "emb": np.arange(12, dtype=np.float32).astype(ml_dtypes.bfloat16).reshape(3, 4),
        "ids": np.arange(5, dtype=np.int64),
        "f8": np.arange(16, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn),
    }
    st = cast_np(breccia.MXFP8BlockScaling())
    save_safetensors({"w": st, **plain}, tmp_path / "a.safetensors", extra_metadata={"model_version": "7"})
    first = load_safetensors(tmp_path / "a.safetensors")
    save_safetensors(first, tmp_path / "b.safetensors")
    second = load_safetensors(tmp_path / "b.safetensors")
    assert set(second) == {"w", *plain}
    assert_same_bits(st, second["w"])
    for k, v in plain.items():
        assert second[k].dtype == v.dtype and second[k].tobytes() == v.tobytes(), k
    with open_safetensors(tmp_path / "a.safetensors") as r:
        assert r.metadata == {"model_version": "7"}
        assert r.scaled_keys() == ["w"]


def test_seed_api_example(tmp_path: Path) -> None:
    w = np.random.default_rng(2).standard_normal((64, 128)).astype(np.float32)
    w_quantized = breccia.cast(w, breccia.Float8BlockScaling())
    k_quantized = breccia.cast(w, breccia.MXFP4BlockScaling())
    os.chdir(tmp_path)
    save_safetensors(
        {"w_q": w_quantized, "w_k": k_quantized},
        "model.safetensors",
        extra_metadata={"model_version": "v0.0.1"},
    )
    loaded = load_safetensors("model.safetensors")
    assert isinstance(loaded["w_q"], breccia.ScaledTensor)
    assert loaded["w_q"].recipe == w_quantized.recipe and loaded["w_q"].layout == w_quantized.layout
    np.testing.assert_array_equal(breccia.dequantize(loaded["w_k"]), breccia.dequantize(k_quantized))


def test_lazy_reads_only_what_is_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sts = {f"t{i}": cast_np(breccia.Float8BlockScaling(), seed=i) for i in range(6)}
    save_safetensors(sts, tmp_path / "m.safetensors")
    seen: list[str] = []
    real = _files._File._read_numpy

    def spy(self: _files._File, name: str) -> np.ndarray:
        seen.append(name)
        return real(self, name)

    monkeypatch.setattr(_files._File, "_read_numpy", spy)
    with open_safetensors(tmp_path / "m.safetensors") as r:
        assert sorted(r.keys()) == sorted(sts)
        assert seen == []
        assert_same_bits(sts["t4"], r["t4"])
    assert sorted(seen) == ["t4.data", "t4.scale"]
    out = load_safetensors(tmp_path / "m.safetensors", names=["t1"])
    assert list(out) == ["t1"]


def test_sharded_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sts = {f"layer{i}": cast_np(breccia.NVFP4BlockScaling(), (16, 96), seed=i) for i in range(5)}
    sts["norm"] = np.ones(8, np.float32)
    save_safetensors(sts, tmp_path / "ckpt", max_shard_size=1500, extra_metadata={"arch": "toy"})
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    shards = [f for f in files if f.endswith(".safetensors")]
    assert len(shards) > 1 and "model.safetensors.index.json" in files
    assert shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    index = json.loads((tmp_path / "ckpt" / "model.safetensors.index.json").read_text())
    for name in ("layer0", "layer3"):  # a tensor's buffers never straddle shards
        assert index["weight_map"][f"{name}.data"] == index["weight_map"][f"{name}.scale"]
    opened: list[str] = []
    real = _files._File.__init__

    def spy(self: _files._File, path: Path) -> None:
        opened.append(path.name)
        real(self, path)

    monkeypatch.setattr(_files._File, "__init__", spy)
    one = load_safetensors(tmp_path / "ckpt", names=["layer3"])
    assert set(opened) == {index["weight_map"]["layer3.data"]}
    assert_same_bits(sts["layer3"], one["layer3"])
    for target in (tmp_path / "ckpt", tmp_path / "ckpt" / "model.safetensors.index.json"):
        every = load_safetensors(target)
        assert set(every) == set(sts)
        for i in range(5):
            assert_same_bits(sts[f"layer{i}"], every[f"layer{i}"])
    with open_safetensors(tmp_path / "ckpt") as r:
        assert r.metadata == {"arch": "toy"}


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "m.safetensors"
    st = cast_np(breccia.Float8CurrentScaling())
    save_safetensors({"w": st}, target)
    before = target.read_bytes()
    import safetensors

    def broken(specs: object, filename: str, metadata: object = None) -> None:
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors, "serialize_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_safetensors({"w": cast_np(breccia.MXFP8BlockScaling())}, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_bad_arguments_are_clear(tmp_path: Path) -> None:
    st = cast_np(breccia.Float8CurrentScaling())
    with pytest.raises(breccia.FormatError, match="already used"):
        save_safetensors({"w": st, "w.data": np.zeros(2, np.float32)}, tmp_path / "m.safetensors")
    with pytest.raises(breccia.FormatError, match="expected a ScaledTensor or an array"):
        save_safetensors({"w": [1, 2]}, tmp_path / "m.safetensors")
    with pytest.raises(breccia.FormatError, match="max_shard_size"):
        save_safetensors({"w": st}, tmp_path / "d", max_shard_size="lots")
    save_safetensors({"w": st}, tmp_path / "m.safetensors")
    with pytest.raises(breccia.FormatError, match="framework"):
        load_safetensors(tmp_path / "m.safetensors", framework="tensorflow")
    with pytest.raises(breccia.FormatError, match="no tensor 'nope'"):
        load_safetensors(tmp_path / "m.safetensors", names=["nope"])
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_mlx_affine_round_trip_is_exact(tmp_path: Path) -> None:
    """MLX's own affine weights (float zero points) through a file: the header declares the zero point in the
    scale's float dtype, and the loaded tensor dequantizes to ``mx.dequantize`` bit for bit."""
    mx = pytest.importorskip("mlx.core")
    from safetensors import safe_open

    from_mlx_quantized = pytest.importorskip("breccia.mlx").from_mlx_quantized  # installed by the bridges session

    for dtype, code in ((mx.bfloat16, "BF16"), (mx.float16, "F16"), (mx.float32, "F32")):
        w = mx.array(np.random.default_rng(3).standard_normal((16, 128)).astype(np.float32)).astype(dtype)
        q = mx.quantize(w, group_size=32, bits=4, mode="affine")
        st = from_mlx_quantized(*q, group_size=32, bits=4)
        save_safetensors({"w": st}, tmp_path / "m.safetensors")
        with safe_open(str(tmp_path / "m.safetensors"), framework="numpy") as f:
            assert f.get_slice("w.zero_point").get_dtype() == code
        back = load_safetensors(tmp_path / "m.safetensors", framework="mlx")["w"]
        assert_same_bits(st, back)
        want = mx.dequantize(*q, group_size=32, bits=4, mode="affine", dtype=mx.float32)
        got = np.array(breccia.dequantize(back))
        np.testing.assert_array_equal(got.view(np.uint32), np.array(want).view(np.uint32))
