"""Scaled matmul for jax: FP8 codes multiplied natively, scales applied to the fp32 partial products.

``a[..., K] @ b[K, N]`` where both sides are FP8 ScaledTensors (``Float8CurrentScaling``, ``DelayedScaling``,
``Float8BlockScaling``, ``MXFP8BlockScaling``) whose scale blocks line up along K: the data are contracted with
``lax.dot_general(..., preferred_element_type=float32)`` — on GPUs with FP8 tensor cores XLA lowers that to an
FP8 GEMM — once per common K block, and each block's fp32 partial product is multiplied by ``scale_a[m, g] ·
scale_b[g, n]`` before the blocks are summed. Per-tensor and rowwise scales are a single K block, so they cost one
dot and one broadcast multiply. This is exact algebra (``Σ_g s_a s_b Σ_k q_a q_b``), so the result differs from
``dequantize(a) @ dequantize(b)`` only by fp32 summation order. Anything else (plain arrays, 4-bit/6-bit/integer
recipes, NVFP4, K blocks that do not nest) dequantizes to fp32 and multiplies: always correct.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from breccia import _math as M
from breccia._recipes import DelayedScaling, Float8BlockScaling, Float8CurrentScaling, MXFP8BlockScaling
from breccia._tensor import ScaledTensor

from ._ops import TRACED_OPS

__all__ = ["fused_plan", "scaled_matmul"]

_FP8_RECIPES = (Float8CurrentScaling, DelayedScaling, Float8BlockScaling, MXFP8BlockScaling)


def _k_block(st: ScaledTensor, k_axis: int) -> int:
    return st.layout.block_shape(st.shape)[k_axis]


def fused_plan(a: Any, b: Any) -> int | None:
    """The common K block size the fused path would use for ``a @ b``, or ``None`` if it does not apply."""
    if not (isinstance(a, ScaledTensor) and isinstance(b, ScaledTensor)):
        return None
    if not (isinstance(a.recipe, _FP8_RECIPES) and isinstance(b.recipe, _FP8_RECIPES)):
        return None
    if a.ndim < 1 or b.ndim != 2 or 0 in a.shape or 0 in b.shape:
        return None
    k = a.shape[-1]
    ka, kb = _k_block(a, -1), _k_block(b, 0)
    g, big = min(ka, kb), max(ka, kb)
    if big % g and big < k:
        return None  # a block of one operand straddles two blocks of the other
    return g


def _expand_scale(st: ScaledTensor, k_axis: int, g: int, n_groups: int) -> jax.Array:
    """The fp32 scale as a full-size grid, except along K where there is one entry per common block of ``g``."""
    s = M.stored_scale_to_f32(TRACED_OPS, st.recipe, st.scale, st.global_scale)
    shape = st.shape
    blocks = st.layout.block_shape(shape)
    s = jnp.reshape(s, st.layout.grid_shape(shape))
    k_axis %= len(shape)
    for ax, (n, bsz) in enumerate(zip(shape, blocks)):
        idx = np.arange(n_groups) * g // bsz if ax == k_axis else np.arange(n) // bsz
        if s.shape[ax] != len(idx) or bsz != 1:
            s = jnp.take(s, idx, axis=ax)
    return s


def _fused(a: ScaledTensor, b: ScaledTensor, g: int) -> jax.Array:
    k, n = b.shape
    n_groups = -(-k // g)
    kp = n_groups * g
    lead = a.shape[:-1]
    m = int(np.prod(lead)) if lead else 1
    ad = jnp.reshape(a.data, (m, k))
    bd = b.data
    if kp != k:  # FP8 zero codes contribute nothing to the sums
        ad = jnp.pad(ad, [(0, 0), (0, kp - k)])
        bd = jnp.pad(bd, [(0, kp - k), (0, 0)])
    sa = jnp.reshape(_expand_scale(a, -1, g, n_groups), (m, n_groups))
    sb = _expand_scale(b, 0, g, n_groups)  # (G, N)
    if n_groups == 1:
        out = lax.dot_general(ad, bd, (((1,), (0,)), ((), ())), preferred_element_type=jnp.float32)
        out = out * sa * sb
    else:
        a3 = jnp.reshape(ad, (m, n_groups, g))
        b3 = jnp.reshape(bd, (n_groups, g, n))
        parts = lax.dot_general(a3, b3, (((2,), (1,)), ((1,), (0,))), preferred_element_type=jnp.float32)  # (G,M,N)
        out = jnp.sum(parts * jnp.transpose(sa)[:, :, None] * sb[:, None, :], axis=0)
    return jnp.reshape(out, (*lead, n))


def scaled_matmul(backend: Any, a: Any, b: Any, out_dtype: Any) -> jax.Array:
    """``a @ b`` in fp32 accumulation, cast to ``out_dtype``; fused where :func:`fused_plan` allows."""
    g = fused_plan(a, b)
    if g is not None:
        return _fused(a, b, g).astype(out_dtype)
    out = jnp.matmul(backend.operand(a), backend.operand(b), precision=lax.Precision.HIGHEST)
    return out.astype(out_dtype)
