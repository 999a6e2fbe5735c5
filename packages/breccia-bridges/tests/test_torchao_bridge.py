"""torchao 0.18 bridge, checked against the real torchao: tensors quantized by torchao cross into breccia with the
same bytes and dequantize to the same fp32 bits; breccia tensors cross into torchao and torchao's own
``.dequantize()`` agrees; both round trips are byte-identical. Shapes are awkward on purpose (M not a multiple of
128, K not a multiple of 4 scale columns, partial INT4 groups) and the shapes torchao cannot hold are refused."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from conftest import assert_same_bits

import breccia
from breccia._recipes import NVFP4_TORCHAO
from breccia.bridges import from_torchao, to_torchao

torchao = pytest.importorskip("torchao")
torch = pytest.importorskip("torch")

from torchao.prototype.gptq.api import (  # noqa: E402  (pure-torch int4 zero-point helpers; mslk is GPU-only)
    _int4_row_dequantize_zp,
    _int4_row_quantize_zp_precomputed_qparams,
)
from torchao.prototype.mx_formats.config import ScaleCalculationMode  # noqa: E402
from torchao.prototype.mx_formats.kernels import pack_uint4, unpack_uint4  # noqa: E402
from torchao.prototype.mx_formats.mx_tensor import MXTensor, QuantizeTensorToMXKwargs  # noqa: E402
from torchao.prototype.mx_formats.nvfp4_tensor import NVFP4Tensor, per_tensor_amax_to_scale  # noqa: E402
from torchao.quantization import Float8Tensor, Int4Tensor  # noqa: E402
from torchao.quantization.granularity import PerBlock, PerRow, PerTensor  # noqa: E402

E4M3, E5M2, FP4 = torch.float8_e4m3fn, torch.float8_e5m2, torch.float4_e2m1fn_x2


def weights(shape: tuple[int, ...], seed: int = 0, dtype: Any = torch.bfloat16) -> Any:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=gen) * 2.5).to(dtype)


def raw(x: Any) -> Any:
    return x.detach().reshape(-1).contiguous().cpu().view(torch.uint8)


def same_bytes(a: Any, b: Any) -> None:
    assert (a is None) == (b is None)
    if a is not None:
        assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
        assert torch.equal(raw(a), raw(b)), "bytes differ"


def same_f32(a: Any, b: Any) -> None:
    """Bit-exact, NaN- and signed-zero-aware."""
    assert a.dtype == b.dtype == torch.float32 and a.shape == b.shape
    assert torch.equal(raw(a), raw(b)), f"{int((a != b).sum())} values differ"


def same_torchao(a: Any, b: Any) -> None:
    """Every tensor and attribute torchao declares for its subclass, compared byte for byte / by equality."""
    assert type(a) is type(b) and a.shape == b.shape and a.dtype == b.dtype and a.device == b.device
    for name in [*a.tensor_data_names, *getattr(a, "optional_tensor_data_names", [])]:
        same_bytes(getattr(a, name), getattr(b, name))
    for name in [*a.tensor_attribute_names, *getattr(a, "optional_tensor_attribute_names", [])]:
        assert getattr(a, name) == getattr(b, name), name


# ------------------------------------------------------------------------------------------------- Float8Tensor
FLOAT8 = [
    pytest.param(PerTensor(), E4M3, (5, 200), breccia.Float8CurrentScaling(), breccia.PerTensor(), id="tensor"),
    pytest.param(PerTensor(), E5M2, (3, 5, 200), breccia.Float8CurrentScaling("E5M2"), breccia.PerTensor(),
                 id="tensor-e5m2-3d"),
    pytest.param(PerRow(), E4M3, (7, 200), breccia.Float8CurrentScaling(), breccia.PerChannel(-1), id="row"),
    pytest.param(PerRow(), E5M2, (2, 3, 200), breccia.Float8CurrentScaling("E5M2"), breccia.PerChannel(-1),
                 id="row-e5m2-3d"),
    pytest.param(PerBlock([1, 128]), E4M3, (7, 384), breccia.Float8BlockScaling(), breccia.PerBlockK(128), id="1x128"),
    pytest.param(PerBlock([128, 128]), E4M3, (256, 384), breccia.Float8BlockScaling(block_m=128),
                 breccia.PerBlock2D(128, 128), id="128x128"),
]  # fmt: skip


@pytest.mark.parametrize(("gran", "fp8", "shape", "recipe", "layout"), FLOAT8)
@pytest.mark.parametrize("hp", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
def test_float8_from_torchao(gran: Any, fp8: Any, shape: Any, recipe: Any, layout: Any, hp: Any) -> None:
    w = weights(shape, dtype=hp)
    t = Float8Tensor.from_hp(w, float8_dtype=fp8, granularity=gran)
    st = from_torchao(t)
    assert (st.recipe, st.layout, st.shape) == (recipe, layout, shape)
    assert st.data.data_ptr() == t.qdata.data_ptr()  # a view, not a copy
    same_f32(breccia.dequantize(st), t.dequantize(torch.float32))
    assert torch.equal(raw(breccia.dequantize(st, dtype=hp)), raw(t.dequantize()))  # and in torchao's own dtype
    same_torchao(to_torchao(st, like=t), t)
    plain = to_torchao(st)
    same_bytes(plain.qdata, t.qdata)
    same_bytes(plain.scale, t.scale)
    assert plain.block_size == t.block_size and plain.dtype == torch.float32
    if hp == torch.float32:  # the recipe the bridge names re-creates torchao's bytes from the same weights
        assert_same_bits(breccia.cast(w, st.recipe, layout=st.layout), st)


def test_float8_transposed_view() -> None:
    t = Float8Tensor.from_hp(weights((6, 200), dtype=torch.float32), granularity=PerRow()).t()
    st = from_torchao(t)
    assert st.layout == breccia.PerChannel(-2) and st.shape == (200, 6)
    same_f32(breccia.dequantize(st), t.dequantize(torch.float32))


def test_float8_recipe_override_picks_among_identical_bits() -> None:
    t = Float8Tensor.from_hp(weights((5, 128)), granularity=PerRow())  # per-row with K = 128 is also 1×128
    st = from_torchao(t, recipe=breccia.Float8BlockScaling(power_of_2_scales=False))
    assert st.layout == breccia.PerBlockK(128) and st.scale.data_ptr() == t.scale.data_ptr()
    same_f32(breccia.dequantize(st), t.dequantize(torch.float32))
    tt = Float8Tensor.from_hp(weights((5, 200)), granularity=PerTensor())
    assert from_torchao(tt, recipe=breccia.DelayedScaling()).recipe == breccia.DelayedScaling()
    with pytest.raises(breccia.RecipeError, match="does not describe the bits"):
        from_torchao(tt, recipe=breccia.Float8CurrentScaling("E5M2"))
    with pytest.raises(breccia.RecipeError, match="does not fit"):
        from_torchao(t, recipe=breccia.Float8BlockScaling(block_k=64))


BRECCIA_FP8 = [
    pytest.param(breccia.Float8CurrentScaling(), None, (5, 200), id="tensor"),
    pytest.param(breccia.Float8CurrentScaling("E5M2"), breccia.PerChannel(-1), (5, 200), id="row-e5m2"),
    pytest.param(breccia.Float8CurrentScaling(), breccia.PerChannel(-2), (6, 200), id="column"),
    pytest.param(breccia.DelayedScaling("E5M2"), None, (2, 3, 70), id="delayed-e5m2"),
    pytest.param(breccia.Float8BlockScaling(power_of_2_scales=True), None, (3, 256), id="1x128-pow2"),
    pytest.param(breccia.Float8BlockScaling(block_m=128), None, (256, 128), id="128x128"),
]


@pytest.mark.parametrize(("recipe", "layout", "shape"), BRECCIA_FP8)
def test_float8_to_torchao(recipe: Any, layout: Any, shape: Any) -> None:
    st = breccia.cast(weights(shape, 1, torch.float32), recipe, layout=layout)
    t = to_torchao(st)
    assert isinstance(t, Float8Tensor) and t.device == st.data.device and t.dtype == torch.float32
    same_f32(t.dequantize(torch.float32), breccia.dequantize(st))
    assert_same_bits(from_torchao(t, recipe=recipe), st)
    assert to_torchao(st, dtype=torch.bfloat16).dequantize().dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("gran", "recipe", "shape"),
    [(PerBlock([1, 128]), breccia.Float8BlockScaling(), (7, 200)),
     (PerBlock([128, 128]), breccia.Float8BlockScaling(block_m=128), (130, 256))],
    ids=["1x128-K200", "128x128-M130"],
)  # fmt: skip
def test_float8_partial_blocks_are_refused(gran: Any, recipe: Any, shape: Any) -> None:
    w = weights(shape, dtype=torch.float32)
    with pytest.raises(AssertionError, match="divisible"):  # torchao has no partial blocks ...
        Float8Tensor.from_hp(w, granularity=gran)
    with pytest.raises(breccia.LayoutError, match="no partial blocks"):  # ... so breccia's cannot cross
        to_torchao(breccia.cast(w, recipe))


# --------------------------------------------------------------------------------------------------- Int4Tensor
def torchao_int4(w: Any, g: int, rule: str) -> tuple[Any, Any]:
    """An Int4Tensor built from torchao's own pure-torch zero-point quantizer (``Int4Tensor.from_hp`` needs the
    GPU-only mslk package); returns it and torchao's reference dequantization ``_int4_row_dequantize_zp``."""
    if w.dim() == 3:
        parts = [torchao_int4(x, g, rule) for x in w]
        t0 = parts[0][0]
        t = Int4Tensor(torch.stack([p[0].qdata for p in parts]), torch.stack([p[0].scale for p in parts]),
                       torch.stack([p[0].zero_point for p in parts]), [1, *t0.block_size], w.shape)  # fmt: skip
        return t, torch.stack([p[1] for p in parts])
    chunks = torch.split(w.float(), g, dim=-1)
    lo = torch.stack([c.amin(-1) for c in chunks]).clamp(max=0)  # (groups, N), torchao's scale layout
    hi = torch.stack([c.amax(-1) for c in chunks]).clamp(min=0)
    if rule == "symmetric":  # zero point 0, as the fp8-activation Int4Tensor path
        s, z = (torch.maximum(-lo, hi) / 8).clamp(min=1e-6), torch.zeros_like(lo)
    elif rule == "exact":  # integer zero points on power-of-two scales: z = −zp·s exactly
        s = torch.exp2(torch.ceil(torch.log2(((hi - lo) / 15).clamp(min=1e-6))))
        z = -(-8 - torch.round(lo / s)) * s + 0.0  # + 0.0: no -0.0 offsets
    else:  # torchao / mslk int4_row_quantize_zp: s = (max − min)/15, z = min + 8·s (a float offset)
        s = ((hi - lo).clamp(min=1e-6)) / 15
        z = lo + 8 * s
    s, z = s.to(w.dtype), z.to(w.dtype)
    codes = _int4_row_quantize_zp_precomputed_qparams(w, s.float(), z.float(), g)
    qdata = pack_uint4((codes & 0xF).to(torch.uint8)).view(torch.int8)
    t = Int4Tensor(qdata, s, z, [1, g], w.shape)
    return t, _int4_row_dequantize_zp(codes, s, z, g)


def int4_codes(t: Any) -> Any:
    """Signed codes of an Int4Tensor, unpacked with torchao's (low nibble first) unpacker."""
    u = unpack_uint4(t.qdata.view(torch.uint8)).to(torch.int16)
    return ((u ^ 8) - 8).to(torch.int8)


@pytest.mark.parametrize(("shape", "g"), [((6, 200), 64), ((2, 4, 96), 32)], ids=["partial-group", "3d"])
@pytest.mark.parametrize("rule", ["symmetric", "exact"])
def test_int4_from_torchao(shape: Any, g: int, rule: str) -> None:
    t, ref = torchao_int4(weights(shape), g, rule)
    st = from_torchao(t)
    assert st.recipe == breccia.INT4Scaling(group_size=g, scale_dtype="bf16", symmetric=rule == "symmetric")
    assert st.layout == breccia.PerBlockK(g) and st.shape == shape
    same_f32(breccia.dequantize(st), ref.float())
    same_torchao(to_torchao(st, like=t), t)
    same_torchao(to_torchao(st), t)  # Int4Tensor's dtype is its scale dtype: nothing to choose


def test_int4_float_zero_point_is_refused_not_rounded() -> None:
    t, _ = torchao_int4(weights((6, 128)), 64, "minmax")
    with pytest.raises(breccia.FormatError, match=r"not an integer.*INT4Scaling\(symmetric=False\)"):
        from_torchao(t)


def test_int4_recipe_override() -> None:
    t, ref = torchao_int4(weights((6, 200)), 64, "symmetric")
    st = from_torchao(t, recipe=breccia.INT4Scaling(group_size=64, scale_dtype="bf16", symmetric=False))
    assert not bool(st.zero_point.any())
    same_f32(breccia.dequantize(st), ref.float())
    sym = breccia.INT4Scaling(group_size=64, scale_dtype="bf16", symmetric_range="half_range")
    assert from_torchao(t, recipe=sym).recipe == sym
    for bad in (breccia.INT4Scaling(group_size=32, scale_dtype="bf16"), breccia.INT4Scaling(group_size=64)):
        with pytest.raises(breccia.RecipeError):
            from_torchao(t, recipe=bad)
    exact, _ = torchao_int4(weights((6, 200)), 64, "exact")
    with pytest.raises(breccia.FormatError, match="symmetric"):
        from_torchao(exact, recipe=sym)


def torchao_int4_dequant(t: Any) -> Any:
    """torchao's reference ``_int4_row_dequantize_zp`` on the Int4Tensor's own codes, scales and zeros, fed in
    float64: it computes ``(q + 8)·s + (z − 8·s)``, which in fp32 rounds twice when the scales are fp32 (exact for
    bf16 / fp16 scales); in float64 every step is exact, so ``.float()`` is the correctly rounded value."""
    codes, g = int4_codes(t), t.block_size[-1]
    flat = zip(codes.reshape(-1, *codes.shape[-2:]), t.scale.double().reshape(-1, *t.scale.shape[-2:]),
               t.zero_point.double().reshape(-1, *t.zero_point.shape[-2:]))  # fmt: skip
    return torch.stack([_int4_row_dequantize_zp(c, s, z, g) for c, s, z in flat]).reshape(t.shape).float()


@pytest.mark.parametrize(
    ("recipe", "shape"),
    [(breccia.INT4Scaling(group_size=64, scale_dtype="bf16"), (6, 200)),
     (breccia.INT4Scaling(group_size=32, scale_dtype="fp16", symmetric_range="half_range"), (2, 3, 96)),
     (breccia.INT4Scaling(group_size=-1, scale_dtype="fp32"), (5, 70))],
    ids=["bf16-g64", "fp16-3d", "fp32-per-row"],
)  # fmt: skip
def test_int4_to_torchao(recipe: Any, shape: Any) -> None:
    st = breccia.cast(weights(shape, 2, torch.float32), recipe)
    t = to_torchao(st)
    assert isinstance(t, Int4Tensor) and t.dtype == st.scale.dtype and not bool(t.zero_point.any())
    same_f32(torchao_int4_dequant(t), breccia.dequantize(st))
    assert_same_bits(from_torchao(t, recipe=recipe), st)


def test_int4_asymmetric_to_torchao_only_when_exact() -> None:
    """torchao stores ``z = −zp·s`` in the scale dtype: exact for the small zero points of roughly centred weights,
    inexact (so refused) once ``zp·s`` needs more mantissa bits than bf16 has."""
    recipe = breccia.INT4Scaling(group_size=64, scale_dtype="bf16", symmetric=False)

    def exact(st: Any) -> bool:
        product = -st.zero_point.double() * st.scale.double()
        return bool(torch.equal(product.to(torch.bfloat16).double(), product))

    st = breccia.cast(weights((6, 200), 3, torch.float32), recipe)
    assert exact(st) and bool(st.zero_point.any())
    t = to_torchao(st)
    same_f32(torchao_int4_dequant(t), breccia.dequantize(st))
    assert_same_bits(from_torchao(t), st)
    skewed = breccia.cast(weights((6, 200), 3, torch.float32) + 3.0, recipe)
    assert not exact(skewed)
    with pytest.raises(breccia.FormatError, match="not exact"):
        to_torchao(skewed)


def test_int4_unrepresentable_in_torchao() -> None:
    odd = breccia.cast(weights((4, 65), dtype=torch.float32), breccia.INT4Scaling(group_size=32))
    with pytest.raises(breccia.LayoutError, match="odd"):
        to_torchao(odd)
    unsigned = breccia.INT4Scaling(group_size=32, signed=False, symmetric=False)
    with pytest.raises(breccia.RecipeError, match=r"INT4Scaling\(signed=True\)"):
        to_torchao(breccia.cast(weights((4, 64), dtype=torch.float32), unsigned))


# ------------------------------------------------------------------------------------------------------ MXTensor
MX = [
    pytest.param(E4M3, breccia.MXFP8BlockScaling, {}, id="mxfp8-e4m3"),
    pytest.param(E5M2, breccia.MXFP8BlockScaling, {"fp8_format": "E5M2"}, id="mxfp8-e5m2"),
    pytest.param(FP4, breccia.MXFP4BlockScaling, {}, id="mxfp4"),
    pytest.param("fp6_e2m3", breccia.MXFP6BlockScaling, {"element": "E2M3"}, id="mxfp6-e2m3"),
    pytest.param("fp6_e3m2", breccia.MXFP6BlockScaling, {"element": "E3M2"}, id="mxfp6-e3m2"),
]
MODES = [ScaleCalculationMode.FLOOR, ScaleCalculationMode.RCEIL]


@pytest.mark.parametrize(("elem", "cls", "kw"), MX)
@pytest.mark.parametrize("mode", MODES, ids=["floor", "rceil"])
@pytest.mark.parametrize("swizzled", [False, True], ids=["compact", "swizzled"])
def test_mx_from_torchao(elem: Any, cls: Any, kw: Any, mode: Any, swizzled: bool) -> None:
    w = weights((130, 96), dtype=torch.float32)  # M pads to 256 rows, K/32 = 3 pads to 4 scale columns
    act = QuantizeTensorToMXKwargs(elem_dtype=elem, scaling_mode=mode, is_swizzled_scales=swizzled)
    t = MXTensor.to_mx(w, elem, scaling_mode=mode, act_quant_kwargs=act, is_swizzled_scales=swizzled)
    st = from_torchao(t)
    assert st.recipe == cls(**kw, scale_rounding=mode.value) and st.layout == breccia.PerBlockK(32)
    assert st.scale.shape == (130, 3)
    same_f32(breccia.dequantize(st), t.dequantize(torch.float32))
    same_torchao(to_torchao(st, like=t), t)
    assert_same_bits(breccia.cast(w, st.recipe), st)  # the recorded rounding reproduces torchao's bytes
    bare = MXTensor.to_mx(w, elem, scaling_mode=mode, is_swizzled_scales=swizzled)  # records no rounding
    assert from_torchao(bare).recipe == cls(**kw)  # breccia's default (rceil); the bits are the same
    assert_same_bits(from_torchao(bare, recipe=cls(**kw, scale_rounding=mode.value)), from_torchao(t))


def test_mx_3d_and_bf16() -> None:
    w = weights((2, 3, 64))
    t = MXTensor.to_mx(w, FP4)
    st = from_torchao(t)
    assert st.shape == (2, 3, 64) and st.scale.shape == (2, 3, 2)
    same_f32(breccia.dequantize(st), t.dequantize(torch.float32))
    same_torchao(to_torchao(st, like=t), t)


@pytest.mark.parametrize(("elem", "cls", "kw"), MX)
@pytest.mark.parametrize("rounding", ["rceil", "floor"])
@pytest.mark.parametrize("swizzled", [False, True], ids=["compact", "swizzled"])
def test_mx_to_torchao(elem: Any, cls: Any, kw: Any, rounding: str, swizzled: bool) -> None:
    st = breccia.cast(weights((130, 96), 4, torch.float32), cls(**kw, scale_rounding=rounding))
    t = to_torchao(st, swizzled_scales=swizzled)
    assert isinstance(t, MXTensor) and t.elem_dtype == elem and t.is_swizzled_scales == swizzled
    assert t.act_quant_kwargs.scaling_mode.value == rounding
    same_f32(t.dequantize(torch.float32), breccia.dequantize(st))
    assert_same_bits(from_torchao(t), st)


def test_mx_from_numpy_scaled_tensor() -> None:
    x = np.random.default_rng(5).standard_normal((4, 64)).astype(np.float32)
    st = breccia.cast(x, breccia.MXFP8BlockScaling())
    t = to_torchao(st)
    assert breccia.dequantize(from_torchao(t)).numpy().tobytes() == breccia.dequantize(st).tobytes()


def test_mx_partial_block_refused() -> None:
    st = breccia.cast(weights((4, 70), dtype=torch.float32), breccia.MXFP8BlockScaling())
    with pytest.raises(breccia.LayoutError, match="no partial blocks"):
        to_torchao(st)


# --------------------------------------------------------------------------------------------------- NVFP4Tensor
@pytest.mark.parametrize("two_level", [True, False], ids=["per-tensor-scale", "one-level"])
@pytest.mark.parametrize("swizzled", [False, True], ids=["compact", "swizzled"])
@pytest.mark.parametrize("hp", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
def test_nvfp4_from_torchao(two_level: bool, swizzled: bool, hp: Any) -> None:
    w = weights((130, 48), dtype=hp)  # K/16 = 3 pads to 4 scale columns, M to 256 rows
    pts = per_tensor_amax_to_scale(w.abs().max().float()) if two_level else None
    t = NVFP4Tensor.to_nvfp4(w, per_tensor_scale=pts, is_swizzled_scales=swizzled)
    st = from_torchao(t)
    assert st.recipe == dataclasses.replace(NVFP4_TORCHAO, per_tensor_scale=two_level)
    assert st.scale.shape == (130, 3) and (st.global_scale is pts)
    same_f32(breccia.dequantize(st), t.dequantize(torch.float32))
    same_torchao(to_torchao(st, like=t), t)
    assert_same_bits(breccia.cast(w.float(), st.recipe), st)  # torchao's rules, named by the bridge


@pytest.mark.parametrize(
    "recipe", [breccia.NVFP4BlockScaling(), breccia.NVFP4BlockScaling(per_tensor_scale=False), NVFP4_TORCHAO]
)
@pytest.mark.parametrize("swizzled", [False, True], ids=["compact", "swizzled"])
def test_nvfp4_to_torchao(recipe: Any, swizzled: bool) -> None:
    st = breccia.cast(weights((130, 48), 6, torch.float32), recipe)
    t = to_torchao(st, swizzled_scales=swizzled, dtype=torch.bfloat16)
    assert isinstance(t, NVFP4Tensor) and t.dtype == torch.bfloat16
    same_f32(t.dequantize(torch.float32), breccia.dequantize(st))
    assert_same_bits(from_torchao(t, recipe=recipe), st)


def test_nvfp4_unrepresentable() -> None:
    w = weights((2, 16, 32))
    per_expert = per_tensor_amax_to_scale(w.abs().amax(dim=(1, 2)).float()).view(2, 1, 1)
    with pytest.raises(breccia.FormatError, match="per_tensor_scale"):
        from_torchao(NVFP4Tensor.to_nvfp4(w, per_tensor_scale=per_expert))
    st = breccia.cast(weights((32, 32), dtype=torch.float32), breccia.NVFP4BlockScaling(block_m=16))
    with pytest.raises(breccia.RecipeError, match="NVFP4BlockScaling"):
        to_torchao(st)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_device_is_preserved_on_cuda() -> None:
    w = weights((130, 96), dtype=torch.float32).cuda()
    for t in (Float8Tensor.from_hp(w, granularity=PerRow()),
              MXTensor.to_mx(w, FP4, is_swizzled_scales=True),
              NVFP4Tensor.to_nvfp4(w, per_tensor_scale=per_tensor_amax_to_scale(w.abs().max()))):  # fmt: skip
        st = from_torchao(t)
        assert st.data.device == w.device and st.scale.device == w.device
        same_f32(breccia.dequantize(st), t.dequantize(torch.float32))
        same_torchao(to_torchao(st, like=t), t)
    st = breccia.cast(w, breccia.INT4Scaling(group_size=32, scale_dtype="bf16"))
    assert to_torchao(st).qdata.device == w.device
