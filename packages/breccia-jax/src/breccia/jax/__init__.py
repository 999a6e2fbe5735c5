"""breccia.jax — the JAX backend: casts, dequantization and scaled matmul that run eagerly and under ``jax.jit``.

Importing it (breccia does so lazily the first time it sees a ``jax.Array``) registers ScaledTensor as a JAX pytree
node, so ScaledTensors pass through ``jit``, ``vmap``, ``lax.scan`` and sharding. Public: :func:`cast_ste`
(straight-through estimator, a ``jax.custom_vjp``) and :func:`fake_quant`.

Add-ons never ship ``breccia/__init__.py`` (DESIGN.md §1): this file is ``breccia/jax/__init__.py`` only.
"""

from __future__ import annotations

from breccia._dispatch import register_backend

from ._backend import BACKEND, JaxBackend
from ._ops import JaxOps
from ._pytree import register as _register_pytree
from ._ste import cast_ste, fake_quant

_register_pytree()
register_backend("jax", BACKEND)

__all__ = ["BACKEND", "JaxBackend", "JaxOps", "cast_ste", "fake_quant"]
