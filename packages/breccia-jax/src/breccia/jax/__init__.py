"""breccia.jax — skeleton. The capability lands with its own issue; until then breccia reports it as not ready.

Add-ons never ship ``breccia/__init__.py`` (DESIGN.md §1): this file is ``breccia/jax/__init__.py`` only.
"""

from __future__ import annotations

__all__: list[str] = []
