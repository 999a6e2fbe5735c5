"""The Gluon kernels through the installed Triton's sm_90 compiler, with no GPU (``_sm90_gluon.py``).

Gluon has no interpreter, so without this a machine with no GPU never compiles them, and Gluon's API moves between
Triton releases: Triton 3.8 renamed the TMA copies and 3.9 removed ``gl.thread_barrier``, which broke the
warp-specialised GEMM and the split-K W4A16 kernels there unseen. Every kernel is compiled whether or not
``GLUON_TRITON`` lets this Triton run it, so a break shows before the window is widened; the checks are that each
case compiled, is a whole kernel with its tensor-core instructions, and spills nothing to local memory (a spill in
these register-budgeted kernels is a performance fault a GPU run would only show as time).
"""

from __future__ import annotations

from pathlib import Path

import pytest

triton = pytest.importorskip("triton")
pytest.importorskip("triton.backends.nvidia")

from _sm90 import run_script  # noqa: E402  (after the skips)
from _sm90_gluon import CASES  # noqa: E402

GLUON = tuple(int(v) for v in triton.__version__.split(".")[:2]) >= (3, 6)


@pytest.mark.skipif(not GLUON, reason="the Gluon kernels are written in Triton 3.6's Gluon")
def test_gluon_kernels_compile_for_sm90(tmp_path: Path) -> None:
    results = run_script("_sm90_gluon.py", tmp_path, timeout=600)  # 15 compiles: ~30 s on two CPU cores
    assert [r["case"] for r in results] == [c[0] for c in CASES]  # every case reported, none skipped
    for r in results:
        assert "error" not in r, r
        assert r["instructions"] > 300 and r["mma"] >= 8, r  # a whole kernel with its MMAs, not an empty listing
        assert r["spills"] == 0, r
        assert r["maxnreg"] is None or r["regs"] <= r["maxnreg"], r
