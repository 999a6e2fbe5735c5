"""DeepSeek-V3 / V3.1: raw buffers and checkpoint directories built exactly as DeepSeek ships them, checked against
DeepSeek's published ``weight_dequant`` / ``act_quant`` formulas written out here in numpy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from conftest import assert_same_bits

import breccia
from breccia.bridges import from_deepseek_v3, load_deepseek_v3, save_deepseek_v3, to_deepseek_v3

torch = pytest.importorskip("torch")
from safetensors.torch import load_file, save_file  # noqa: E402

QCONFIG = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]}


def weight_dequant(x: np.ndarray, s: np.ndarray, block: int = 128) -> np.ndarray:
    """DeepSeek-V3 inference/kernel.py ``weight_dequant``: ``y[i, j] = x[i, j] · s[i // 128, j // 128]`` in fp32."""
    m, n = x.shape
    full = np.repeat(np.repeat(s, block, axis=0), block, axis=1)[:m, :n]
    return x.astype(np.float32) * full


def act_quant(x: np.ndarray, block: int = 128, scale_fmt: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """DeepSeek-V3 ``act_quant`` (IEEE fp32 arithmetic): per 1×128 block ``s = max(amax, 1e-4) / 448`` (V3.1
    ``ue8m0``: ``2^ceil(log2 s)``), ``y = e4m3(x / s)``."""
    *lead, k = x.shape
    nb = math.ceil(k / block)
    pad = np.zeros((*lead, nb * block), np.float32)
    pad[..., :k] = x
    blocks = pad.reshape(*lead, nb, block)
    amax = np.maximum(np.abs(blocks).max(-1), np.float32(1e-4))
    s = (amax / np.float32(448.0)).astype(np.float32)
    if scale_fmt == "ue8m0":
        s = np.exp2(np.ceil(np.log2(s))).astype(np.float32)
    y = np.clip(blocks / s[..., None], -448, 448).astype(ml_dtypes.float8_e4m3fn)
    return y.reshape(*lead, nb * block)[..., :k], s


def random_fp8(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    codes = torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    codes[(codes & 0x7F) == 0x7F] = 0  # no NaN codes
    return codes.view(torch.float8_e4m3fn)


def make_deepseek_dir(root: Path, scale_fmt: str | None = None) -> dict[str, torch.Tensor]:
    """Two shards + index + config.json, keys and dtypes as in deepseek-ai/DeepSeek-V3."""
    g = torch.Generator().manual_seed(0)
    w1, w2 = random_fp8((300, 200), 1), random_fp8((129, 1000), 2)
    s1 = torch.rand(3, 2, generator=g) * 1e-3 + 1e-5
    s2 = torch.rand(2, 8, generator=g) * 1e-3 + 1e-5
    if scale_fmt == "ue8m0":
        s1, s2 = torch.exp2(torch.ceil(torch.log2(s1))), torch.exp2(torch.ceil(torch.log2(s2)))
    shard1 = {
        "model.embed_tokens.weight": torch.randn(10, 8, generator=g).bfloat16(),
        "model.layers.0.mlp.down_proj.weight": w1,
        "model.layers.0.mlp.down_proj.weight_scale_inv": s1,
    }
    shard2 = {
        "model.layers.0.input_layernorm.weight": torch.ones(8).bfloat16(),
        "model.layers.0.self_attn.q_a_proj.weight": w2,
        "model.layers.0.self_attn.q_a_proj.weight_scale_inv": s2,
    }
    root.mkdir()
    weight_map = {}
    for i, shard in enumerate((shard1, shard2), 1):
        name = f"model-0000{i}-of-00002.safetensors"
        save_file(shard, root / name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
    (root / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    q = dict(QCONFIG, **({"scale_fmt": scale_fmt} if scale_fmt else {}))
    (root / "config.json").write_text(json.dumps({"model_type": "deepseek_v3", "quantization_config": q}))
    return {**shard1, **shard2}


@pytest.mark.parametrize("framework", ["numpy", "torch"])
@pytest.mark.parametrize("scale_fmt", [None, "ue8m0"])
def test_loads_checkpoint_as_deepseek_ships_it(tmp_path: Path, framework: str, scale_fmt: str | None) -> None:
    ref = make_deepseek_dir(tmp_path / "ds", scale_fmt)
    out = load_deepseek_v3(tmp_path / "ds", framework=framework)
    assert set(out) == {k for k in ref if not k.endswith("_scale_inv")}
    for name in ("model.layers.0.mlp.down_proj.weight", "model.layers.0.self_attn.q_a_proj.weight"):
        st = out[name]
        assert st.recipe == breccia.Float8BlockScaling(block_m=128, power_of_2_scales=scale_fmt == "ue8m0")
        x = ref[name].view(torch.uint8).numpy().view(ml_dtypes.float8_e4m3fn)
        expect = weight_dequant(x, ref[name + "_scale_inv"].numpy())
        got = breccia.dequantize(st)
        got = got.numpy() if framework == "torch" else got
        assert got.dtype == np.float32 and got.tobytes() == expect.tobytes()
    norm = out["model.layers.0.input_layernorm.weight"]
    assert str(norm.dtype).endswith("bfloat16")
    only = load_deepseek_v3(tmp_path / "ds", names=["model.layers.0.mlp.down_proj.weight"])
    assert list(only) == ["model.layers.0.mlp.down_proj.weight"]


def test_save_writes_deepseek_layout(tmp_path: Path) -> None:
    ref = make_deepseek_dir(tmp_path / "ds", "ue8m0")
    loaded = load_deepseek_v3(tmp_path / "ds", framework="torch")
    save_deepseek_v3(loaded, tmp_path / "out", max_shard_size=200_000, config={"model_type": "deepseek_v3"})
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["quantization_config"] == dict(QCONFIG, scale_fmt="ue8m0")
    assert cfg["model_type"] == "deepseek_v3"  # the model config is kept, quantization_config added
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(ref)
    back: dict[str, torch.Tensor] = {}
    for shard in set(index["weight_map"].values()):
        back.update(load_file(tmp_path / "out" / shard))
    for k, v in ref.items():
        assert back[k].dtype == v.dtype, k
        assert torch.equal(back[k].view(torch.uint8), v.view(torch.uint8)), k


def test_raw_buffers_weight_and_activation_blocks() -> None:
    x = np.random.default_rng(3).standard_normal((2, 3, 300)).astype(np.float32)
    y, s = act_quant(x)
    act = from_deepseek_v3(y, s)
    assert act.recipe == breccia.Float8BlockScaling() and act.layout == breccia.PerBlockK(128)
    assert_same_bits(act, breccia.cast(x, breccia.Float8BlockScaling()))  # DeepSeek's act_quant == breccia's cast
    y8, s8 = act_quant(x, scale_fmt="ue8m0")
    act8 = from_deepseek_v3(y8, s8, scale_fmt="ue8m0")
    assert_same_bits(act8, breccia.cast(x, breccia.Float8BlockScaling(power_of_2_scales=True)))
    data, scale = to_deepseek_v3(act)
    assert data is act.data and scale is act.scale
    w = breccia.cast(np.random.default_rng(4).standard_normal((300, 200)).astype(np.float32),
                     breccia.Float8BlockScaling(block_m=128))  # fmt: skip
    back = from_deepseek_v3(*to_deepseek_v3(w))
    assert_same_bits(w, back)
    one_row = from_deepseek_v3(y[0, :1], s[0, :1])  # (1, 300) with (1, 3): reads as 1×128, same values
    assert one_row.layout == breccia.PerBlockK(128)


def test_raw_buffers_in_torch_and_e8m0_scales() -> None:
    w = breccia.cast(torch.randn(256, 130), breccia.Float8BlockScaling(block_m=128, power_of_2_scales=True))
    data, scale = to_deepseek_v3(w)
    e8m0 = (torch.log2(scale).to(torch.int32) + 127).to(torch.uint8).view(torch.float8_e8m0fnu)
    st = from_deepseek_v3(data, e8m0, scale_fmt="ue8m0")  # DeepGEMM keeps UE8M0 bytes: widened exactly
    assert torch.equal(st.scale, scale) and st.data is data


def test_errors_name_the_problem() -> None:
    y, s = act_quant(np.ones((4, 256), np.float32))
    with pytest.raises(breccia.LayoutError, match="matches neither"):
        from_deepseek_v3(y, s[:, :1])
    with pytest.raises(breccia.FormatError, match="data must be float8_e4m3fn"):
        from_deepseek_v3(y.astype(np.float32), s)
    with pytest.raises(breccia.FormatError, match="not powers of two"):
        from_deepseek_v3(y, s * np.float32(1.1), scale_fmt="ue8m0")
    with pytest.raises(breccia.RecipeError, match="fp8_format"):
        from_deepseek_v3(y, s, fp8_format="E3M4")
    mx = breccia.cast(np.ones((4, 64), np.float32), breccia.MXFP8BlockScaling())
    with pytest.raises(breccia.RecipeError, match="requantize"):
        to_deepseek_v3(mx)


def test_hostile_deepseek_dirs(tmp_path: Path) -> None:
    make_deepseek_dir(tmp_path / "ds")
    cfg = tmp_path / "ds" / "config.json"
    cfg.write_text("{not json")
    with pytest.raises(breccia.FormatError, match=r"config\.json: not valid JSON"):
        load_deepseek_v3(tmp_path / "ds")
    cfg.write_text(json.dumps({"quantization_config": dict(QCONFIG, weight_block_size=[128, 64])}))
    with pytest.raises(breccia.FormatError, match="weight_block_size"):
        load_deepseek_v3(tmp_path / "ds")
    cfg.write_text(json.dumps({"quantization_config": dict(QCONFIG, weight_block_size=[64, 64])}))
    with pytest.raises(breccia.FormatError, match=r"down_proj\.weight"):  # scale grid no longer matches
        load_deepseek_v3(tmp_path / "ds")
