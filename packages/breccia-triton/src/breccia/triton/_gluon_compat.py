"""The Gluon builtins whose names moved between the Triton releases the Gluon kernels compile with.

Why aliases and not a version check: Triton 3.8 renamed the TMA copies (``tma.async_copy_global_to_shared`` became
``tma.async_load``, ``async_copy_shared_to_global`` became ``async_store``; 3.9 raises on the old names) and 3.9
dropped ``gl.thread_barrier`` for ``gl.barrier``. The arguments and the code they emit are the same, so each alias
is whichever name this Triton has, newest first. A kernel refers to the alias as a module global, which Gluon's
compiler resolves like the builtin itself (a Gluon builtin is allowed as a global)."""

from __future__ import annotations

from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import tma

__all__ = ["thread_barrier", "tma_load", "tma_store"]

tma_load = getattr(tma, "async_load", None) or tma.async_copy_global_to_shared
tma_store = getattr(tma, "async_store", None) or tma.async_copy_shared_to_global
thread_barrier = getattr(gl, "thread_barrier", None) or gl.barrier
