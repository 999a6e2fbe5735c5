"""The quantize kernel's specialisation for one recipe: the constexpr arguments of ``_kernel.quant_rows_kernel``
(format bits, scale rule, integer range), whether its encoder must clamp first and whether it encodes by a
multiplication. Host-side Python only, cached per recipe: it is on every cast's path."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from breccia._math import ZERO_SCALE_SUBSTITUTE, int_scale_denominator
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
    scale_kind,
)


def _f32_bits(v: float) -> int:
    """int32 bit pattern of ``np.float32(v)``: the kernel rebuilds fp32 constants from bits, never from literals."""
    return int(np.array([v], np.float32).view(np.int32)[0])


@cache
def _kind_args(recipe: Recipe) -> dict[str, Any]:
    """The constexpr specialisation of the kernel for one recipe."""
    from . import _kernel as K

    fmt = recipe.element
    a: dict[str, Any] = dict(
        KIND=K.KIND_FP8, EBITS=fmt.ebits, MBITS=fmt.mbits, BIAS=fmt.bias, ENC_MUL=float(2.0 ** (fmt.bias - 127)),
        FMAX=float(fmt.fmax), POW2=False, EPS_BITS=0, RCEIL=False, EMAX=0, NV_GLOBAL=False, NV_RECIP=False,
        NV_MIN_BITS=0, SYM=True, DENOM=1.0, QMIN=0, QMAX=0, SKIND=0, TINY_BITS=0,
    )  # fmt: skip
    if isinstance(recipe, (Float8BlockScaling, Float8CurrentScaling)):
        a["POW2"] = recipe.power_of_2_scales
        if isinstance(recipe, Float8CurrentScaling) and recipe.amax_epsilon > 0:
            a["EPS_BITS"] = _f32_bits(recipe.amax_epsilon)
    elif isinstance(recipe, (MXFP8BlockScaling, MXFP6BlockScaling, MXFP4BlockScaling)):
        a.update(KIND=K.KIND_MX, RCEIL=recipe.scale_rounding == "rceil", EMAX=fmt.emax)
    elif isinstance(recipe, NVFP4BlockScaling):
        a.update(KIND=K.KIND_NV, NV_GLOBAL=recipe.per_tensor_scale, NV_RECIP=recipe.data_scaling == "reciprocal")
        a["NV_MIN_BITS"] = _f32_bits(recipe.block_scale_min) if recipe.block_scale_min > 0 else 0
    else:
        assert isinstance(recipe, (INT4Scaling, INT8Scaling))
        kind = scale_kind(recipe)
        denom = int_scale_denominator(recipe)  # the reference's, and its zero-scale substitute: written once in core
        a.update(KIND=K.KIND_INT, SYM=recipe.symmetric, DENOM=denom, QMIN=fmt.qmin, QMAX=fmt.qmax)
        a.update(SKIND={"fp32": 0, "fp16": 1, "bf16": 2}[kind], TINY_BITS=_f32_bits(ZERO_SCALE_SUBSTITUTE[kind]))
    return a


def _needs_clamp(recipe: Recipe) -> bool:
    """Whether the bit encoder must clamp ``|v|`` to fmax first. MX ``rceil`` scales are powers of two at least
    ``RN(amax / fmax)``, so ``|x · 2^-e| ≤ fmax · (1 + 2^-23)``, which rounds to fmax on the element grid (overflow
    would need half a top step more): no code can change. Every other rule can put ``|v|`` past that (``floor``
    scales, NVFP4's rounded block scales, an FP8 scale that underflows to zero), and the GPU's FP8 conversion
    saturates by itself."""
    return not (
        isinstance(recipe, (MXFP8BlockScaling, MXFP6BlockScaling, MXFP4BlockScaling))
        and recipe.scale_rounding == "rceil"
    )


def _use_mult(recipe: Recipe) -> bool:
    """Encode by multiplying: NVFP4's reciprocal rule, or power-of-two scales (an exact reciprocal exists)."""
    if isinstance(recipe, NVFP4BlockScaling):
        return recipe.data_scaling == "reciprocal"
    if isinstance(recipe, (Float8BlockScaling, Float8CurrentScaling)):
        return recipe.power_of_2_scales
    return isinstance(recipe, (MXFP8BlockScaling, MXFP6BlockScaling, MXFP4BlockScaling))
