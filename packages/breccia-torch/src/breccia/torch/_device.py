"""Moving a ScaledTensor between devices (every buffer together, so the one-device invariant holds)."""

from __future__ import annotations

from typing import Any

import torch

from breccia._tensor import ScaledTensor

__all__ = ["to_device"]


def to_device(st: ScaledTensor, device: torch.device | str, *, non_blocking: bool = False) -> ScaledTensor:
    """A copy of ``st`` with data, scale, global scale and zero point on ``device`` (same bits)."""

    def mv(t: Any) -> Any:
        return None if t is None else t.to(device, non_blocking=non_blocking)

    return ScaledTensor(
        mv(st.data),
        mv(st.scale),
        st.recipe,
        st.layout,
        st.shape,
        global_scale=mv(st.global_scale),
        zero_point=mv(st.zero_point),
    )
