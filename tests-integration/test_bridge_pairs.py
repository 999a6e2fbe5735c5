"""Conversion between any two formats that share a recipe keeps every bit and never goes through FP32: each pair
runs with breccia's quantize/dequantize math disabled, so a bridge that decoded and re-encoded would fail here."""

from __future__ import annotations

import itertools

import pytest
from bridge_matrix import BRIDGES, SHAPES, Bridge, label, outcome, same_bits, sample

import breccia
from breccia import _api, _math, _reference
from breccia._testing import RECIPES

ALIGNED = SHAPES[0]
AVAILABLE = [b for b in BRIDGES if b.available()]


def _supported() -> dict[str, list[Bridge]]:
    out: dict[str, list[Bridge]] = {}
    for r in RECIPES:
        out[label(r)] = [b for b in AVAILABLE if outcome(b, r, ALIGNED)[0] == "ok"]
    return out


SUPPORTED = _supported()
INPUTS = {label(r): sample(r, ALIGNED) for r in RECIPES}
PAIRS = [
    pytest.param(r, a, b, id=f"{label(r)}:{a.name}→{b.name}")
    for r in RECIPES
    for a, b in itertools.permutations(SUPPORTED[label(r)], 2)
]


@pytest.fixture
def no_float_math(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a bridge conversion called breccia's quantize/dequantize math")

    # breccia's public names load lazily from _api and are cached on first access: patch breccia first, so the
    # value saved for restoring is the real function and not the patched _api one
    for mod, names in ((breccia, ("cast", "dequantize", "requantize")), (_api, ("cast", "dequantize", "requantize")),
                       (_math, ("encode", "decode_codes", "compute_scales", "dequant_values")),
                       (_reference, ("cast_numpy", "dequantize_numpy"))):  # fmt: skip
        for name in names:
            monkeypatch.setattr(mod, name, refuse)


@pytest.mark.parametrize(("recipe", "a", "b"), PAIRS)
def test_pair_keeps_bits(recipe: breccia.Recipe, a: Bridge, b: Bridge, no_float_math: None) -> None:
    st = INPUTS[label(recipe)]  # quantized at import, before the math is disabled
    with_a = a.round_trip(st)  # into format A and back
    via_b = b.load(b.export(with_a))  # then into format B and back
    assert same_bits(st, via_b)


def test_enough_pairs() -> None:
    # safetensors and DLPack take every recipe; the peers add their own: at least 4 formats share FP8 128×128
    assert len(SUPPORTED[label(breccia.Float8BlockScaling(block_m=128))]) >= 4 + (len(AVAILABLE) > 4)
    assert len(PAIRS) >= 100


def test_the_guard_bites(no_float_math: None) -> None:
    st = INPUTS[label(breccia.MXFP8BlockScaling())]
    with pytest.raises(AssertionError, match="quantize/dequantize math"):
        breccia.dequantize(st)
    with pytest.raises(AssertionError, match="quantize/dequantize math"):
        _reference.dequantize_numpy(st)
