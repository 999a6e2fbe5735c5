"""Per-format codec of the compressed-tensors bridge: one ScaledTensor ↔ one module's ``weight_*`` tensors.

Everything here is host numpy and bit-level; :mod:`._compressed_tensors` does the files, the config and the
frameworks. The conventions converted (read from compressed-tensors 0.20's compressors):

- ``pack-quantized``: int codes are stored *offset binary* (``q + 2^(b−1)``) and packed densely into int32, element
  ``i`` of a row at bit ``i·b`` (so, on the little-endian bytes, INT4 is low nibble first — breccia's order — and only
  the sign bit differs: two's complement ↔ offset is ``code ^ 8``). Rows are padded to whole int32 words with zero
  bits; ``weight_shape`` holds the logical shape. Asymmetric zero points are packed the same way along dim 0.
- ``nvfp4-pack-quantized`` / ``mxfp4-pack-quantized``: E2M1 codes two per uint8, low nibble first — breccia's bytes.
  ``weight_global_scale`` is the *inverse* of breccia's (``448·6/amax``): we write ``fp32(1/g)``; see below. One-level
  NVFP4 is written as the two-level format with ``g = 1`` (compressed-tensors' loader always wants the global scale).
- ``mxfp6-pack-quantized``: E2M3 codes (breccia keeps one per byte), four per three bytes, little-endian 24-bit words.
- MX scales are E8M0 bytes stored as ``uint8``; FP8 weights are ``float8_e4m3fn`` with fp32 (or bf16/fp16) scales.

NVFP4 global scale: compressed-tensors dequantizes ``q · (s_b / gs)``, breccia ``q · (s_b · g)``. With
``gs = fp32(1/g)`` the two fp32 products agree exactly when ``g`` is a power of two and otherwise may differ by one
ulp for some block scales; and ``fp32(1/fp32(1/g)) ≠ g`` for about one fp32 value in six. So the writer also records
breccia's exact ``g`` (hex) in the shard metadata, and the reader uses it only while ``weight_global_scale`` still holds
the bits written beside it; a foreign checkpoint reads as ``g = fp32(1/gs)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np

from breccia._errors import FormatError, RecipeError
from breccia._formats import pack_nibbles, unpack_nibbles
from breccia._layouts import Layout, PerBlockK, PerChannel, PerTensor
from breccia._recipes import (
    Float8BlockScaling,
    Float8CurrentScaling,
    INT4Scaling,
    INT8Scaling,
    MXFP4BlockScaling,
    MXFP6BlockScaling,
    MXFP8BlockScaling,
    NVFP4BlockScaling,
    Recipe,
)
from breccia._tensor import ScaledTensor

from ._arrays import host_numpy

__all__ = ["FORMATS", "SUPPORTED", "Args", "Parts", "decode", "encode"]

SUPPORTED = (
    "Float8CurrentScaling(E4M3) per tensor or per channel; Float8BlockScaling(E4M3) 1×B or M×B; "
    "MXFP8BlockScaling(E4M3); MXFP4BlockScaling; MXFP6BlockScaling(E2M3); NVFP4BlockScaling(block_m=1) with or "
    "without the per-tensor scale; INT4Scaling / INT8Scaling (signed, group or channel, symmetric or not) — on 2-D "
    "(out, in) weights blocked along the last axis"
)
PLAIN = ("float-quantized", "naive-quantized", "int-quantized", "mxfp8-quantized")
FORMATS = (*PLAIN, "pack-quantized", "nvfp4-pack-quantized", "mxfp4-pack-quantized", "mxfp6-pack-quantized")
_F8, _E8M0, _E4M3 = ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e8m0fnu, ml_dtypes.float8_e4m3fn
_FLOAT_SCALES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


@dataclass(frozen=True)
class Args:
    """The ``weights`` QuantizationArgs fields the bridge reads (``scale_dtype`` without its ``torch.`` prefix)."""

    num_bits: int
    type: str
    strategy: str
    group_size: int | None = None
    block: tuple[int, int] | None = None
    symmetric: bool = True
    scale_dtype: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The dict compressed-tensors' ``QuantizationArgs.model_dump()`` writes for these arguments."""
        d: dict[str, Any] = {"num_bits": self.num_bits, "type": self.type, "symmetric": self.symmetric,
                             "group_size": self.group_size, "strategy": self.strategy, "dynamic": False}  # fmt: skip
        if self.block is not None:
            d["block_structure"] = list(self.block)
        if self.scale_dtype is not None:
            d["scale_dtype"] = f"torch.{self.scale_dtype}"
        return d


@dataclass
class Parts:
    """A decoded module, host numpy: what a ScaledTensor is built from."""

    recipe: Recipe
    layout: Layout
    shape: tuple[int, int]
    data: np.ndarray
    scale: np.ndarray
    global_scale: np.ndarray | None = None
    zero_point: np.ndarray | None = None


# ------------------------------------------------------------------------------------------------ bit packing
def pack_int32(q: np.ndarray, bits: int) -> np.ndarray:
    """compressed-tensors ``pack_to_int32`` (dim 1) of int8 codes in ``[−2^(b−1), 2^(b−1))``, b ∈ {4, 8}."""
    u = (q.astype(np.int16) + (1 << (bits - 1))).astype(np.uint8)
    raw = pack_nibbles(u) if bits == 4 else u
    words = math.ceil(q.shape[-1] * bits / 32)
    out = np.zeros((q.shape[0], 4 * words), np.uint8)
    out[:, : raw.shape[-1]] = raw
    return out.view("<i4").astype(np.int32)


def unpack_int32(words: np.ndarray, bits: int, cols: int, where: str) -> np.ndarray:
    """Inverse of :func:`pack_int32`: int8 codes ``(rows, cols)``; the word count must match ``cols`` exactly."""
    want = math.ceil(cols * bits / 32)
    if words.ndim != 2 or words.shape[1] != want:
        raise FormatError(f"{where} has shape {words.shape}; {cols} {bits}-bit values per row pack into {want} int32")
    raw = np.ascontiguousarray(words.astype("<i4")).view(np.uint8)
    u = unpack_nibbles(raw, cols) if bits == 4 else raw[:, :cols]
    return (u.astype(np.int16) - (1 << (bits - 1))).astype(np.int8)


def _pack_fp6(codes: np.ndarray) -> np.ndarray:
    c = codes.astype(np.uint32).reshape(codes.shape[0], -1, 4)
    word = c[..., 0] | c[..., 1] << 6 | c[..., 2] << 12 | c[..., 3] << 18
    return np.stack([word, word >> 8, word >> 16], -1).astype(np.uint8).reshape(codes.shape[0], -1)


def _unpack_fp6(packed: np.ndarray) -> np.ndarray:
    b = packed.astype(np.uint32).reshape(packed.shape[0], -1, 3)
    word = b[..., 0] | b[..., 1] << 8 | b[..., 2] << 16
    return np.stack([word >> s & 0x3F for s in (0, 6, 12, 18)], -1).astype(np.uint8).reshape(packed.shape[0], -1)


def _int_codes(st: ScaledTensor) -> np.ndarray:
    """int8 codes of an INT4/INT8 ScaledTensor (two's complement nibbles sign-extended)."""
    raw = host_numpy(st.data).view(np.uint8)
    if st.recipe.element.bits == 8:
        return raw.view(np.int8)
    return ((unpack_nibbles(raw, st.shape[-1]).astype(np.int16) ^ 8) - 8).astype(np.int8)


# ------------------------------------------------------------------------------------------------ encode
def _unsupported(st: ScaledTensor, where: str, why: str = "") -> RecipeError:
    return RecipeError(
        f"save_compressed_tensors: tensor {where!r} is {st.recipe!r} with {st.layout!r} on shape {st.shape}"
        f"{why}; compressed-tensors holds: {SUPPORTED}. Convert first with breccia.requantize"
    )


def _check_groups(st: ScaledTensor, where: str, group: int) -> None:
    if st.shape[1] % group:
        why = f": its group strategy needs in_features ({st.shape[1]}) divisible by the group size {group}"
        raise _unsupported(st, where, why + " (compressed-tensors' decompress refuses partial groups)")


def encode(st: ScaledTensor, where: str) -> tuple[str, Args, dict[str, np.ndarray], dict[str, Any]]:
    """``(format, weights args, {local name: array}, metadata record)`` for one 2-D ScaledTensor."""
    r, lay = st.recipe, st.layout
    if st.ndim != 2 or lay.blocked_axis not in (None, -1, 1):
        raise _unsupported(st, where)
    scale, codes = host_numpy(st.scale), host_numpy(st.data).view(np.uint8)
    fp8 = getattr(r, "fp8_format", "E4M3") == "E4M3"
    if isinstance(r, Float8CurrentScaling) and fp8:
        tensor = isinstance(lay, PerTensor)
        args = Args(8, "float", "tensor" if tensor else "channel")
        return "float-quantized", args, {"weight": codes.view(_F8), "weight_scale": scale.reshape(-1) if tensor
                                         else scale}, {}  # fmt: skip
    if isinstance(r, Float8BlockScaling) and fp8:
        if r.block_m == 1:
            _check_groups(st, where, r.block_k)
        block = None if r.block_m == 1 else (r.block_m, r.block_k)
        args = Args(8, "float", "group" if block is None else "block", None if block else r.block_k, block=block)
        return "float-quantized", args, {"weight": codes.view(_F8), "weight_scale": scale}, {}
    mx = {MXFP8BlockScaling: ("mxfp8-quantized", 8), MXFP4BlockScaling: ("mxfp4-pack-quantized", 4),
          MXFP6BlockScaling: ("mxfp6-pack-quantized", 6)}.get(type(r))  # fmt: skip
    if mx is not None and fp8 and getattr(r, "element_format", "E2M3") == "E2M3":
        _check_groups(st, where, 32)
        packed = {8: {"weight": codes.view(_F8)}, 4: {"weight_packed": codes}, 6: {"weight_packed": _pack_fp6(codes)}}
        tensors = {**packed[mx[1]], "weight_scale": scale.view(np.uint8)}
        return mx[0], Args(mx[1], "float", "group", 32, scale_dtype="uint8"), tensors, {}
    if isinstance(r, NVFP4BlockScaling) and r.block_m == 1:
        _check_groups(st, where, 16)
        tensors = {"weight_packed": codes, "weight_scale": scale.view(np.uint8).view(_E4M3)}
        # one-level NVFP4 is the two-level format with g = 1 (compressed-tensors' tooling always wants a global scale)
        g = host_numpy(st.global_scale).astype(np.float32).reshape(()) if r.per_tensor_scale else np.float32(1)
        with np.errstate(divide="ignore", over="ignore"):
            gs = np.float32(1.0) / g
        tensors["weight_global_scale"] = np.asarray(gs, np.float32).reshape(1)
        record = {"global_scale": float(g).hex(), "weight_global_scale": float(gs).hex()}
        return (
            "nvfp4-pack-quantized",
            Args(4, "float", "tensor_group", 16, scale_dtype="float8_e4m3fn"),
            tensors,
            record,
        )
    if isinstance(r, (INT4Scaling, INT8Scaling)) and r.float_zero_point:
        why = (": its zero point is a float offset (zero_point_domain='float', MLX's affine form) and "
               "compressed-tensors stores integer zero points")  # fmt: skip
        raise _unsupported(st, where, why)
    if isinstance(r, (INT4Scaling, INT8Scaling)) and r.signed and isinstance(lay, (PerBlockK, PerChannel)):
        bits, group = r.element.bits, lay.block_k if isinstance(lay, PerBlockK) else None
        if group is not None:
            _check_groups(st, where, group)
        args = Args(bits, "int", "channel" if group is None else "group", group, symmetric=r.symmetric)
        tensors = {"weight_packed": pack_int32(_int_codes(st), bits), "weight_scale": scale,
                   "weight_shape": np.asarray(st.shape, np.int64)}  # fmt: skip
        if st.zero_point is not None:
            tensors["weight_zero_point"] = np.ascontiguousarray(pack_int32(host_numpy(st.zero_point).T, bits).T)
        return "pack-quantized", args, tensors, {}
    raise _unsupported(st, where)


# ------------------------------------------------------------------------------------------------ decode
def _recipe(a: Args, scale_dtype: str, where: str) -> tuple[Recipe, Layout]:
    """The breccia recipe and layout that compressed-tensors' arguments describe (its rules: half-range INT)."""
    s, g, t = a.strategy, a.group_size, (a.type, a.num_bits)
    mx = g == 32 and (a.scale_dtype in ("uint8", "float8_e8m0fnu") or scale_dtype in ("uint8", "float8_e8m0fnu"))
    r: Recipe | None = None
    if t == ("float", 8):
        if s in ("tensor", "channel"):
            return Float8CurrentScaling(), PerTensor() if s == "tensor" else PerChannel(-1)
        if s == "block" and a.block is not None:
            r = Float8BlockScaling(block_m=a.block[0], block_k=a.block[1])
        elif s == "group" and g:
            r = MXFP8BlockScaling() if mx else Float8BlockScaling(block_k=g)
    elif t == ("float", 4):
        if g == 16 and s in ("tensor_group", "group"):
            r = NVFP4BlockScaling(per_tensor_scale=s == "tensor_group")
        elif s == "group" and mx:
            r = MXFP4BlockScaling()
    elif t == ("float", 6) and s == "group" and mx:
        r = MXFP6BlockScaling("E2M3")
    elif a.type == "int" and a.num_bits in (4, 8) and s in ("group", "channel") and scale_dtype in _FLOAT_SCALES:
        kw: dict[str, Any] = {"scale_dtype": _FLOAT_SCALES[scale_dtype], "symmetric": a.symmetric,
                              "symmetric_range": "half_range"}  # fmt: skip
        if a.num_bits == 4:
            r = INT4Scaling(group_size=g if s == "group" and g else -1, **kw)
        else:
            r = INT8Scaling(granularity=s, group_size=g if s == "group" and g else 128, **kw)
    if r is None:
        raise FormatError(
            f"{where}: compressed-tensors weights {a.type} num_bits={a.num_bits} strategy={s} group_size={g} "
            f"block_structure={a.block} (scales {scale_dtype}) have no breccia recipe; supported: {SUPPORTED}"
        )
    return r, r.default_layout(-1)


def _get(t: dict[str, np.ndarray], key: str, where: str, dtypes: tuple[str, ...]) -> np.ndarray:
    if key not in t:
        raise FormatError(f"{where}.{key} is missing; this format stores it")
    arr = t[key]
    if arr.dtype.name not in dtypes:
        raise FormatError(f"{where}.{key} has dtype {arr.dtype.name}; expected {' or '.join(dtypes)}")
    return arr


def _shape(t: dict[str, np.ndarray], where: str, rows: int) -> tuple[int, int]:
    ws = _get(t, "weight_shape", where, ("int64", "int32"))
    if ws.shape != (2,) or (ws < 0).any() or int(ws[0]) != rows:
        raise FormatError(f"{where}.weight_shape is {ws.tolist()}; expected [out, in] with out == {rows} rows "
                          f"of weight_packed")  # fmt: skip
    return int(ws[0]), int(ws[1])


def decode(fmt: str, a: Args, t: dict[str, np.ndarray], where: str) -> Parts:
    """Rebuild one module's buffers from its compressed-tensors tensors (``where`` names the module in errors)."""
    scale = t.get("weight_scale")
    if scale is None:
        raise FormatError(f"{where}.weight_scale is missing")
    r, lay = _recipe(a, scale.dtype.name, where)
    packs = {"pack-quantized": a.type == "int", "nvfp4-pack-quantized": isinstance(r, NVFP4BlockScaling),
             "mxfp4-pack-quantized": isinstance(r, MXFP4BlockScaling),
             "mxfp6-pack-quantized": isinstance(r, MXFP6BlockScaling)}  # fmt: skip
    fmt_ok = packs.get(fmt, fmt in PLAIN and a.num_bits == 8)
    if not fmt_ok:
        raise FormatError(f"{where}: format {fmt!r} cannot hold {a.type} num_bits={a.num_bits} weights")
    zp = gs = None
    if isinstance(r, (INT4Scaling, INT8Scaling)):
        bits = a.num_bits
        if fmt == "pack-quantized":
            packed = _get(t, "weight_packed", where, ("int32",))
            shape = _shape(t, where, packed.shape[0])
            q = unpack_int32(packed, bits, shape[1], f"{where}.weight_packed")
        else:
            q = _get(t, "weight", where, ("int8",))
            shape = (q.shape[0], q.shape[1]) if q.ndim == 2 else (0, 0)
        if not a.symmetric:
            zraw = _get(t, "weight_zero_point", where, ("int32",) if fmt == "pack-quantized" else ("int8",))
            if zraw.dtype == np.int32:
                zraw = unpack_int32(zraw.T, bits, shape[0], f"{where}.weight_zero_point").T
            zp = np.ascontiguousarray(zraw)
        if a.symmetric and np.any(t.get("weight_zero_point", 0)):
            raise FormatError(f"{where}.weight_zero_point is non-zero but the weights are declared symmetric")
        lo = -(1 << (bits - 1))
        if q.ndim != 2 or (bits == 4 and (q.min(initial=0) < lo or q.max(initial=0) > -lo - 1)):
            raise FormatError(f"{where}: {bits}-bit codes must be a 2-D array within [{lo}, {-lo - 1}]")
        if zp is not None and bits == 4 and (zp.min(initial=0) < lo or zp.max(initial=0) > -lo - 1):
            raise FormatError(f"{where}.weight_zero_point holds values outside [{lo}, {-lo - 1}]")
        data = q if bits == 8 else pack_nibbles(q.view(np.uint8) & np.uint8(0x0F))
    elif fmt in PLAIN:
        data = _get(t, "weight", where, ("float8_e4m3fn",))
        shape = (data.shape[0], data.shape[1]) if data.ndim == 2 else (0, 0)
    else:
        data = _get(t, "weight_packed", where, ("uint8",))
        if data.ndim != 2 or (fmt == "mxfp6-pack-quantized" and data.shape[1] % 3):
            raise FormatError(f"{where}.weight_packed has shape {data.shape}; expected (out, in·bits/8)")
        if fmt == "mxfp6-pack-quantized":
            data = _unpack_fp6(data)
        shape = (data.shape[0], data.shape[1] * (2 if a.num_bits == 4 else 1))
    if isinstance(r, (MXFP8BlockScaling, MXFP4BlockScaling, MXFP6BlockScaling)):
        scale = _get(t, "weight_scale", where, ("uint8", "float8_e8m0fnu")).view(_E8M0)
    elif isinstance(r, NVFP4BlockScaling):
        scale = _get(t, "weight_scale", where, ("float8_e4m3fn", "uint8")).view(_E4M3)
        if r.per_tensor_scale:
            gsv = _get(t, "weight_global_scale", where, ("float32",))
            if gsv.size != 1:
                raise FormatError(f"{where}.weight_global_scale has shape {gsv.shape}; expected one value")
            with np.errstate(divide="ignore", over="ignore"):
                gs = np.asarray(np.float32(1.0) / gsv.reshape(()), np.float32)
    elif isinstance(r, (Float8CurrentScaling, Float8BlockScaling)):
        scale = _get(t, "weight_scale", where, tuple(_FLOAT_SCALES)).astype(np.float32)
        if isinstance(lay, PerTensor):
            if scale.size != 1:
                raise FormatError(f"{where}.weight_scale has shape {scale.shape}; strategy 'tensor' stores one value")
            scale = scale.reshape(())
    return Parts(r, lay, shape, data, scale, gs, zp)
