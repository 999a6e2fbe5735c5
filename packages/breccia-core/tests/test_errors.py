"""Bad input: each case raises a BrecciaError subclass whose message names the offending value."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import breccia as b

X = np.ones((4, 256), np.float32)
E4M3 = X.astype(ml_dtypes.float8_e4m3fn)


def _fb(**kw: Any) -> Callable[[], object]:
    base: dict[str, Any] = {
        "data": E4M3,
        "scale": np.ones((4, 2), np.float32),
        "recipe": b.Float8BlockScaling(),
    }
    base.update(kw)
    return lambda: b.from_buffer(**base)


CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    ("int input", lambda: b.cast(np.ones((2, 32), np.int32), b.MXFP8BlockScaling()), b.DTypeError, "int32"),
    (
        "complex input",
        lambda: b.cast(np.ones(32, np.complex64), b.Float8CurrentScaling()),
        b.DTypeError,
        "complex64",
    ),
    ("bool input", lambda: b.cast(np.ones(32, bool), b.Float8CurrentScaling()), b.DTypeError, "bool"),
    ("string input", lambda: b.cast(np.array(["a"]), b.Float8CurrentScaling()), b.DTypeError, "<U1"),
    (
        "unknown array type",
        lambda: b.cast(object(), b.Float8CurrentScaling()),
        b.DTypeError,
        "builtins.object",
    ),
    ("MX block 64", lambda: b.MXFP8BlockScaling(block_size=64), b.RecipeError, "block_size=64"),
    ("MXFP4 block 16", lambda: b.MXFP4BlockScaling(block_size=16), b.RecipeError, "block_size=16"),
    ("NVFP4 block 32", lambda: b.NVFP4BlockScaling(block_size=32), b.RecipeError, "block_size=32"),
    ("NVFP4 block_m 8", lambda: b.NVFP4BlockScaling(block_m=8), b.RecipeError, "block_m=8"),
    ("unknown fp8 format", lambda: b.Float8CurrentScaling(fp8_format="E3M4"), b.RecipeError, "'E3M4'"),
    ("MX scale rounding", lambda: b.MXFP8BlockScaling(scale_rounding="up"), b.RecipeError, "'up'"),
    ("MXFP6 element", lambda: b.MXFP6BlockScaling(element="E2M1"), b.RecipeError, "'E2M1'"),
    ("INT4 scale dtype", lambda: b.INT4Scaling(scale_dtype="fp8"), b.RecipeError, "'fp8'"),
    ("unsigned symmetric", lambda: b.INT4Scaling(signed=False), b.RecipeError, "signed=True"),
    ("block_k zero", lambda: b.Float8BlockScaling(block_k=0), b.RecipeError, "0"),
    ("negative epsilon", lambda: b.Float8CurrentScaling(amax_epsilon=-1.0), b.RecipeError, "-1.0"),
    ("bool as int", lambda: b.DelayedScaling(amax_history_len=True), b.RecipeError, "True"),
    ("layout block -1", lambda: b.PerBlockK(block_k=-1), b.LayoutError, "-1"),
    ("PerBlock2D axis 0", lambda: b.PerBlock2D(axis=0), b.LayoutError, "axis"),
    (
        "MX with 1x64 layout",
        lambda: b.cast(X, b.MXFP8BlockScaling(), layout=b.PerBlockK(64)),
        b.RecipeError,
        "PerBlockK(block_k=64",
    ),
    (
        "per-tensor recipe, block layout",
        lambda: b.cast(X, b.Float8CurrentScaling(), layout=b.PerBlockK(128)),
        b.RecipeError,
        "PerBlockK",
    ),
    (
        "2-D blocks on 1-D",
        lambda: b.cast(np.ones(300, np.float32), b.Float8BlockScaling(block_m=128)),
        b.LayoutError,
        "(300,)",
    ),
    ("axis out of range", lambda: b.cast(X, b.MXFP8BlockScaling(), axis=5), b.LayoutError, "axis=5"),
    ("axis not int", lambda: b.cast(X, b.MXFP8BlockScaling(), axis=1.0), b.RecipeError, "1.0"),
    ("recipe as string", lambda: b.cast(X, "MXFP8"), b.RecipeError, "'MXFP8'"),
    (
        "nonfinite option",
        lambda: b.cast(X, b.MXFP8BlockScaling(), nonfinite="ignore"),
        b.RecipeError,
        "'ignore'",
    ),
    (
        "history on non-delayed",
        lambda: b.cast(X, b.Float8CurrentScaling(), history=b.AmaxHistory.for_recipe(b.DelayedScaling())),
        b.RecipeError,
        "Float8CurrentScaling",
    ),
    ("history wrong type", lambda: b.cast(X, b.DelayedScaling(), history=[1.0]), b.RecipeError, "list"),
    ("wrong scale shape", _fb(scale=np.ones((4, 1), np.float32)), b.LayoutError, "(4, 2)"),
    ("wrong data dtype", _fb(data=X), b.DTypeError, "float32"),
    ("uint8 data for fp8", _fb(data=E4M3.view(np.uint8)), b.DTypeError, "uint8"),
    ("wrong scale dtype", _fb(scale=np.ones((4, 2), np.float16)), b.DTypeError, "float16"),
    (
        "packed data wrong shape",
        lambda: b.from_buffer(
            np.zeros((4, 100), np.uint8),
            np.zeros((4, 8), np.uint8).view(ml_dtypes.float8_e8m0fnu),
            b.MXFP4BlockScaling(),
            shape=(4, 256),
        ),
        b.LayoutError,
        "(4, 128)",
    ),
    (
        "NVFP4 without global",
        lambda: b.from_buffer(
            np.zeros((4, 8), np.uint8),
            np.zeros((4, 1), np.uint8).view(ml_dtypes.float8_e4m3fn),
            b.NVFP4BlockScaling(),
        ),
        b.LayoutError,
        "global_scale",
    ),
    (
        "asymmetric without zero point",
        lambda: b.from_buffer(np.zeros((4, 64), np.uint8), np.ones((4, 1), np.float16), b.INT4Scaling(symmetric=False)),
        b.LayoutError,
        "zero_point",
    ),
    (
        "symmetric with zero point",
        lambda: b.from_buffer(
            np.zeros((4, 64), np.uint8),
            np.ones((4, 1), np.float16),
            b.INT4Scaling(),
            zero_point=np.zeros((4, 1), np.int8),
        ),
        b.LayoutError,
        "zero_point",
    ),
    ("negative logical shape", _fb(shape=(4, -256)), b.LayoutError, "-256"),
    ("matmul K mismatch", lambda: b.matmul(X, np.ones((128, 8), np.float32)), b.ShapeError, "K=256"),
    ("matmul b 3-D", lambda: b.matmul(X, np.ones((2, 256, 8), np.float32)), b.ShapeError, "(2, 256, 8)"),
    ("matmul int operand", lambda: b.matmul(X, np.ones((256, 8), np.int64)), b.DTypeError, "int64"),
    ("dequantize non-tensor", lambda: b.dequantize(X), b.DTypeError, "ndarray"),
    (
        "dequantize bad dtype",
        lambda: b.dequantize(b.cast(X, b.MXFP8BlockScaling()), dtype="int8"),
        b.DTypeError,
        "'int8'",
    ),
    ("unknown recipe record", lambda: b.recipe_from_dict({"recipe": "FP3"}), b.RecipeError, "'FP3'"),
    (
        "bad recipe field",
        lambda: b.recipe_from_dict({"recipe": "MXFP8BlockScaling", "bogus": 1}),
        b.RecipeError,
        "bogus",
    ),
    (
        "unknown layout record",
        lambda: b.layout_from_dict({"layout": "Diagonal"}),
        b.LayoutError,
        "'Diagonal'",
    ),
    (
        "fp16 scale overflow",
        lambda: b.cast(np.full((1, 128), 1e9, np.float32), b.INT4Scaling()),
        b.RecipeError,
        "1e+09",
    ),
    (
        "NVFP4 reciprocal multiplier overflow",
        lambda: b.cast(np.full((1, 32), 2.0**-118, np.float32), b.NVFP4BlockScaling(data_scaling="reciprocal")),
        b.RecipeError,
        "data_scaling='divide'",
    ),
    (
        "non-finite input",
        lambda: b.cast(np.array([[1.0, np.nan]], np.float32), b.MXFP8BlockScaling()),
        b.NonFiniteError,
        "block (0, 0)",
    ),
]


@pytest.mark.parametrize(("what", "call", "exc", "needle"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(what: str, call: Callable[[], object], exc: type[Exception], needle: str) -> None:
    with pytest.raises(exc) as info:
        call()
    assert isinstance(info.value, b.BrecciaError)
    assert needle in str(info.value), f"{what}: message does not name {needle!r}: {info.value}"


def test_there_are_at_least_twenty_cases() -> None:
    assert len(CASES) >= 20


def test_value_errors_are_value_errors() -> None:
    for cls in (b.LayoutError, b.ShapeError, b.RecipeError, b.NonFiniteError, b.FormatError):
        assert issubclass(cls, ValueError) and issubclass(cls, b.BrecciaError)
    assert issubclass(b.BackendNotInstalledError, ImportError)
    assert issubclass(b.DTypeError, TypeError)
