"""breccia.bridges — lossless bridges between ScaledTensor and the formats people ship.

safetensors files and sharded checkpoints, DLPack, DeepSeek-V3, torchao, TransformerEngine and compressed-tensors
(vLLM / Hugging Face). Every bridge passes bits through unchanged (no FP32 round trip); external libraries are
imported only when their bridge is called, and a missing one raises :class:`breccia.BackendNotInstalledError`
naming the pip extra.
"""

from __future__ import annotations

from ._deepseek import from_deepseek_v3, load_deepseek_v3, save_deepseek_v3, to_deepseek_v3
from ._dlpack import DLPackCapsules, from_dlpack, to_dlpack
from ._safetensors import SafetensorsReader, load_safetensors, open_safetensors, save_safetensors

__all__ = [
    "DLPackCapsules",
    "SafetensorsReader",
    "from_deepseek_v3",
    "from_dlpack",
    "load_deepseek_v3",
    "load_safetensors",
    "open_safetensors",
    "save_deepseek_v3",
    "save_safetensors",
    "to_deepseek_v3",
    "to_dlpack",
]
