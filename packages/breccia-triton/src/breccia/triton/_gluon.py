"""Where the Gluon kernels may be imported. breccia-triton accepts Triton 3.2 and newer; the Gluon kernels
(:mod:`._gemm_ws`, :mod:`._w4a16_mma`) are written against Triton 3.6's Gluon API, so older Tritons keep to the
Triton kernels."""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

import triton


def gluon_module(name: str) -> ModuleType | None:
    """``breccia.triton.<name>``, or None where this Triton is older than 3.6 or has no Gluon of 3.6's shape."""
    return _module(name, triton.__version__)


@functools.cache
def _module(name: str, version: str) -> ModuleType | None:
    """Cached per Triton version: asked on every W4A16 call, whose host path is part of an eager decode step."""
    if tuple(int(v) for v in version.split(".")[:2]) < (3, 6):
        return None
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError:
        return None
