"""Run the Triton kernels on CUDA when there is a GPU, else in Triton's interpreter on CPU.

``TRITON_INTERPRET`` is read when triton is first imported, so it is set here, before any test imports triton
(breccia.triton imports it lazily), and only when no CUDA device exists: on a GPU the real kernels are tested.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# The tests compare the kernel with breccia-torch's own driver: keep breccia.cast from routing CUDA casts to this
# add-on (test_routing.py turns it back on where it checks the routing itself).
os.environ["BRECCIA_TRITON"] = "0"
