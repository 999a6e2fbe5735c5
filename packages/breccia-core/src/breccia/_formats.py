"""Element formats: the bit-level facts about every code breccia stores (DESIGN.md §5).

A :class:`ElementFormat` is pure data (exponent/mantissa widths, bias, the largest finite value, how a code is
stored). The numbers come from the OCP MX v1.0 and OCP 8-bit float specs and are cross-checked against
``ml_dtypes`` exhaustively in the tests; decoding tables are built *from* ml_dtypes, so the reference can never
disagree with it. Encoding is done by the generic bit arithmetic in :mod:`breccia._math`, which is much faster
than ml_dtypes' scalar ``astype`` loop and also runs on every framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

import ml_dtypes
import numpy as np

from ._errors import RecipeError

__all__ = ["FORMATS", "ElementFormat", "decode_table", "get_format", "pack_nibbles", "unpack_nibbles"]

Storage = Literal["fp8", "packed4", "byte", "int8"]


@dataclass(frozen=True)
class ElementFormat:
    """One element (or scale) encoding.

    ``kind`` is ``"float"`` (sign, ``ebits`` exponent, ``mbits`` mantissa, IEEE-like with subnormals),
    ``"int"`` (two's complement when ``signed``) or ``"e8m0"`` (an unsigned biased exponent).
    ``storage`` says how a tensor of codes is held: ``"fp8"`` one code per byte in the framework's native
    float8 dtype, ``"packed4"`` two codes per uint8 (element 2i in the low nibble), ``"byte"`` one code per
    uint8 (FP6, E8M0 on frameworks without the dtype), ``"int8"`` one signed int8.
    """

    name: str
    kind: Literal["float", "int", "e8m0"]
    bits: int
    ebits: int = 0
    mbits: int = 0
    bias: int = 0
    fmax: float = 0.0
    nan_code: int | None = None
    signed: bool = True
    storage: Storage = "byte"
    native: str | None = None  # the ml_dtypes / torch / jax dtype name, where one exists
    ieee_specials: bool = False  # all-ones exponent means Inf/NaN (E5M2), instead of finite values

    @property
    def qmin(self) -> int:
        """Smallest integer code value (integer formats)."""
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        """Largest integer code value (integer formats)."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def emax(self) -> int:
        """Exponent of the largest power of two not above ``fmax`` (OCP MX's ``emax_elem``)."""
        return int(np.floor(np.log2(self.fmax)))

    @property
    def min_normal(self) -> float:
        return float(2.0 ** (1 - self.bias))

    @property
    def sign_shift(self) -> int:
        return self.ebits + self.mbits


FORMATS: dict[str, ElementFormat] = {
    f.name: f
    for f in (
        ElementFormat("E4M3", "float", 8, 4, 3, 7, 448.0, nan_code=0x7F, storage="fp8", native="float8_e4m3fn"),
        ElementFormat(
            "E5M2",
            "float",
            8,
            5,
            2,
            15,
            57344.0,
            nan_code=0x7F,
            storage="fp8",
            native="float8_e5m2",
            ieee_specials=True,
        ),
        ElementFormat("E2M1", "float", 4, 2, 1, 1, 6.0, storage="packed4", native="float4_e2m1fn"),
        ElementFormat("E2M3", "float", 6, 2, 3, 1, 7.5, storage="byte", native="float6_e2m3fn"),
        ElementFormat("E3M2", "float", 6, 3, 2, 3, 28.0, storage="byte", native="float6_e3m2fn"),
        ElementFormat("E8M0", "e8m0", 8, 8, 0, 127, 2.0**127, nan_code=0xFF, signed=False, native="float8_e8m0fnu"),
        ElementFormat("INT4", "int", 4, storage="packed4"),
        ElementFormat("UINT4", "int", 4, signed=False, storage="packed4"),
        ElementFormat("INT8", "int", 8, storage="int8"),
        ElementFormat("UINT8", "int", 8, signed=False, storage="byte"),
    )
}


def get_format(name: str) -> ElementFormat:
    """Look a format up by name (``"E4M3"``, ``"E2M1"``, ``"INT4"`` …); raises :class:`RecipeError` if unknown."""
    try:
        return FORMATS[name.upper()]
    except (KeyError, AttributeError):
        raise RecipeError(f"unknown element format {name!r}; expected one of {sorted(FORMATS)}") from None


def ml_dtype(fmt: ElementFormat) -> np.dtype:
    """The ml_dtypes dtype of a float format (E4M3 → ``float8_e4m3fn``, E8M0 → ``float8_e8m0fnu``)."""
    if fmt.native is None:
        raise RecipeError(f"format {fmt.name} has no ml_dtypes dtype")
    dt: np.dtype = np.dtype(getattr(ml_dtypes, fmt.native))
    return dt


@cache
def decode_table(name: str) -> np.ndarray:
    """fp32 value of every code of a format, indexed by code, built from ml_dtypes (or two's complement)."""
    fmt = get_format(name)
    n = 1 << fmt.bits
    codes = np.arange(n, dtype=np.uint8)
    if fmt.kind == "int":
        vals = codes.astype(np.int32)
        if fmt.signed:
            vals = np.where(vals >= n // 2, vals - n, vals)
        table = vals.astype(np.float32)
    else:
        table = codes.view(ml_dtype(fmt)).astype(np.float32)
    table.setflags(write=False)
    return table


def pack_nibbles(codes: np.ndarray) -> np.ndarray:
    """Pack 4-bit codes (any integer dtype, values 0–15) along the last axis: element 2i → low nibble."""
    codes = np.asarray(codes)
    if codes.shape[-1] % 2:
        pad = np.zeros((*codes.shape[:-1], 1), dtype=codes.dtype)
        codes = np.concatenate([codes, pad], axis=-1)
    lo = codes[..., 0::2].astype(np.uint8) & np.uint8(0x0F)
    hi = codes[..., 1::2].astype(np.uint8) & np.uint8(0x0F)
    packed: np.ndarray = lo | (hi << np.uint8(4))
    return packed


def unpack_nibbles(packed: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`pack_nibbles`: uint8 codes of the first ``n`` elements of each packed row."""
    packed = np.asarray(packed, dtype=np.uint8)
    out = np.empty((*packed.shape[:-1], packed.shape[-1] * 2), dtype=np.uint8)
    out[..., 0::2] = packed & np.uint8(0x0F)
    out[..., 1::2] = packed >> np.uint8(4)
    return out[..., :n]
