"""Run the Triton kernels on CUDA when there is a GPU, else in Triton's interpreter on CPU.

``TRITON_INTERPRET`` is read when triton is first imported, so it is set here, before any test imports triton
(breccia.triton imports it lazily), and only when no CUDA device exists: on a GPU the real kernels are tested.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
