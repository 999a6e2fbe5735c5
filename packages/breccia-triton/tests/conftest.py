"""Run the Triton kernels on CUDA when there is a GPU, else in Triton's interpreter on CPU.

``TRITON_INTERPRET`` is read when triton is first imported, so it is set here, before any test imports triton
(breccia.triton imports it lazily), and only when no CUDA device exists: on a GPU the real kernels are tested.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# The tests compare the kernel with breccia-torch's own driver: keep breccia.cast from routing CUDA casts to this
# add-on (test_routing.py turns it back on where it checks the routing itself).
os.environ["BRECCIA_TRITON"] = "0"


@pytest.fixture
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if a finite input takes the breccia-torch fallback (the kernel would then not be what is tested)."""
    from breccia.triton import _cast as triton_cast

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("the Triton cast fell back to breccia-torch on finite input")

    monkeypatch.setattr(triton_cast, "_fallback", boom)


_REAL_EMPTY = torch.empty


def _poisoned_empty(*args: Any, **kwargs: Any) -> torch.Tensor:
    """``torch.empty`` filled with a marker where breccia's own code allocates: NaN in the float formats (FP8 and
    E8M0 too), the largest value in the integer ones. An output element, scale or workspace slot that a kernel fails
    to write then holds it, not what the allocator left there (often zeros, which a zero code matches, or an earlier
    test's bytes), and a per-program flag left unwritten reads as a large nonzero flag, which sends the cast to its
    fallback (a failure under the ``no_fallback`` fixture). Triton's interpreter allocates with ``torch.empty`` too,
    per launch: its buffers are left alone (filling them cost the suite ~20 %)."""
    t = _REAL_EMPTY(*args, **kwargs)
    caller = sys._getframe(1).f_globals.get("__name__", "")
    if caller.startswith("breccia.") and t.numel() and t.is_contiguous() and t.dtype != torch.bool:
        with torch.no_grad():  # also a leaf created with requires_grad
            try:
                t.fill_(float("nan") if t.is_floating_point() else torch.iinfo(t.dtype).max)
            except (RuntimeError, TypeError):  # a dtype without fill (packed FP4): all-ones bytes
                t.reshape(-1).view(torch.uint8).fill_(0xFF)
    return t


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here runs with :func:`_poisoned_empty` as ``torch.empty``: the kernels' outputs, flags and split-K
    workspaces, which breccia-triton and breccia-torch allocate, are filled with the marker, so each test checks that
    they are written, on the GPU and in the interpreter."""
    monkeypatch.setattr(torch, "empty", _poisoned_empty)
