"""TransformerEngine bridge. TE's torch part only builds against CUDA, so most tests build objects that carry exactly
TE's attribute names, dtypes and shapes (one small class per TE class, named like it), with TE's padding, transposes
and cuBLAS swizzle written out here in numpy from TE's source (``get_scale_shape``, ``gemm_swizzled_scale_idx``,
the dequantize kernels) — independent of the bridge's layout code. ``TestRealTransformerEngine`` runs against the
real library where it is installed (CUDA)."""

from __future__ import annotations

import enum
import importlib.util
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from conftest import assert_same_bits

import breccia
from breccia.bridges import (
    from_transformer_engine,
    swizzle_scales,
    te_buffers,
    to_transformer_engine,
    unswizzle_scales,
)
from breccia.bridges._arrays import host_numpy

torch = pytest.importorskip("torch")
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


class Float8Tensor:
    """Stands for TE's Float8Tensor: only its attributes."""


class MXFP8Tensor:
    """Stands for TE's MXFP8Tensor."""


class Float8BlockwiseQTensor:
    """Stands for TE's Float8BlockwiseQTensor."""


class NVFP4Tensor:
    """Stands for TE's NVFP4Tensor."""


class DType(enum.IntEnum):
    """TE's ``transformer_engine.pytorch.DType`` values (transformer_engine.h)."""

    kFloat8E4M3 = 7
    kFloat8E5M2 = 8
    kFloat4E2M1 = 10


def rup(n: int, m: int) -> int:
    return -(-n // m) * m


def pad(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.zeros((rows, cols), a.dtype)
    out[: a.shape[0], : a.shape[1]] = a
    return out


def swz_index(i: np.ndarray, j: np.ndarray, cols: int) -> np.ndarray:
    """TE ``gemm_swizzled_scale_idx(i, j, num_tiles_X)``: 128×4 tiles row-major, (i%32)·16 + (i%128//32)·4 + j%4."""
    return ((i // 128) * (cols // 4) + j // 4) * 512 + (i % 32) * 16 + ((i % 128) // 32) * 4 + j % 4


def hand_swizzle(lin: np.ndarray) -> np.ndarray:
    i, j = np.indices(lin.shape)
    out = np.empty(lin.size, lin.dtype)
    out[swz_index(i, j, lin.shape[1]).ravel()] = lin.ravel()
    return out.reshape(lin.shape)


def u8(a: Any) -> np.ndarray:
    return host_numpy(a).view(np.uint8)


def hand(want: breccia.ScaledTensor, lead: tuple[int, ...], usage: str, swizzle: bool, amax: float = 0.0) -> Any:
    """The TE object holding ``want`` (a cast of x, or of x.reshape(-1, K).T for columnwise), laid out by hand."""
    r, kind, col = want.recipe, type(want.recipe).__name__, usage == "columnwise"
    q, s = host_numpy(want.data), host_numpy(want.scale)
    k, p = (want.shape[0], "_columnwise") if col else (want.shape[-1], "_rowwise")  # k: the TE tensor's last dim
    attrs: dict[str, Any] = {f"_{u}_{b}": None for u in ("rowwise", "columnwise") for b in ("data", "scale_inv")}
    if kind in ("DelayedScaling", "Float8CurrentScaling"):  # columnwise: the transpose cache, (K, *lead)
        obj, attrs = Float8Tensor(), {"_data": None, "_transpose": None, "_scale_inv": s.reshape(1)}
        attrs["_transpose" if col else "_data"] = u8(q).reshape(k, *lead) if col else u8(q)
    elif kind == "MXFP8BlockScaling":
        obj, sc = MXFP8Tensor(), u8(s).reshape(-1, s.shape[-1])
        lin = pad(sc, rup(sc.shape[0], 128), rup(sc.shape[1], 4))  # [m, k//32]; columnwise [k, m//32]
        if col:  # data untransposed; scales stored (roundup(M/32, 4), roundup(K, 128)) as [m//32, k]
            attrs[f"{p}_data"] = np.ascontiguousarray(u8(q).T).reshape(*lead, k)
            attrs[f"{p}_scale_inv"] = hand_swizzle(lin).reshape(lin.shape[::-1]) if swizzle else lin.T
        else:
            attrs[f"{p}_data"], attrs[f"{p}_scale_inv"] = u8(q), hand_swizzle(lin) if swizzle else lin
    elif kind == "Float8BlockScaling":
        obj, rows = Float8BlockwiseQTensor(), int(np.prod(q.shape[:-1]))
        if r.block_m == 1:  # 1×128 scales stored transposed: (ceil(C/128), roundup(R, 4)) as [c//128, r]
            attrs[f"{p}_scale_inv"] = pad(s.reshape(rows, -1).T, s.shape[-1], rup(rows, 4))
        else:  # 128×128: (ceil(R/128), roundup(ceil(C/128), 4)) over the flattened rows
            attrs[f"{p}_scale_inv"] = pad(s.reshape(-1, s.shape[-1]), -(-rows // 128), rup(s.shape[-1], 4))
        attrs[f"{p}_data"], attrs["_is_2D_scaled"] = u8(q).reshape(k, *lead) if col else u8(q), r.block_m == 128
    else:  # NVFP4: columnwise data is (K, M/2), scales laid out as rowwise ones of that matrix
        obj, sc = NVFP4Tensor(), u8(s).reshape(-1, s.shape[-1])
        lin = pad(sc, rup(sc.shape[0], 128), rup(sc.shape[1], 4))
        attrs.update({f"{p}_data": q, f"{p}_scale_inv": hand_swizzle(lin) if swizzle else lin})
        attrs.update(_amax_rowwise=None, _amax_columnwise=None, _fp4_dtype=DType.kFloat4E2M1)
        attrs.update({f"_amax{p}": np.array([amax], np.float32), "_row_scaled_nvfp4": False, "_nvfp4_e4m3_max": 448})
    if kind != "NVFP4BlockScaling":
        attrs["_fp8_dtype"] = DType[f"kFloat8{r.element.name}"]
    if kind in ("MXFP8BlockScaling", "NVFP4BlockScaling"):
        attrs["_with_gemm_swizzled_scales"] = swizzle
    for name, v in attrs.items():
        is_array = isinstance(v, np.ndarray)
        setattr(obj, name, torch.from_numpy(np.ascontiguousarray(v)).to(want.data.device) if is_array else v)
    return obj


def te_dequant(obj: Any, usage: str) -> np.ndarray:
    """TE's dequantize formulas, reading the TE attributes directly: ``(R, C)`` of the usage's operand view."""
    col = usage == "columnwise"
    if isinstance(obj, Float8Tensor):
        d = host_numpy(obj._transpose if col else obj._data)
        fp8 = ml_dtypes.float8_e4m3fn if obj._fp8_dtype == DType.kFloat8E4M3 else ml_dtypes.float8_e5m2
        x = d.view(fp8).astype(np.float32)
        return (x.reshape(d.shape[0], -1) if col else x.reshape(-1, d.shape[-1])) * host_numpy(obj._scale_inv)[0]
    p = "_columnwise" if col else "_rowwise"
    d, buf = host_numpy(getattr(obj, f"{p}_data")), host_numpy(getattr(obj, f"{p}_scale_inv"))
    if isinstance(obj, NVFP4Tensor):
        codes = np.stack([d & 15, d >> 4], -1).reshape(d.shape[0] if col else -1, 2 * d.shape[-1])
        vals = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6] * 2, np.float32) * np.repeat([1, -1], 8).astype(np.float32)
        i, j = np.indices(codes.shape)
        idx = swz_index(i, j // 16, buf.shape[1]) if obj._with_gemm_swizzled_scales else i * buf.shape[1] + j // 16
        s8 = buf.reshape(-1)[idx].view(ml_dtypes.float8_e4m3fn).astype(np.float32)
        amax = host_numpy(getattr(obj, f"_amax{p}"))[0]
        return vals[codes] * ((s8 * amax) * np.float32(1 / 2688))  # TE: scale · amax · (1 / (6·448)) in fp32
    fp8 = ml_dtypes.float8_e4m3fn if obj._fp8_dtype == DType.kFloat8E4M3 else ml_dtypes.float8_e5m2
    x = d.view(fp8).astype(np.float32)
    if col and isinstance(obj, MXFP8Tensor):  # columnwise MXFP8 data stays (M, K)
        x = x.reshape(-1, x.shape[-1]).T
    else:
        x = x.reshape(x.shape[0], -1) if col else x.reshape(-1, x.shape[-1])
    i, j = np.indices(x.shape)
    if isinstance(obj, MXFP8Tensor):
        if obj._with_gemm_swizzled_scales:
            idx = swz_index(i, j // 32, buf.size // rup(x.shape[0], 128))
        else:
            idx = (j // 32) * buf.shape[1] + i if col else i * buf.shape[1] + j // 32
        return x * np.ldexp(np.float32(1), buf.reshape(-1)[idx].astype(np.int32) - 127)
    sc = buf[j // 128, i] if not obj._is_2D_scaled else buf[i // 128, j // 128]
    return x * sc


def make_x(shape: tuple[int, ...], seed: int, device: str = "cpu") -> Any:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * torch.rand(shape[-1], generator=g) * 5).to(device)


FP8 = [breccia.DelayedScaling(), breccia.Float8CurrentScaling("E5M2")]
MX = [breccia.MXFP8BlockScaling(), breccia.MXFP8BlockScaling("E5M2")]
BLOCK = [breccia.Float8BlockScaling(), breccia.Float8BlockScaling(block_m=128)]
# awkward shapes: M not a multiple of 128, K not a multiple of 16 / 32 / 128, N-D (TE flattens leading axes)
CASES = [
    *[(r, sh, False) for r in FP8 for sh in [(160, 96), (3, 200), (2, 5, 64)]],
    *[(r, sh, swz) for r in MX for sh in [(160, 96), (33, 40), (2, 80, 64)] for swz in (False, True)],
    *[(BLOCK[0], sh, False) for sh in [(160, 96), (3, 200), (2, 5, 300)]],
    *[(BLOCK[1], sh, False) for sh in [(160, 96), (3, 200), (2, 128, 40)]],
    *[(breccia.NVFP4BlockScaling(), sh, swz) for sh in [(160, 96), (6, 200), (2, 70, 48)] for swz in (False, True)],
]


def case_id(case: Any) -> str:
    r, sh, swz = case
    extra = getattr(r, "fp8_format", "") + str(getattr(r, "block_m", "")) + ("-swizzled" if swz else "")
    return f"{r.name}-{extra}-{'x'.join(map(str, sh))}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("usage", ["rowwise", "columnwise"])
@pytest.mark.parametrize("device", DEVICES)
def test_layouts_match_te_by_hand(case: Any, usage: str, device: str) -> None:
    recipe, shape, swizzle = case
    x = make_x(shape, 1, device)
    lead, k = shape[:-1], shape[-1]
    want = breccia.cast(x if usage == "rowwise" else x.reshape(-1, k).T.contiguous(), recipe)
    obj = hand(want, lead, usage, swizzle, amax=float(x.abs().max()))
    got = from_transformer_engine(obj, usage=usage, recipe=recipe)
    assert_same_bits(got, want)  # TE layout → breccia: bit-identical to breccia's own cast
    assert got.data.device == x.device and got.scale.device == x.device
    bufs = te_buffers(want, usage=usage, swizzle=swizzle)  # breccia → TE: every attribute byte-identical
    for name, value in bufs.items():
        assert value.device == x.device, name
        ref, ours = host_numpy(getattr(obj, name)), host_numpy(value)
        if usage == "columnwise" and len(shape) > 2 and name.endswith(("_data", "_transpose")):
            ours = ours.reshape(ref.shape)  # the (K, M) operand carries no leading dims: TE's N-D view of them
        assert ours.shape == ref.shape and ours.tobytes() == ref.tobytes(), name
    te = te_dequant(obj, usage)
    ours = host_numpy(breccia.dequantize(got)).reshape(te.shape)
    if isinstance(recipe, breccia.NVFP4BlockScaling):  # TE rounds s8·amax, then ·fl(1/2688): ≤ 2 fp32 ulps apart
        np.testing.assert_array_max_ulp(ours, te, maxulp=2)
    else:
        assert ours.tobytes() == te.tobytes()


@pytest.mark.parametrize("shape", [(128, 4), (256, 8), (384, 12)])
def test_swizzle_inverse_and_formula(shape: tuple[int, int]) -> None:
    tiles = np.random.default_rng(shape[0]).integers(0, 256, shape, dtype=np.uint8)
    assert np.array_equal(swizzle_scales(tiles), hand_swizzle(tiles))
    assert np.array_equal(unswizzle_scales(swizzle_scales(tiles)), tiles)
    assert np.array_equal(swizzle_scales(unswizzle_scales(tiles)), tiles)
    t = torch.from_numpy(tiles)
    assert torch.equal(unswizzle_scales(swizzle_scales(t)), t)
    assert np.array_equal(swizzle_scales(t).numpy(), hand_swizzle(tiles))
    with pytest.raises(breccia.LayoutError, match="rows % 128"):
        swizzle_scales(tiles[:100])


def test_nvfp4_global_scale_is_amax_over_2688() -> None:
    x = make_x((32, 64), 3)
    want = breccia.cast(x, breccia.NVFP4BlockScaling())
    amax = np.float32(x.abs().max())
    assert host_numpy(want.global_scale) == amax / np.float32(2688)  # breccia's own definition
    obj = hand(want, (32,), "rowwise", False, amax=float(amax))
    back = host_numpy(te_buffers(want)["_amax_rowwise"])[0]  # an amax whose amax / 2688 is g exactly
    assert back / np.float32(2688) == host_numpy(want.global_scale) and abs(back - amax) <= np.spacing(amax)
    obj._nvfp4_e4m3_max = 256  # 4over6 tensors dequantize with amax / (256·6)
    assert host_numpy(from_transformer_engine(obj).global_scale) == amax / np.float32(1536)
    rng = np.random.default_rng(0)
    gs = rng.random(4000).astype(np.float32) * np.float32(0.01)
    cands = (gs * np.float32(2688)).view(np.int32)[:, None] + np.arange(-3, 4, dtype=np.int32)
    bad = gs[~((cands.view(np.float32) / np.float32(2688)) == gs[:, None]).any(1)][0]  # no fp32 amax gives it
    st = breccia.from_buffer(
        want.data, want.scale, want.recipe, global_scale=torch.tensor(float(bad), dtype=torch.float32)
    )
    with pytest.raises(breccia.FormatError, match="global_scale"):
        te_buffers(st)
    one_level = breccia.cast(x, breccia.NVFP4BlockScaling(per_tensor_scale=False))
    assert host_numpy(te_buffers(one_level)["_amax_rowwise"])[0] == 2688  # g = 1: TE's dequant is s8 exactly


def test_recipe_inference_and_override() -> None:
    x = make_x((16, 256), 4)
    st = breccia.cast(x, breccia.Float8CurrentScaling())
    obj = hand(st, (16,), "rowwise", False)
    obj._fp8_dtype = "DType.kFloat8E4M3"  # the enum's name is accepted too
    assert from_transformer_engine(obj).recipe == breccia.DelayedScaling()  # no quantizer: the seed's default
    obj._quantizer = type("Float8CurrentScalingQuantizer", (), {"force_pow_2_scales": False, "amax_epsilon": 0.0})()
    assert from_transformer_engine(obj).recipe == breccia.Float8CurrentScaling()
    with pytest.raises(breccia.RecipeError, match="powers of 2"):
        from_transformer_engine(obj, recipe=breccia.Float8CurrentScaling(power_of_2_scales=True))
    with pytest.raises(breccia.RecipeError, match="does not store"):
        from_transformer_engine(obj, recipe=breccia.MXFP8BlockScaling())
    pow2 = breccia.cast(x, breccia.Float8BlockScaling(power_of_2_scales=True))
    assert from_transformer_engine(hand(pow2, (16,), "rowwise", False)).recipe.power_of_2_scales  # TE's default
    plain = breccia.cast(x, breccia.Float8BlockScaling())
    assert not from_transformer_engine(hand(plain, (16,), "rowwise", False)).recipe.power_of_2_scales
    mx = hand(breccia.cast(x, breccia.MXFP8BlockScaling()), (16,), "rowwise", False)
    floor = breccia.MXFP8BlockScaling(scale_rounding="floor")  # same bits, other rounding rule: allowed
    assert from_transformer_engine(mx, recipe=floor).recipe == floor


def test_float8_columnwise_without_transpose_cache() -> None:
    x = make_x((6, 40), 5)
    obj = hand(breccia.cast(x, breccia.DelayedScaling()), (6,), "rowwise", False)  # Blackwell: _transpose is None
    assert_same_bits(
        from_transformer_engine(obj, usage="columnwise"), breccia.cast(x.T.contiguous(), breccia.DelayedScaling())
    )


def _broken(change: Any, recipe: Any = None, usage: str = "rowwise") -> Any:
    st = breccia.cast(make_x((20, 64), 6), recipe or breccia.MXFP8BlockScaling())
    obj = hand(st, (20,) if usage == "rowwise" else (64,), usage, False, amax=1.0)
    change(obj)
    return obj


@pytest.mark.parametrize(
    ("change", "recipe", "attr"),
    [
        (lambda o: delattr(o, "_rowwise_scale_inv"), None, "_rowwise_scale_inv"),
        (lambda o: setattr(o, "_rowwise_scale_inv", o._rowwise_scale_inv[:20, :2]), None, "_rowwise_scale_inv"),
        (lambda o: setattr(o, "_rowwise_scale_inv", o._rowwise_scale_inv.float()), None, "_rowwise_scale_inv"),
        (lambda o: setattr(o, "_rowwise_data", o._rowwise_data.numpy()), None, "_rowwise_data"),
        (lambda o: setattr(o, "_fp8_dtype", "kFloat16"), None, "_fp8_dtype"),
        (lambda o: setattr(o, "_with_gemm_swizzled_scales", 1), None, "_with_gemm_swizzled_scales"),
        (lambda o: setattr(o, "_scale_inv", torch.ones(2)), breccia.DelayedScaling(), "_scale_inv"),
        (lambda o: setattr(o, "_data", None), breccia.DelayedScaling(), "_data"),
        (lambda o: delattr(o, "_is_2D_scaled"), breccia.Float8BlockScaling(), "_is_2D_scaled"),
        (
            lambda o: setattr(o, "_rowwise_scale_inv", torch.ones(1, 24)),
            breccia.Float8BlockScaling(),
            "_rowwise_scale_inv",
        ),
        (lambda o: setattr(o, "_data_format", "COMPACT"), breccia.Float8BlockScaling(), "_data_format"),
        (lambda o: setattr(o, "_row_scaled_nvfp4", True), breccia.NVFP4BlockScaling(), "_row_scaled_nvfp4"),
        (lambda o: setattr(o, "_amax_rowwise", torch.ones(20)), breccia.NVFP4BlockScaling(), "_amax_rowwise"),
        (lambda o: setattr(o, "_fp4_dtype", DType.kFloat8E4M3), breccia.NVFP4BlockScaling(), "_fp4_dtype"),
        (lambda o: setattr(o, "_nvfp4_e4m3_max", 300), breccia.NVFP4BlockScaling(), "_nvfp4_e4m3_max"),
    ],
)
def test_bad_objects_name_the_attribute(change: Any, recipe: Any, attr: str) -> None:
    with pytest.raises(breccia.FormatError, match=attr):
        from_transformer_engine(_broken(change, recipe))


def test_bad_calls() -> None:
    with pytest.raises(breccia.FormatError, match="_columnwise_data"):
        from_transformer_engine(_broken(lambda o: None), usage="columnwise")
    rht = type("NVFP4Quantizer", (), {"with_rht": True})()
    obj = _broken(lambda o: setattr(o, "_quantizer", rht), breccia.NVFP4BlockScaling(), "columnwise")
    with pytest.raises(breccia.FormatError, match="with_rht"):
        from_transformer_engine(obj, usage="columnwise")
    with pytest.raises(breccia.FormatError, match="Float8Tensor, MXFP8Tensor"):
        from_transformer_engine(torch.zeros(3))
    with pytest.raises(breccia.LayoutError, match="usage"):
        from_transformer_engine(_broken(lambda o: None), usage="both")  # type: ignore[arg-type]
    x = make_x((4, 64), 7)
    with pytest.raises(breccia.RecipeError, match="no tensor class"):
        te_buffers(breccia.cast(x, breccia.INT4Scaling(group_size=32)))
    with pytest.raises(breccia.LayoutError, match="last axis"):
        te_buffers(breccia.cast(x, breccia.MXFP8BlockScaling(), axis=0))
    with pytest.raises(breccia.LayoutError, match="swizzle"):
        te_buffers(breccia.cast(x, breccia.DelayedScaling()), swizzle=True)
    with pytest.raises(breccia.LayoutError, match="2-D"):
        te_buffers(breccia.cast(make_x((2, 4, 64), 7), breccia.DelayedScaling()), usage="columnwise")
    with pytest.raises(breccia.LayoutError, match="odd"):
        te_buffers(breccia.cast(make_x((4, 33), 7), breccia.NVFP4BlockScaling()))
    with pytest.raises(breccia.LayoutError, match=r"shape\[-2\] % 128"):
        te_buffers(breccia.cast(make_x((2, 80, 64), 7), breccia.Float8BlockScaling(block_m=128)))


def test_nvfp4_16x16_writes_repeated_row_scales() -> None:
    x = make_x((40, 64), 8)
    st = breccia.cast(x, breccia.NVFP4BlockScaling(block_m=16))
    rows = u8(st.scale).repeat(16, axis=0)[:40]  # TE's 2-D quantization keeps one scale per row
    assert np.array_equal(host_numpy(te_buffers(st)["_rowwise_scale_inv"])[:40, :4], rows)


@pytest.mark.skipif(importlib.util.find_spec("transformer_engine") is not None, reason="TE is installed")
def test_to_transformer_engine_without_te_names_the_extra() -> None:
    with pytest.raises(breccia.BackendNotInstalledError, match=r"pip install 'breccia-bridges\[transformer-engine\]'"):
        to_transformer_engine(breccia.cast(make_x((4, 64), 9), breccia.DelayedScaling()))


class TestRealTransformerEngine:
    """Quantize with TE's own quantizers on CUDA and compare with breccia, where TE is installed."""

    @pytest.fixture(autouse=True)
    def _te(self) -> None:
        self.te = pytest.importorskip("transformer_engine.pytorch")
        if not torch.cuda.is_available():
            pytest.skip("TransformerEngine quantizes on CUDA only")
        import transformer_engine_torch as tex

        self.tex = tex

    def quantizer(self, kind: str) -> Any:
        t, e4m3 = self.te.tensor, self.tex.DType.kFloat8E4M3
        check = {
            "mxfp8": "is_mxfp8_available",
            "block1d": "is_fp8_block_scaling_available",
            "nvfp4": "is_nvfp4_available",
        }
        name = check.get(kind.replace("block2d", "block1d").replace("_swz", ""), "is_fp8_available")
        if not getattr(self.te, name, lambda: False)():
            pytest.skip(f"this GPU / TE build lacks {kind}")
        q = {
            "current": lambda: t.Float8CurrentScalingQuantizer(e4m3, device="cuda"),
            "delayed": lambda: t.Float8Quantizer(
                torch.full((1,), 4.0, device="cuda"), torch.zeros(1, device="cuda"), e4m3
            ),
            "mxfp8": lambda: t.MXFP8Quantizer(e4m3),
            "mxfp8_swz": lambda: t.MXFP8Quantizer(e4m3),
            "block1d": lambda: t.Float8BlockQuantizer(e4m3, rowwise=True, columnwise=True, block_scaling_dim=1),
            "block2d": lambda: t.Float8BlockQuantizer(e4m3, rowwise=True, columnwise=True, block_scaling_dim=2),
            "nvfp4": t.NVFP4Quantizer,
        }[kind]()
        q.optimize_for_gemm = kind.endswith("_swz")
        return q

    @pytest.mark.parametrize("kind", ["current", "delayed", "mxfp8", "mxfp8_swz", "block1d", "block2d", "nvfp4"])
    @pytest.mark.parametrize("shape", [(256, 512), (160, 96)])
    def test_quantizers(self, kind: str, shape: tuple[int, int]) -> None:
        x = make_x(shape, 10, "cuda").to(torch.bfloat16)
        qx, qt = self.quantizer(kind)(x), self.quantizer(kind)(x.T.contiguous())
        st = from_transformer_engine(qx)
        ref = qx.dequantize(dtype=torch.float32)
        if kind == "nvfp4":
            np.testing.assert_array_max_ulp(host_numpy(breccia.dequantize(st)), host_numpy(ref), maxulp=2)
        else:
            assert torch.equal(breccia.dequantize(st), ref)
        # TE's columnwise copy of x is its rowwise quantization of x.T, bit for bit
        assert_same_bits(from_transformer_engine(qx, usage="columnwise"), from_transformer_engine(qt))
        back = to_transformer_engine(st, swizzle=kind.endswith("_swz"), dtype=torch.bfloat16)
        assert type(back).__name__ == type(qx).__name__
        assert_same_bits(from_transformer_engine(back), st)
        again = back.dequantize(dtype=torch.float32)
        if kind == "nvfp4":  # the amax written back may sit an ulp from TE's (many amaxes share one amax / 2688)
            np.testing.assert_array_max_ulp(host_numpy(again), host_numpy(ref), maxulp=4)
        else:
            assert torch.equal(again, ref)
