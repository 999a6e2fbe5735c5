"""breccia.bridges — lossless bridges between ScaledTensor and the formats people ship.

safetensors files and sharded checkpoints, DLPack, DeepSeek-V3, torchao, TransformerEngine and compressed-tensors
(vLLM / Hugging Face). Every bridge passes bits through unchanged (no FP32 round trip); external libraries are
imported only when their bridge is called, and a missing one raises :class:`breccia.BackendNotInstalledError`
naming the pip extra.
"""

from __future__ import annotations

from ._compressed_tensors import load_compressed_tensors, save_compressed_tensors
from ._deepseek import from_deepseek_v3, load_deepseek_v3, save_deepseek_v3, to_deepseek_v3
from ._dlpack import DLPackCapsules, from_dlpack, to_dlpack
from ._safetensors import SafetensorsReader, load_safetensors, open_safetensors, save_safetensors
from ._te_write import te_buffers, to_transformer_engine
from ._torchao import from_torchao
from ._torchao_write import to_torchao
from ._transformer_engine import from_transformer_engine, swizzle_scales, unswizzle_scales

__all__ = [
    "DLPackCapsules",
    "SafetensorsReader",
    "from_deepseek_v3",
    "from_dlpack",
    "from_torchao",
    "from_transformer_engine",
    "load_compressed_tensors",
    "load_deepseek_v3",
    "load_safetensors",
    "open_safetensors",
    "save_compressed_tensors",
    "save_deepseek_v3",
    "save_safetensors",
    "swizzle_scales",
    "te_buffers",
    "to_deepseek_v3",
    "to_dlpack",
    "to_torchao",
    "to_transformer_engine",
    "unswizzle_scales",
]
