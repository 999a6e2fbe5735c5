"""The MLX facts MLXOps relies on (module docstring of breccia.mlx._ops), checked on the installed MLX, plus
dispatch: breccia loads breccia.mlx lazily and only when it sees an mlx array."""

from __future__ import annotations

import subprocess
import sys

import ml_dtypes
import mlx.core as mx
import numpy as np

from breccia import _math as M
from breccia._formats import get_format
from breccia._ops import NumpyOps
from breccia.mlx import MLXOps

OPS = MLXOps()


def bits(a: mx.array) -> np.ndarray:
    return np.array(a.astype(mx.float32)).view(np.uint32)


def test_division_is_ieee() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(1 << 16) * np.exp(rng.uniform(-80, 80, 1 << 16))).astype(np.float32)
    for d in (448.0, 6.0, 2688.0, 57344.0, 7.0, 7.5):
        np.testing.assert_array_equal(bits(OPS.div(mx.array(x), d)), (x / np.float32(d)).view(np.uint32))


def test_round_half_even_and_subnormals() -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 1e-40, 2.0**-127, -3e-39], np.float32)
    np.testing.assert_array_equal(bits(OPS.rint(mx.array(x))), np.rint(x).view(np.uint32))
    sub = mx.array(x[5:])
    np.testing.assert_array_equal(bits(sub * 1.0), x[5:].view(np.uint32))  # no flush to zero


def test_nan_propagates() -> None:
    x = mx.array(np.array([[1.0, np.nan, -2.0]], np.float32))
    assert np.isnan(np.array(OPS.amax(x, (1,)))).all()
    assert np.isnan(np.array(OPS.clip(x, -1.0, 1.0)))[0, 1]
    assert np.isnan(np.array(OPS.maximum(x, 0.0)))[0, 1]


def test_encode_every_fp32_pattern_matches_numpy() -> None:
    """The shared encoder on MLX = on numpy for a sweep of clamped fp32 values (including every midpoint)."""
    for name in ("E4M3", "E5M2", "E2M1", "E2M3", "E3M2"):
        fmt = get_format(name)
        grid = np.unique(np.abs(np.array([v for v in _values(fmt) if np.isfinite(v)], np.float32)))
        mids = (grid[:-1] + grid[1:]) / 2
        v = np.concatenate([grid, mids, np.nextafter(mids, 0), np.nextafter(mids, np.inf)]).astype(np.float32)
        v = np.concatenate([v, -v, np.random.default_rng(1).uniform(-fmt.fmax, fmt.fmax, 4096).astype(np.float32)])
        v = np.clip(v, -fmt.fmax, fmt.fmax)
        got = np.array(M.encode_float(OPS, mx.array(v), fmt))
        want = M.encode_float(NumpyOps(), v, fmt)
        np.testing.assert_array_equal(got, want, err_msg=name)


def _values(fmt: object) -> np.ndarray:
    from breccia._formats import decode_table

    return decode_table(fmt.name)  # type: ignore[attr-defined]


def test_native_e4m3_encoder_equals_shared_encoder() -> None:
    """MLXOps.encode_float uses ``mx.to_fp8`` for E4M3: equal to the shared encoder on every boundary."""
    fmt = get_format("E4M3")
    grid = np.unique(np.abs(_values(fmt)[np.isfinite(_values(fmt))]))
    mids = (grid[:-1] + grid[1:]) / 2
    rng = np.random.default_rng(2)
    wide = rng.standard_normal(1 << 16) * np.exp(rng.uniform(-100, 6, 1 << 16))
    tiny = [0.0, -0.0, 1e-45, 2.0**-10, 2.0**-11, 3 * 2.0**-11]
    v = np.concatenate([grid, mids, np.nextafter(mids, 0), np.nextafter(mids, np.inf), wide, tiny]).astype(np.float32)
    v = np.clip(np.concatenate([v, -v]), -448, 448).astype(np.float32)
    native = OPS.encode_float(mx.array(v), fmt)
    assert native is not None
    np.testing.assert_array_equal(np.array(native), M.encode_float(NumpyOps(), v, fmt))
    np.testing.assert_array_equal(np.array(native), v.astype(ml_dtypes.float8_e4m3fn).view(np.uint8))
    assert OPS.encode_float(mx.array(v), get_format("E5M2")) is None


def test_lazy_dispatch() -> None:
    code = (
        "import sys, breccia; assert 'mlx' not in sys.modules and 'breccia.mlx' not in sys.modules;"
        "import mlx.core as mx; st = breccia.cast(mx.ones((2, 32)), breccia.MXFP8BlockScaling());"
        "assert 'breccia.mlx' in sys.modules and st.framework == 'mlx'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
