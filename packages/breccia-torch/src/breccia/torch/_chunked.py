"""Row-chunked casts for large CPU tensors.

On CPU every full-size temporary of the eager math is a fresh allocation that the kernel page-faults in (on the
reference VM a 64 MiB temporary costs more than the arithmetic). Casting row chunks of ~1M elements keeps the
temporaries small and reused. Rows are independent for the layouts that block along the last axis, and per-tensor
or NVFP4 two-level recipes get the whole tensor's amax passed to every chunk, so the concatenated chunks are
byte-identical to the unchunked cast (tested).
"""

from __future__ import annotations

from typing import Any

import torch

from breccia._errors import NonFiniteError
from breccia._generic import cast_generic
from breccia._layouts import Layout, PerBlockK, PerChannel, PerTensor
from breccia._recipes import Recipe
from breccia._tensor import ScaledTensor

from ._ops import TorchOps

__all__ = ["CHUNK_ELEMS", "cast_chunked"]

CHUNK_ELEMS = 1 << 20
MIN_ELEMS = 1 << 20


def _row_layout(layout: Layout, ndim: int) -> Layout | None:
    if isinstance(layout, PerTensor):
        return layout
    if isinstance(layout, (PerBlockK, PerChannel)) and layout.axis in (-1, ndim - 1):
        return PerBlockK(layout.block_k, -1) if isinstance(layout, PerBlockK) else PerChannel(-1)
    return None


def cast_chunked(ops: TorchOps, x: torch.Tensor, recipe: Recipe, layout: Layout, nonfinite: str) -> Any:
    """The cast of ``x`` in row chunks, or ``None`` where chunking does not apply (then cast whole)."""
    if x.device.type != "cpu" or x.ndim < 1 or x.numel() < MIN_ELEMS or recipe.has_zero_point:
        return None
    row_layout = _row_layout(layout, x.ndim)
    k = x.shape[-1]
    if row_layout is None or k == 0 or k > CHUNK_ELEMS:
        return None
    x2 = x.reshape(-1, k)
    amax = None
    if isinstance(layout, PerTensor) or recipe.has_global_scale:
        lo, hi = torch.aminmax(x2.to(torch.float32) if x2.dtype != torch.float32 else x2)
        amax = torch.maximum(hi, -lo)
    rows = max(1, CHUNK_ELEMS // k)
    try:
        parts = [
            cast_generic(
                ops,
                x2[i : i + rows],
                recipe,
                row_layout,
                nonfinite=nonfinite,
                amax_override=amax if isinstance(layout, PerTensor) else None,
                global_amax=amax if recipe.has_global_scale else None,
            )
            for i in range(0, x2.shape[0], rows)
        ]
    except NonFiniteError:
        return None  # let the whole-tensor cast raise, naming the block in the tensor's own coordinates
    assert all(isinstance(p, ScaledTensor) for p in parts)
    lead = tuple(x.shape[:-1])
    data = torch.cat([p.data for p in parts]).reshape(*lead, parts[0].data.shape[-1])  # type: ignore[union-attr]
    if isinstance(layout, PerTensor):
        scale = parts[0].scale  # type: ignore[union-attr]
    else:
        scale = torch.cat([p.scale for p in parts]).reshape(*lead, parts[0].scale.shape[-1])  # type: ignore[union-attr]
    return ScaledTensor(data, scale, recipe, layout, tuple(x.shape), global_scale=parts[0].global_scale)  # type: ignore[union-attr]
