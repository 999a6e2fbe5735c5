"""The ``breccia`` command (also ``python -m breccia``).

``demo`` and ``info`` need only breccia-core. ``inspect`` and ``convert`` live in breccia-bridges and are
imported lazily; without it the command says which pip command installs it and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as md
import importlib.util
import platform
import sys
from collections.abc import Sequence

from ._version import __version__

__all__ = ["main"]

_DISTS = ("breccia-core", "breccia-torch", "breccia-jax", "breccia-mlx", "breccia-triton", "breccia-bridges")
_LIBS = (
    "numpy",
    "ml_dtypes",
    "torch",
    "jax",
    "mlx",
    "triton",
    "safetensors",
    "torchao",
    "compressed_tensors",
)


def _version_of(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _info() -> str:
    lines = [
        f"breccia {__version__}",
        f"python {platform.python_version()} ({sys.executable})",
        "",
        "distributions:",
    ]
    for d in _DISTS:
        v = _version_of(d)
        lines.append(f"  {d:18s} {v or 'not installed'}")
    lines += ["", "libraries (found on the path, not imported):"]
    for lib in _LIBS:
        found = importlib.util.find_spec(lib) is not None
        v = _version_of(lib.replace("_", "-")) if found else None
        lines.append(f"  {lib:18s} {v or ('present' if found else 'absent')}")
    from ._recipes import _RECIPES

    lines += ["", "recipes: " + ", ".join(sorted(_RECIPES))]
    return "\n".join(lines)


def _bridges_command(name: str, argv: Sequence[str]) -> int:
    try:
        mod = importlib.import_module("breccia.bridges._cli")
    except ModuleNotFoundError:
        print(f"breccia {name} needs breccia-bridges: pip install breccia-bridges", file=sys.stderr)
        return 2
    return int(mod.main(name, list(argv)))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("inspect", "convert"):
        return _bridges_command(args[0], args[1:])
    parser = argparse.ArgumentParser(prog="breccia", description="block-scaled low-precision tensors")
    parser.add_argument("--version", action="version", version=f"breccia {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="quantize a built-in tensor set with every recipe and print a table")
    d.add_argument("--seed", type=int, default=0, help="seed of the built-in tensors (default 0)")
    sub.add_parser("info", help="versions, installed add-ons and recipes")
    sub.add_parser("inspect", help="list the tensors of a checkpoint (needs breccia-bridges)")
    sub.add_parser("convert", help="convert a checkpoint to another recipe (needs breccia-bridges)")
    ns = parser.parse_args(args)
    if ns.command == "demo":
        from ._demo import main as demo

        print(demo(ns.seed))
    elif ns.command == "info":
        print(_info())
    return 0
