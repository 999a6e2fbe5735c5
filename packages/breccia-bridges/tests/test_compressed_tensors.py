"""compressed-tensors bridge, checked against the real compressed-tensors library (no mocks).

Directions: breccia writes → compressed-tensors' model-free ``CompressedTensorsDequantizer`` (parsing the directory's
config.json) decompresses to breccia's dequantized values; compressed-tensors quantizes a model and saves it
(``ModelCompressor``) → breccia reads the same values; breccia → directory → breccia is bit-identical;
compressed-tensors' scale rules are reproduced by the named recipe options. Refusals and hostile files:
``test_compressed_tensors_errors.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import CT_WEIGHT as W
from conftest import FRAMEWORKS, assert_same_bits
from conftest import ct_cast as cast
from conftest import ct_x as make_x

import breccia
from breccia import (
    Float8BlockScaling,
    Float8CurrentScaling,
    INT4Scaling,
    INT8Scaling,
    MXFP4BlockScaling,
    MXFP6BlockScaling,
    MXFP8BlockScaling,
    NVFP4BlockScaling,
    PerChannel,
)
from breccia._recipes import NVFP4_TORCHAO
from breccia.bridges import load_compressed_tensors, save_compressed_tensors
from breccia.bridges._arrays import host_numpy

torch = pytest.importorskip("torch")
pytest.importorskip("compressed_tensors")
from compressed_tensors.compressors import ModelCompressor  # noqa: E402
from compressed_tensors.entrypoints.convert.converters.ct_dequantizer import CompressedTensorsDequantizer  # noqa: E402
from compressed_tensors.quantization import (  # noqa: E402
    QuantizationArgs,
    QuantizationConfig,
    QuantizationScheme,
    QuantizationStatus,
    apply_quantization_config,
)
from compressed_tensors.quantization.lifecycle.forward import dequantize as ct_dequantize  # noqa: E402
from compressed_tensors.quantization.utils import calculate_qparams, generate_gparam  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

CTW = "proj.weight"  # the module compressed-tensors quantizes in ct_checkpoint
# (recipe, layout, shape): awkward rows everywhere, K off the 128-block, odd K where the format allows it
RECIPES = [
    (Float8CurrentScaling(), None, (37, 131)),
    (Float8CurrentScaling(power_of_2_scales=True), PerChannel(-1), (37, 131)),
    (Float8BlockScaling(block_m=128), None, (130, 257)),
    (Float8BlockScaling(block_m=128, power_of_2_scales=True), None, (37, 96)),
    (Float8BlockScaling(block_k=32), None, (37, 96)),
    (MXFP8BlockScaling(), None, (37, 96)),
    (MXFP8BlockScaling(scale_rounding="floor"), None, (37, 64)),
    (MXFP4BlockScaling(), None, (37, 96)),
    (MXFP6BlockScaling("E2M3", scale_rounding="floor"), None, (37, 96)),
    (NVFP4BlockScaling(), None, (37, 96)),
    (NVFP4_TORCHAO, None, (37, 48)),
    (NVFP4BlockScaling(per_tensor_scale=False), None, (37, 96)),
    (INT4Scaling(group_size=32), None, (37, 96)),
    (INT4Scaling(group_size=32, symmetric=False, scale_dtype="bf16"), None, (37, 96)),
    (INT4Scaling(group_size=-1, symmetric_range="half_range"), None, (37, 131)),
    (INT4Scaling(group_size=-1, symmetric=False, scale_dtype="fp32"), None, (37, 131)),
    (INT8Scaling(), None, (37, 131)),
    (INT8Scaling(granularity="group", group_size=32, symmetric=False), None, (37, 96)),
]
CASES = [
    pytest.param(r, lay, s, id=f"{r!r}{'-' + repr(lay) if lay else ''}-{s}".replace(" ", "")) for r, lay, s in RECIPES
]


def ct_dtype(st: breccia.ScaledTensor) -> Any:
    """The dtype compressed-tensors dequantizes in: the scale's for FP8 and INT, bf16 for its FP4/FP6/MX unpacking."""
    if isinstance(st.recipe, (INT4Scaling, INT8Scaling)):
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[st.recipe.scale_dtype]
    return torch.float32 if isinstance(st.recipe, (Float8CurrentScaling, Float8BlockScaling)) else torch.bfloat16


def ct_decompress(src: Path) -> dict[str, Any]:
    """compressed-tensors' own model-free dequantizer: parses ``src/config.json``, decompresses every shard's tensors
    and checks no quantization parameter is left over. (Its ``convert_checkpoint`` driver around the same converter
    fails to *save* 128×128 results for shapes off the block grid — a non-contiguous slice — so the shards are read
    here with safetensors.)"""
    tensors: dict[str, Any] = {}
    for f in sorted(src.glob("*.safetensors")):
        tensors.update(load_file(f))
    return CompressedTensorsDequantizer(str(src), dtype=torch.float32).validate(tensors)  # type: ignore[no-any-return]


def same(a: Any, b: Any, dtype: Any) -> bool:
    """Bit equality after rounding both to ``dtype`` (lossless for values compressed-tensors produced in it)."""
    bits = torch.int32 if dtype == torch.float32 else torch.int16
    x, y = torch.as_tensor(a).to(dtype), torch.as_tensor(b).to(dtype)
    return bool(x.shape == y.shape and torch.equal(x.view(bits), y.view(bits)))


# ------------------------------------------------------------------------------------------------ 1. breccia → CT
@pytest.mark.parametrize(("recipe", "layout", "shape"), CASES)
def test_compressed_tensors_decompresses_what_breccia_writes(recipe: Any, layout: Any, shape: Any, tmp_path: Path):
    st = cast(recipe, layout, shape)
    norm = np.linspace(-1, 1, shape[0], dtype=np.float32)
    save_compressed_tensors({W: st, "m.norm.weight": norm}, tmp_path / "ckpt", max_shard_size="2KB")
    got = ct_decompress(tmp_path / "ckpt")
    assert same(got[W], breccia.dequantize(st), ct_dtype(st))
    assert np.array_equal(got["m.norm.weight"].numpy(), norm)


def test_mixed_precision_checkpoint_decompresses_module_by_module(tmp_path: Path):
    sts = {f"layers.{i}.mlp.weight": cast(r, lay, s, seed=i) for i, (r, lay, s) in enumerate(RECIPES[::3])}
    save_compressed_tensors(sts, tmp_path / "ckpt", extra_config={"architectures": ["Toy"]})
    cfg = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert cfg["architectures"] == ["Toy"] and cfg["quantization_config"]["format"] == "mixed-precision"
    got = ct_decompress(tmp_path / "ckpt")
    for name, st in sts.items():
        assert same(got[name], breccia.dequantize(st), ct_dtype(st)), name


def test_config_is_what_compressed_tensors_validates(tmp_path: Path):
    save_compressed_tensors({W: cast(NVFP4BlockScaling(), None, (16, 32))}, tmp_path)
    q = json.loads((tmp_path / "config.json").read_text())["quantization_config"]
    parsed = QuantizationConfig.model_validate(q)
    (scheme,) = parsed.config_groups.values()
    assert (q["quant_method"], q["format"], scheme.targets) == ("compressed-tensors", "nvfp4-pack-quantized", [W[:-7]])
    args = scheme.weights
    assert (args.strategy, args.group_size, args.scale_dtype) == ("tensor_group", 16, torch.float8_e4m3fn)


def test_nvfp4_global_scale_is_the_exact_reciprocal_when_it_can_be(tmp_path: Path):
    """g a power of two: compressed-tensors' ``s / gs`` equals breccia's ``s · g`` bit for bit in fp32."""
    x = make_x((32, 64))
    x *= np.float32(2688 / 1024) / np.abs(x).max()
    st = breccia.cast(x, NVFP4BlockScaling())
    assert float(st.global_scale) == 2.0**-10
    save_compressed_tensors({W: st}, tmp_path)
    f = safe_open(str(tmp_path / "model.safetensors"), "pt")
    assert f.get_tensor("m.proj.weight_global_scale").item() == 1024.0
    ct = ct_fp32_nvfp4(f)
    assert torch.equal(ct, torch.from_numpy(breccia.dequantize(st)))


def ct_fp32_nvfp4(f: Any) -> Any:
    from compressed_tensors.compressors.nvfp4.helpers import unpack_fp4_from_uint8

    packed = f.get_tensor("m.proj.weight_packed")
    q = unpack_fp4_from_uint8(packed, packed.shape[0], packed.shape[1] * 2, dtype=torch.float32)
    args = QuantizationArgs(num_bits=4, type="float", strategy="tensor_group", group_size=16)
    s = f.get_tensor("m.proj.weight_scale").float()
    return ct_dequantize(q, s, args=args, global_scale=f.get_tensor("m.proj.weight_global_scale"), dtype=torch.float32)


def inexact_amax() -> float:
    """An amax whose breccia global scale ``amax/2688`` has no fp32 reciprocal that maps back to it."""
    for a in np.linspace(1.0, 2.0, 4001, dtype=np.float32):
        g = np.float32(a) / np.float32(2688)
        if np.float32(1) / (np.float32(1) / g) != g:
            return float(a)
    raise AssertionError("unreachable: one fp32 value in six has no round-tripping reciprocal")


def test_nvfp4_inexact_reciprocal_round_trips_through_breccia_metadata_only(tmp_path: Path):
    x = make_x((32, 64))
    x *= np.float32(inexact_amax()) / np.abs(x).max()
    st = breccia.cast(x, NVFP4BlockScaling())
    g = host_numpy(st.global_scale)
    save_compressed_tensors({W: st}, tmp_path / "a")
    assert_same_bits(load_compressed_tensors(tmp_path / "a")[W], st)  # exact g from the shard metadata
    # compressed-tensors' q·(s/gs) is within 2 fp32 ulps of breccia's q·(s·g); its bf16 output is breccia's
    f = safe_open(str(tmp_path / "a" / "model.safetensors"), "pt")
    ct, ours = ct_fp32_nvfp4(f), torch.from_numpy(breccia.dequantize(st))
    ulps = (ct.view(torch.int32).long() - ours.view(torch.int32).long()).abs()
    assert int(ulps.max()) <= 2 and same(ct, ours, torch.bfloat16)
    # without breccia's record (a file compressed-tensors rewrote), g is fp32(1/gs): documented, not exact
    tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    (tmp_path / "b").mkdir()
    save_file(tensors, str(tmp_path / "b" / "model.safetensors"))
    (tmp_path / "b" / "config.json").write_text((tmp_path / "a" / "config.json").read_text())
    back = load_compressed_tensors(tmp_path / "b")[W]
    gs = tensors["m.proj.weight_global_scale"].numpy()
    assert host_numpy(back.global_scale) == np.float32(1) / gs[0] != g


# ------------------------------------------------------------------------------------------------ 2. CT → breccia
def ct_checkpoint(root: Path, args: QuantizationArgs, shape: tuple[int, int], dtype: Any = torch.float32,
                  targets: tuple[str, ...] = ("proj",)) -> Any:  # fmt: skip
    """A tiny model quantized and saved by compressed-tensors' own API; returns the original weight."""
    model = torch.nn.Module()
    model.proj = torch.nn.Linear(shape[1], shape[0], bias=False)
    model.norm = torch.nn.LayerNorm(shape[0])
    with torch.no_grad():
        model.proj.weight.copy_(torch.from_numpy(make_x(shape, seed=7)))
    model.to(dtype)
    qc = QuantizationConfig(config_groups={"group_0": QuantizationScheme(targets=list(targets), weights=args)})
    apply_quantization_config(model, qc, show_progress=False)
    w, lin = model.proj.weight.data, model.proj
    gscale = None
    if args.strategy == "tensor_group":
        gscale = generate_gparam(w.amin(), w.amax())
        lin.weight_global_scale.data.copy_(gscale)
    if args.strategy in ("tensor", "channel"):
        dims = None if args.strategy == "tensor" else 1
        lo, hi = (w.amin(), w.amax()) if dims is None else (w.amin(1, keepdim=True), w.amax(1, keepdim=True))
    elif args.strategy == "block":
        bm, bk = args.block_structure
        pad = torch.nn.functional.pad(w, (0, -shape[1] % bk, 0, -shape[0] % bm))
        blocks = pad.reshape(pad.shape[0] // bm, bm, pad.shape[1] // bk, bk)
        lo, hi = blocks.amin((1, 3)), blocks.amax((1, 3))
    else:
        groups = w.unflatten(-1, (-1, args.group_size))
        lo, hi = groups.amin(-1), groups.amax(-1)
    scale, zp = calculate_qparams(lo, hi, args, global_scale=gscale)
    lin.weight_scale.data.copy_(scale.to(lin.weight_scale.dtype))
    if hasattr(lin, "weight_zero_point"):
        lin.weight_zero_point.data.copy_(zp)
    lin.quantization_status = QuantizationStatus.FROZEN
    compressor = ModelCompressor.from_pretrained_model(model)
    compressor.compress_model(model)
    root.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "model.safetensors"))
    compressor.update_config(str(root))
    return w


F8, FP8 = {"num_bits": 8, "type": "float"}, torch.float8_e4m3fn
CT_ARGS = [
    ({**F8, "strategy": "tensor"}, (37, 131)),
    ({**F8, "strategy": "channel"}, (37, 131)),
    ({**F8, "strategy": "block", "block_structure": [128, 128]}, (130, 257)),
    ({**F8, "strategy": "group", "group_size": 32, "scale_dtype": torch.uint8}, (37, 96)),
    ({"num_bits": 4, "type": "float", "strategy": "group", "group_size": 32, "scale_dtype": torch.uint8}, (37, 96)),
    ({"num_bits": 6, "type": "float", "strategy": "group", "group_size": 32, "scale_dtype": torch.uint8}, (37, 96)),
    ({"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16, "scale_dtype": FP8}, (37, 96)),
    ({"num_bits": 4, "type": "int", "strategy": "group", "group_size": 32}, (37, 96)),
    ({"num_bits": 4, "type": "int", "strategy": "group", "group_size": 32, "symmetric": False}, (37, 96)),
    ({"num_bits": 4, "type": "int", "strategy": "channel", "symmetric": False}, (37, 131)),
    ({"num_bits": 8, "type": "int", "strategy": "channel"}, (37, 131)),
    ({"num_bits": 8, "type": "int", "strategy": "group", "group_size": 32, "symmetric": False}, (37, 96)),
]
CT_CASES = [pytest.param(a, s, id="-".join(f"{v}" for v in a.values()).replace("torch.", "")) for a, s in CT_ARGS]


@pytest.mark.parametrize(("args", "shape"), CT_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32-model", "bf16-model"])
def test_breccia_reads_what_compressed_tensors_writes(args: dict[str, Any], shape: Any, dtype: Any, tmp_path: Path):
    ct_checkpoint(tmp_path / "ct", QuantizationArgs(**args), shape, dtype)
    want = ct_decompress(tmp_path / "ct")
    got = load_compressed_tensors(tmp_path / "ct")
    st = got[CTW]
    assert st.shape == shape and set(got) == {CTW, "norm.weight", "norm.bias"}
    ours = torch.from_numpy(breccia.dequantize(st))
    ct_dt = ct_dtype(st) if dtype == torch.float32 else dtype
    assert same(want[CTW], ours, ct_dt)
    # and breccia writes it back as compressed-tensors bytes compressed-tensors reads to the same values
    save_compressed_tensors(got, tmp_path / "again")
    assert same(ct_decompress(tmp_path / "again")[CTW], ours, ct_dt)


@pytest.mark.parametrize(
    ("args", "recipe", "layout"),
    [
        ({**F8, "strategy": "tensor"}, Float8CurrentScaling(), None),
        ({**F8, "strategy": "channel"}, Float8CurrentScaling(), PerChannel(-1)),
        ({**F8, "strategy": "block", "block_structure": [128, 128]}, Float8BlockScaling(block_m=128), None),
        ({"num_bits": 4, "type": "int", "strategy": "group", "group_size": 32},
         INT4Scaling(group_size=32, scale_dtype="fp32", symmetric_range="half_range"), None),
        ({"num_bits": 4, "type": "int", "strategy": "channel", "symmetric": False},
         INT4Scaling(group_size=-1, scale_dtype="fp32", symmetric=False, symmetric_range="half_range"), None),
        ({"num_bits": 8, "type": "int", "strategy": "channel"}, INT8Scaling(symmetric_range="half_range"), None),
    ],
)  # fmt: skip
def test_breccia_recipe_reproduces_compressed_tensors_bytes(args: Any, recipe: Any, layout: Any, tmp_path: Path):
    """Conformance: compressed-tensors' rule ``amax / ((qmax − qmin)/2)`` is ``symmetric_range='half_range'``."""
    shape = (130, 257) if args.get("strategy") == "block" else (37, 128)
    w = ct_checkpoint(tmp_path / "ct", QuantizationArgs(**args), shape)
    assert_same_bits(load_compressed_tensors(tmp_path / "ct")[CTW], breccia.cast(w.numpy(), recipe, layout=layout))


def test_qmax_range_is_not_compressed_tensors_rule(tmp_path: Path):
    w = ct_checkpoint(tmp_path / "ct", QuantizationArgs(num_bits=4, type="int", strategy="group", group_size=32),
                      (37, 128))  # fmt: skip
    theirs = load_compressed_tensors(tmp_path / "ct")[CTW]
    mine = breccia.cast(w.numpy(), INT4Scaling(group_size=32, scale_dtype="fp32"))
    assert host_numpy(theirs.scale).tobytes() != host_numpy(mine.scale).tobytes()


def test_class_name_targets_resolve_when_one_scheme_applies(tmp_path: Path):
    ct_checkpoint(tmp_path / "ct", QuantizationArgs(num_bits=8, type="int", strategy="channel"), (16, 40),
                  targets=("Linear",))  # fmt: skip
    got = load_compressed_tensors(tmp_path / "ct")
    assert isinstance(got[CTW], breccia.ScaledTensor) and not isinstance(got["norm.weight"], breccia.ScaledTensor)


# ------------------------------------------------------------------------------------------------ 3. round trips
@pytest.mark.parametrize(("recipe", "layout", "shape"), CASES)
def test_round_trip_is_bit_identical(recipe: Any, layout: Any, shape: Any, tmp_path: Path):
    st = cast(recipe, layout, shape)
    save_compressed_tensors({W: st, "embed.weight": make_x((5, 3))}, tmp_path)
    back = load_compressed_tensors(tmp_path)
    assert_same_bits(back[W], st)
    assert np.array_equal(back["embed.weight"], make_x((5, 3)))


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("recipe", [NVFP4BlockScaling(), INT4Scaling(group_size=-1, symmetric=False),
                                    MXFP8BlockScaling(), Float8BlockScaling(block_m=128)], ids=repr)  # fmt: skip
def test_torch_in_any_framework_out(recipe: Any, framework: str, tmp_path: Path):
    st = breccia.cast(torch.from_numpy(make_x((37, 64))), recipe)
    save_compressed_tensors({W: st, "norm.weight": torch.ones(4, dtype=torch.bfloat16)}, tmp_path)
    back = load_compressed_tensors(tmp_path, framework=framework)
    assert back[W].framework == framework
    assert_same_bits(back[W], st)
