"""breccia.mlx — the MLX backend: native cast/dequantize/matmul on ``mlx.core.array``, and lossless conversion
to and from MLX's quantized weights (``mx.quantize`` / ``mx.dequantize`` / ``mx.quantized_matmul``).

breccia imports this lazily the first time it sees an ``mlx.core.array``. MLX has no float8 dtypes, so FP8 data
and E8M0/E4M3 scales are uint8 arrays with the same bytes (DESIGN.md §5).
Add-ons never ship ``breccia/__init__.py`` (DESIGN.md §1): this file is ``breccia/mlx/__init__.py`` only.
"""

from __future__ import annotations

from breccia._dispatch import register_backend

from ._backend import BACKEND, MLXBackend
from ._ops import MLXOps
from ._quant import MLXQuantized, from_mlx_quantized, mlx_mode, to_mlx_quantized

register_backend("mlx", BACKEND)

__all__ = ["BACKEND", "MLXBackend", "MLXOps", "MLXQuantized", "from_mlx_quantized", "mlx_mode", "to_mlx_quantized"]
