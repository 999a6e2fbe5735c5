"""Run the Triton kernels on CUDA when there is a GPU, else in Triton's interpreter on CPU.

``TRITON_INTERPRET`` is read when triton is first imported, so it is set here, before any test imports triton
(breccia.triton imports it lazily), and only when no CUDA device exists: on a GPU the real kernels are tested.
"""

from __future__ import annotations

import os
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
    """``torch.empty`` with every byte set to 0xFF: NaN in every float format, -1 in the signed integers, 0xFF
    codes. An output byte, flag or workspace slot that a kernel fails to write then holds that pattern instead of
    whatever the allocator left there (on CPU, usually zeros that a zero code or a zero flag would match)."""
    t = _REAL_EMPTY(*args, **kwargs)
    if t.numel() and t.dtype != torch.bool and t.is_contiguous():
        t.reshape(-1).view(torch.uint8).fill_(0xFF)
    return t


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here runs with :func:`_poisoned_empty` as ``torch.empty``: the kernels' outputs, flags and split-K
    workspaces are allocated with it, so each test checks that they are written, on the GPU and in the interpreter."""
    monkeypatch.setattr(torch, "empty", _poisoned_empty)
