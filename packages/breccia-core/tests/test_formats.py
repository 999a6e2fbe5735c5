"""Codecs, exhaustively: every code of every format against ml_dtypes, every value and midpoint encoded."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from spec import ML as SPEC_ML

from breccia import _math as M
from breccia._fastnp import Scratch, encode_float_into
from breccia._formats import FORMATS, decode_table, get_format, ml_dtype, pack_nibbles, unpack_nibbles
from breccia._ops import NumpyOps

OPS = NumpyOps()
FLOATS = ["E4M3", "E5M2", "E2M1", "E2M3", "E3M2"]
ML = {**SPEC_ML, "E8M0": ml_dtypes.float8_e8m0fnu}


def all_codes(name: str) -> np.ndarray:
    return np.arange(1 << get_format(name).bits, dtype=np.uint8)


@pytest.mark.parametrize("name", [*FLOATS, "E8M0"])
def test_format_constants_match_ml_dtypes(name: str) -> None:
    f = get_format(name)
    fi = ml_dtypes.finfo(ML[name])
    assert f.fmax == float(fi.max)
    assert f.bits == fi.bits
    if name != "E8M0":
        assert f.min_normal == float(fi.smallest_normal)
        assert f.mbits == fi.nmant
        assert f.emax == int(fi.maxexp) - 1


@pytest.mark.parametrize("name", [*FLOATS])
def test_bit_decoder_equals_ml_dtypes_on_every_code(name: str) -> None:
    # 256 E4M3/E5M2 bytes, 16 E2M1 nibbles, 64 FP6 codes: the arithmetic decoder vs ml_dtypes' own conversion.
    codes = all_codes(name)
    ours = M.decode_codes(OPS, codes.astype(np.int32), get_format(name))
    ref = codes.view(ML[name]).astype(np.float32)
    np.testing.assert_array_equal(ours, ref)  # NaN == NaN here, and ±0 must match by sign:
    finite = ~np.isnan(ref)
    assert np.array_equal(np.signbit(ours[finite]), np.signbit(ref[finite]))


def test_e8m0_every_byte() -> None:
    b = np.arange(256, dtype=np.int32)
    ours = M.stored_scale_to_f32(OPS, _mx(), b.astype(np.uint8).view(ml_dtypes.float8_e8m0fnu), None)
    ref = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e8m0fnu).astype(np.float32)
    np.testing.assert_array_equal(ours, ref)
    assert np.isnan(ours[255]) and ours[0] == 2.0**-127 and ours[127] == 1.0 and ours[254] == 2.0**127


def _mx():  # type: ignore[no-untyped-def]
    import breccia

    return breccia.MXFP8BlockScaling()


def test_integer_tables_are_twos_complement() -> None:
    assert decode_table("INT4").tolist() == [*range(8), *range(-8, 0)]
    assert decode_table("UINT4").tolist() == list(range(16))
    assert decode_table("INT8").tolist() == [*range(128), *range(-128, 0)]


def _encode_inputs(name: str) -> np.ndarray:
    """Every finite value (±), every midpoint between neighbours (ties) and one ulp either side, random values."""
    f = get_format(name)
    vals = all_codes(name).view(ML[name]).astype(np.float32)
    vals = np.unique(np.abs(vals[np.isfinite(vals)]))
    mids = ((vals[1:].astype(np.float64) + vals[:-1]) / 2).astype(np.float32)
    rng = np.random.default_rng(7)
    rnd = np.concatenate(
        [
            rng.uniform(-f.fmax, f.fmax, 200_000),
            rng.standard_normal(100_000) * f.min_normal,
            np.exp(rng.uniform(-60, np.log(f.fmax), 100_000)),
        ]
    ).astype(np.float32)
    x = np.concatenate(
        [
            vals,
            mids,
            np.nextafter(mids, np.float32(np.inf)),
            np.nextafter(mids, np.float32(0)),
            rnd,
            np.float32([0.0, 1e-45, 1e-38]),
        ]
    )
    return np.clip(np.concatenate([x, -x]), -f.fmax, f.fmax).astype(np.float32)


@pytest.mark.parametrize("name", FLOATS)
def test_encode_every_value_and_midpoint(name: str) -> None:
    f = get_format(name)
    x = _encode_inputs(name)
    ref = x.astype(ML[name]).view(np.uint8)
    generic = M.encode_float(OPS, x, f).astype(np.uint8)
    np.testing.assert_array_equal(generic, ref)
    fast = encode_float_into(x, np.float32(1.0), f, Scratch(x.size), has_nan=False).astype(np.uint8)
    if f.storage != "fp8":
        fast &= np.uint8((1 << f.bits) - 1)
    np.testing.assert_array_equal(fast, ref)


@pytest.mark.parametrize("name", FLOATS)
def test_ties_round_to_even(name: str) -> None:
    f = get_format(name)
    vals = np.unique(np.abs(all_codes(name).view(ML[name]).astype(np.float32)))
    vals = vals[np.isfinite(vals)]
    mids = ((vals[1:].astype(np.float64) + vals[:-1]) / 2).astype(np.float32)
    codes = M.encode_float(OPS, mids, f)
    # a tie goes to the neighbour whose code is even
    assert np.all(codes % 2 == 0)


@pytest.mark.parametrize("name", FLOATS)
def test_overflow_saturates_after_clamp(name: str) -> None:
    f = get_format(name)
    big = np.float32([f.fmax * 1.01, 1e30, np.inf, -np.inf, -1e30])
    codes = M.encode(OPS, _float_recipe(name), big, M.Scales(np.float32(1), np.float32(1)), has_nan=False)
    fmax_code = int(np.float32(f.fmax).astype(ML[name]).view(np.uint8))
    sign = 1 << (f.ebits + f.mbits)
    assert codes.tolist() == [fmax_code] * 3 + [fmax_code | sign] * 2


def _float_recipe(name: str):  # type: ignore[no-untyped-def]
    import breccia

    return {
        "E4M3": breccia.Float8CurrentScaling(),
        "E5M2": breccia.Float8CurrentScaling(fp8_format="E5M2"),
        "E2M1": breccia.MXFP4BlockScaling(),
        "E2M3": breccia.MXFP6BlockScaling(element="E2M3"),
        "E3M2": breccia.MXFP6BlockScaling(element="E3M2"),
    }[name]


def test_nan_encodes_to_nan_code_when_propagating() -> None:
    f = get_format("E4M3")
    x = np.float32([np.nan, 1.0, -np.nan])
    codes = M.encode(OPS, _float_recipe("E4M3"), x, M.Scales(np.float32(1), np.float32(1)), has_nan=True)
    assert codes.tolist()[0] == f.nan_code and codes.tolist()[1] == 0x38


def test_pow2_exponents_against_frexp() -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([np.exp2(rng.uniform(-149, 127, 50_000)), np.exp2(np.arange(-126, 127, dtype=np.float64))])
    x = x.astype(np.float32)
    x = np.concatenate([x, np.nextafter(x, np.float32(np.inf)), np.nextafter(x, np.float32(0))])
    x = x[(x > 0) & np.isfinite(x)]
    ceil_ours = M.pow2_ceil_exponent(OPS, x)
    floor_ours = M.floor_exponent(OPS, x)
    for v, c, fl in zip(x.tolist(), ceil_ours.tolist(), floor_ours.tolist()):
        m, e = math.frexp(v)
        exact_ceil = e - 1 if m == 0.5 else e
        assert c == max(exact_ceil, -127), v
        if v >= 2.0**-126:
            assert fl == e - 1, v


def test_pack_order_low_nibble_first() -> None:
    codes = np.array([[1, 2, 3, 4, 5]], np.uint8)
    packed = pack_nibbles(codes)
    assert packed.tolist() == [[0x21, 0x43, 0x05]]
    np.testing.assert_array_equal(unpack_nibbles(packed, 5), codes)


def test_pack_roundtrip_random() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 64, 129):
        c = rng.integers(0, 16, (3, n), dtype=np.uint8)
        np.testing.assert_array_equal(unpack_nibbles(pack_nibbles(c), n), c)


def test_every_format_has_consistent_storage() -> None:
    for f in FORMATS.values():
        if f.storage == "fp8":
            assert ml_dtype(f).itemsize == 1
        if f.kind == "int":
            assert f.qmax - f.qmin + 1 == 1 << f.bits
