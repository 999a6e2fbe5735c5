"""TorchOps: the array primitives of DESIGN.md §6 for ``torch.Tensor`` (any device).

The recipe math in :mod:`breccia._math` runs unchanged on these; only the bit-level storage primitives are torch's
own (native ``float8_e4m3fn`` / ``float8_e5m2`` / ``float8_e8m0fnu`` dtypes). FP8 element encoding uses torch's
native conversion, which is round-to-nearest-even and therefore byte-identical to the shared encoder once the input
is clamped to ±fmax (tested on every value and midpoint).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import torch

from breccia._formats import ElementFormat, decode_table
from breccia._ops import ArrayOps

__all__ = ["TorchOps"]

_FP8 = {"E4M3": torch.float8_e4m3fn, "E5M2": torch.float8_e5m2}
_FLOAT = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@cache
def _table(name: str, device: str) -> torch.Tensor:
    return torch.from_numpy(np.array(decode_table(name))).to(device)


class TorchOps(ArrayOps):
    name = "torch"
    prefer_no_sync = True

    def f32(self, x: Any) -> torch.Tensor:
        return x.to(torch.float32) if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=torch.float32)

    def i32(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.int32)

    def full(self, shape: tuple[int, ...], value: float, like: Any) -> torch.Tensor:
        return torch.full(shape, value, dtype=torch.float32, device=like.device)

    def bits(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.float32).contiguous().view(torch.int32)

    def from_bits(self, b: torch.Tensor) -> torch.Tensor:
        return b.to(torch.int32).contiguous().view(torch.float32)

    def where(self, c: torch.Tensor, a: Any, b: Any) -> torch.Tensor:
        return torch.where(c, a, b)

    def div(self, a: torch.Tensor, b: float) -> torch.Tensor:
        # a device tensor divisor: CUDA turns division by a host scalar into a reciprocal multiply (last-bit drift)
        # torch.full allocates on the device without a host-to-device copy (torch.tensor would sync)
        return a / torch.full((), b, dtype=torch.float32, device=a.device)

    def maximum(self, a: torch.Tensor, b: Any) -> torch.Tensor:
        if isinstance(b, torch.Tensor):
            return torch.maximum(a, b)
        return torch.clamp(a, min=b)

    def minimum(self, a: torch.Tensor, b: Any) -> torch.Tensor:
        if isinstance(b, torch.Tensor):
            return torch.minimum(a, b)
        return torch.clamp(a, max=b)

    def clip(self, x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        return torch.clamp(x, lo, hi)

    def rint(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x)  # half to even

    def isnan(self, x: torch.Tensor) -> torch.Tensor:
        return torch.isnan(x)

    def isfinite(self, x: torch.Tensor) -> torch.Tensor:
        return torch.isfinite(x)

    def any(self, x: torch.Tensor) -> bool:
        return bool(x.any().item())

    def amax(self, x: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
        return torch.amax(x.abs(), dim=axes, keepdim=True) if axes else x.abs()

    # torch reduces *every* axis when dim=() — blocks of one element need no reduction at all
    def vmin(self, x: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
        return torch.amin(x, dim=axes, keepdim=True) if axes else x

    def vmax(self, x: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
        return torch.amax(x, dim=axes, keepdim=True) if axes else x

    def reshape(self, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        return x.reshape(shape)

    def broadcast_to(self, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.broadcast_to(x, shape)

    def asarray(self, value: Any, like: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(value, np.float32), device=like.device)

    def to_numpy(self, x: torch.Tensor) -> Any:
        return x.detach().cpu().numpy()

    def pad_to(self, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        if tuple(x.shape) == tuple(shape):
            return x
        pads: list[int] = []
        for n, s in reversed(list(zip(x.shape, shape))):
            pads += [0, s - n]
        return torch.nn.functional.pad(x, pads)

    # --- encoding: torch's own RNE conversion for FP8 (bit-identical after the clamp)
    def encode_float(self, v: torch.Tensor, fmt: ElementFormat) -> torch.Tensor | None:
        if fmt.name in _FP8:
            return v.to(_FP8[fmt.name]).view(torch.uint8)
        return None

    # --- storage
    def store_codes(self, codes: torch.Tensor, fmt: ElementFormat) -> torch.Tensor:
        if fmt.storage == "fp8":
            return codes.to(torch.uint8).view(_FP8[fmt.name])
        if fmt.storage == "packed4":
            c = codes.to(torch.uint8) & 0x0F
            if c.shape[-1] % 2:
                c = torch.nn.functional.pad(c, (0, 1))
            return (c[..., 0::2] | (c[..., 1::2] << 4)).contiguous()
        if fmt.storage == "int8":
            return codes.to(torch.int8)
        return codes.to(torch.uint8)

    def load_codes(self, data: torch.Tensor, fmt: ElementFormat, n_last: int) -> torch.Tensor:
        if fmt.storage == "packed4":
            raw = data.view(torch.uint8)
            out = torch.stack([raw & 0x0F, raw >> 4], dim=-1).reshape(*raw.shape[:-1], -1)
            return out[..., :n_last].to(torch.int32)
        if fmt.storage == "int8":
            return data.to(torch.int32)
        return data.view(torch.uint8).to(torch.int32)

    def decode(self, data: torch.Tensor, fmt: ElementFormat, n_last: int) -> torch.Tensor:
        if fmt.storage == "fp8":
            return data.view(_FP8[fmt.name]).to(torch.float32)
        if fmt.storage == "int8":
            return data.to(torch.float32)
        codes = self.load_codes(data, fmt, n_last).to(torch.int64)
        return _table(fmt.name, str(data.device))[codes]

    def store_float(self, x: torch.Tensor, kind: str) -> torch.Tensor:
        return x.to(torch.float32).to(_FLOAT[kind])

    def store_e8m0(self, b: torch.Tensor) -> torch.Tensor:
        return b.to(torch.uint8).view(torch.float8_e8m0fnu)

    def load_e8m0(self, s: torch.Tensor) -> torch.Tensor:
        return s.view(torch.uint8).to(torch.int32)

    def store_zero_point(self, z: torch.Tensor, signed: bool) -> torch.Tensor:
        return z.to(torch.int8 if signed else torch.uint8)
