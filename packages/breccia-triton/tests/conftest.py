"""Run the Triton kernels on CUDA when there is a GPU, else in Triton's interpreter on CPU.

``TRITON_INTERPRET`` is read when triton is first imported, so it is set here, before any test imports triton
(breccia.triton imports it lazily), and only when no CUDA device exists: on a GPU the real kernels are tested.
"""

from __future__ import annotations

import os

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
