"""Where the Gluon kernels may be imported. breccia-triton accepts Triton 3.2 and newer; the Gluon kernels
(:mod:`._gemm_ws`, :mod:`._w4a16_mma`) are written against Triton 3.6's Gluon API, so other Tritons keep to the
Triton kernels.

Why an upper bound too: Gluon is experimental and its API moves between minor releases. Triton 3.8 renamed the
TMA copies and 3.9 dropped ``gl.thread_barrier``; before :mod:`._gluon_compat` took either name, the
warp-specialised GEMM failed to compile on 3.8+ at its first call. The kernels now compile for sm_90 with 3.6 to
3.9 (``tests/test_gluon_compile.py`` checks the installed Triton, no GPU needed), but only 3.6 has run them on a
GPU, where their bits and speed are measured. A newer Triton gets the Triton-language kernels, slower but measured
correct, until a GPU run on it widens this window."""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

import triton

GLUON_TRITON = ((3, 6), (3, 8))  # the Triton minor versions, [from, to), the Gluon kernels run with


def gluon_module(name: str) -> ModuleType | None:
    """``breccia.triton.<name>``, or None where this Triton is outside ``GLUON_TRITON`` (3.6 and 3.7) or has no
    Gluon of 3.6's shape."""
    return _module(name, triton.__version__)


@functools.cache
def _module(name: str, version: str) -> ModuleType | None:
    """Cached per Triton version: asked on every W4A16 call, whose host path is part of an eager decode step."""
    lo, hi = GLUON_TRITON
    if not lo <= tuple(int(v) for v in version.split(".")[:2]) < hi:
        return None
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError:
        return None
