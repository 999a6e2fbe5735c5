"""mkdocs hook: give mkdocstrings one merged ``breccia`` source tree to read.

breccia is split across distributions: breccia-core owns ``breccia/__init__.py`` and every add-on ships only its
subpackage (``breccia/torch`` …) under its own ``src`` dir, joined at import time by ``pkgutil.extend_path``.
griffe (the static reader behind mkdocstrings) recognises that only in the one-line ``__import__("pkgutil")``
spelling, and then drops the package's own ``__init__`` — so listing every ``src`` dir in ``paths`` finds the
core and none of the add-ons. Before each build this hook copies core's ``breccia/`` and each add-on's subpackage
into ``build/docs-api-src/breccia`` (git-ignored), the same tree ``pip install "breccia[all]"`` produces, and the
handler's ``paths`` in mkdocs.yml points there. Nothing is imported, so no framework needs to be installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parents[2]
MERGED = ROOT / "build" / "docs-api-src"


@event_priority(100)  # before mkdocstrings resolves its `paths`, which drops a directory that does not exist yet
def on_config(config: Any) -> Any:
    """Rebuild the merged tree (a fresh copy each build, so an edited docstring shows up)."""
    target = MERGED / "breccia"
    if MERGED.exists():
        shutil.rmtree(MERGED)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "packages" / "breccia-core" / "src" / "breccia", target, ignore=skip)
    for src in sorted((ROOT / "packages").glob("breccia-*/src/breccia")):
        for sub in src.iterdir():
            if sub.is_dir() and (sub / "__init__.py").exists():
                shutil.copytree(sub, target / sub.name, ignore=skip)
    return config
