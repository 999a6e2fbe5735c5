"""breccia.torch — the PyTorch backend: native cast/dequantize/matmul on CPU and CUDA, and training.

Importing it (breccia does so lazily the first time it sees a ``torch.Tensor``) registers ScaledTensor as a torch
pytree node. Public: :func:`to_device`, :func:`cast_ste` (straight-through estimator), :mod:`breccia.torch.nn`
(``ScaledLinear``, ``convert_linears``, ``export_weights``).
"""

from __future__ import annotations

from breccia._dispatch import register_backend

from ._backend import BACKEND, TorchBackend
from ._device import to_device
from ._pytree import register as _register_pytree
from ._ste import cast_ste, fake_quant

_register_pytree()
register_backend("torch", BACKEND)

__all__ = ["BACKEND", "TorchBackend", "cast_ste", "fake_quant", "to_device"]
