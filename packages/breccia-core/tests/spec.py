"""An independent, deliberately naive implementation of DESIGN.md §3/§5, used as the oracle in tests.

It loops over blocks in Python, computes each scale with scalar numpy fp32 arithmetic and float64 ``frexp`` for
powers of two, and encodes with ml_dtypes' own ``astype`` (after the clamp the design requires). It shares no code
with breccia's tiled, branch-free implementation, so agreement between the two is evidence, not tautology.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np

import breccia

F32 = np.float32
ML = {
    "E4M3": ml_dtypes.float8_e4m3fn,
    "E5M2": ml_dtypes.float8_e5m2,
    "E2M1": ml_dtypes.float4_e2m1fn,
    "E2M3": ml_dtypes.float6_e2m3fn,
    "E3M2": ml_dtypes.float6_e3m2fn,
}
FMAX = {"E4M3": 448.0, "E5M2": 57344.0, "E2M1": 6.0, "E2M3": 7.5, "E3M2": 28.0}
EMAX = {"E4M3": 8, "E5M2": 15, "E2M1": 2, "E2M3": 2, "E3M2": 4}


def ceil_log2(v: float) -> int:
    m, e = math.frexp(v)
    return e - 1 if m == 0.5 else e


def floor_log2(v: float) -> int:
    return math.frexp(v)[1] - 1


def encode_codes(v: np.ndarray, fmt: str) -> np.ndarray:
    """uint8 codes of already-clamped fp32 values, via ml_dtypes."""
    return np.asarray(v, F32).astype(ML[fmt]).view(np.uint8)


def blocks_of(shape, layout):
    bs = layout.block_shape(shape)
    grid = tuple(-(-n // b) for n, b in zip(shape, bs))
    for gidx in np.ndindex(*grid):
        yield gidx, tuple(slice(g * b, min((g + 1) * b, n)) for g, b, n in zip(gidx, bs, shape))


def spec_cast(x: np.ndarray, recipe, layout):
    """(codes uint8/int8 unpacked, scale grid as stored values, global_scale or None, zero_point or None)."""
    x = np.asarray(x, F32)
    shape = x.shape
    grid = tuple(-(-n // b) for n, b in zip(shape, layout.block_shape(shape)))
    el = recipe.element.name
    codes = np.zeros(shape, np.int16)
    scales = np.zeros(grid, np.float64)
    zps = np.zeros(grid, np.float64 if getattr(recipe, "zero_point_domain", "int") == "float" else np.int64)
    g = None
    if isinstance(recipe, breccia.NVFP4BlockScaling) and recipe.per_tensor_scale:
        ga = F32(np.max(np.abs(x))) if x.size else F32(0)
        g = F32(1.0) if ga == 0 else F32(ga / F32(2688.0))
    for gidx, sl in blocks_of(shape, layout):
        blk = x[sl]
        amax = F32(np.max(np.abs(blk))) if blk.size else F32(0)
        if isinstance(recipe, (breccia.Float8CurrentScaling, breccia.Float8BlockScaling, breccia.DelayedScaling)):
            fmax = F32(FMAX[el])
            s = amax / fmax
            if getattr(recipe, "power_of_2_scales", False) and amax > 0:
                s = F32(2.0 ** ceil_log2(float(s)))
            if amax == 0:
                s = F32(1.0)
            codes[sl] = encode_codes(np.clip(blk / s, -fmax, fmax), el)
            scales[gidx] = s
        elif isinstance(recipe, (breccia.MXFP8BlockScaling, breccia.MXFP4BlockScaling, breccia.MXFP6BlockScaling)):
            fmax = F32(FMAX[el])
            if amax == 0:
                byte = 0
            elif recipe.scale_rounding == "rceil":
                byte = min(max(ceil_log2(float(amax / fmax)) + 127, 0), 254)
            else:
                byte = min(max(floor_log2(float(amax)) - EMAX[el] + 127, 0), 254)
            div = F32(2.0 ** (byte - 127))
            codes[sl] = encode_codes(np.clip(blk / div, -fmax, fmax), el)
            scales[gidx] = byte
        elif isinstance(recipe, breccia.NVFP4BlockScaling):
            sbf = (amax / F32(6.0)) / g if g is not None else amax / F32(6.0)
            sbf = max(sbf, F32(recipe.block_scale_min))
            sb = np.asarray(min(sbf, F32(448.0)), F32).astype(ml_dtypes.float8_e4m3fn)
            sbv = F32(sb.astype(F32))
            div = sbv * g if g is not None else sbv
            if div == 0:
                codes[sl] = encode_codes(np.copysign(np.zeros_like(blk), blk), el)
            elif recipe.data_scaling == "reciprocal":  # torchao: x * ((1/g) / s_b)
                mult = (F32(1.0) / g) / sbv if g is not None else F32(1.0) / sbv
                codes[sl] = encode_codes(np.clip(blk * mult, -6, 6), el)
            else:
                codes[sl] = encode_codes(np.clip(blk / div, -6, 6), el)
            scales[gidx] = int(sb.view(np.uint8))
        elif recipe.zero_point_domain == "float":  # MLX affine (mx.quantize), scalar fp32 per block
            f = recipe.element
            sdt = {"fp16": np.float16, "bf16": ml_dtypes.bfloat16, "fp32": np.float32}[recipe.scale_dtype]
            lo, hi = F32(np.min(blk)), F32(np.max(blk))
            if blk.size < math.prod(layout.block_shape(shape)):  # a partial trailing block counts its zero padding
                lo, hi = min(lo, F32(0.0)), max(hi, F32(0.0))
            neg = abs(lo) > abs(hi)
            s = max(F32((hi - lo) / F32(f.qmax)), F32(1e-7))
            s = s if neg else -s
            edge = lo if neg else hi
            q0 = F32(np.rint(edge / s))
            z = F32(0.0)
            if q0 != 0:
                s, z = F32(edge / q0), edge
            codes[sl] = np.clip(np.rint((blk - z) / s), 0, f.qmax).astype(np.int64)
            with np.errstate(over="ignore"):  # an fp16 scale may overflow to inf: the tests look for exactly that
                scales[gidx] = np.asarray(s).astype(sdt).astype(np.float64)
                zps[gidx] = np.asarray(z).astype(sdt).astype(np.float64)
        else:  # INT4 / INT8
            f = recipe.element
            sdt = {"fp16": np.float16, "bf16": ml_dtypes.bfloat16, "fp32": np.float32}[recipe.scale_dtype]
            if recipe.symmetric:
                denom = F32(f.qmax if recipe.symmetric_range == "qmax" else (f.qmax - f.qmin) / 2)
                s = F32(1.0) if amax == 0 else amax / denom
            else:
                lo = min(F32(np.min(blk)), F32(0)) if blk.size else F32(0)
                hi = max(F32(np.max(blk)), F32(0)) if blk.size else F32(0)
                s = (hi - lo) / F32(f.qmax - f.qmin)
                s = F32(1.0) if s == 0 else s
            with np.errstate(over="ignore"):  # inf here marks a block whose fp16 scale the library must refuse
                s = F32(np.asarray(s, F32).astype(sdt).astype(F32))
            if s == 0:
                s = F32(np.finfo(sdt).smallest_subnormal)
            zp = 0 if recipe.symmetric else int(np.clip(f.qmin - np.rint(lo / s), f.qmin, f.qmax))
            q = np.clip(np.rint(blk / s) + zp, f.qmin, f.qmax).astype(np.int64)
            codes[sl] = q & 0xF if f.storage == "packed4" else q
            scales[gidx] = s
            zps[gidx] = zp
    return codes, scales, g, (zps if recipe.has_zero_point else None)


def breccia_codes(st) -> np.ndarray:
    """Unpacked integer codes of a numpy ScaledTensor, for comparison with :func:`spec_cast`."""
    data = np.asarray(st.data)
    fmt = st.recipe.element
    if fmt.storage == "packed4":
        from breccia._formats import unpack_nibbles

        return unpack_nibbles(data, st.shape[-1]).astype(np.int16) if st.shape else data
    if fmt.storage == "int8":
        return data.astype(np.int16)
    return data.view(np.uint8).astype(np.int16)


def breccia_scales(st) -> np.ndarray:
    """Stored scales as numbers (E8M0/E4M3 as their byte value) on the full grid (PerTensor → all-ones grid)."""
    s = np.asarray(st.scale)
    kind = breccia._recipes.scale_kind(st.recipe)
    vals = s.view(np.uint8).astype(np.float64) if kind in ("e8m0", "e4m3") else s.astype(np.float64)
    grid = tuple(-(-n // b) for n, b in zip(st.shape, st.layout.block_shape(st.shape)))
    return vals.reshape(grid)
