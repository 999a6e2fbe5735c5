"""``breccia inspect`` and ``breccia convert`` (dispatched here by breccia-core's ``breccia`` command).

Bad input — a missing source, a file that is not safetensors, an unknown recipe, an existing DST, a glob that
matches nothing — is one line on stderr and exit status 2, with no traceback and nothing created: every check runs
before the staging directory exists (see :mod:`._convert_plan`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from typing import Any, NoReturn

from breccia._errors import BrecciaError

from ._convert_plan import ALIASES, FORMATS, make_plan
from ._inspect import Source, bits_per_value, label, scan

__all__ = ["main"]


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        raise _UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _inspect_parser() -> _Parser:
    p = _Parser(prog="breccia inspect", description="List the logical tensors of a checkpoint (headers only).")
    p.add_argument("path", help=".safetensors file, sharded checkpoint directory or HF model directory")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    return p


def _convert_parser() -> _Parser:
    recipes = ", ".join(f"{k} ({v[2]})" for k, v in ALIASES.items())
    p = _Parser(prog="breccia convert", description="Convert a checkpoint to a recipe, shard by shard.",
                epilog=f"recipes: {recipes}; or a recipe class name (default arguments)")  # fmt: skip
    p.add_argument("src", help="source checkpoint: .safetensors file, sharded directory or HF model directory")
    p.add_argument("dst", help="output directory (must not exist; built in DST.partial/ and renamed at the end)")
    p.add_argument("--recipe", required=True, help="recipe alias or class name")
    p.add_argument("--format", default="breccia", choices=FORMATS, help="output convention (default breccia)")
    p.add_argument("--include", action="append", default=[], metavar="GLOB", help="quantize tensors matching GLOB")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="never quantize matches")
    p.add_argument("--workers", type=int, default=1, help="process pool size, one shard per task (default 1)")
    p.add_argument("--ray", metavar="ADDRESS", default=None, help="run each shard as a ray task ('local' starts one)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (also off when stderr is no tty)")
    return p


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"


def inspect_json(src: Source) -> dict[str, Any]:
    values = sum(e.numel for e in src.entries)
    nbytes = sum(e.nbytes for e in src.entries)
    return {
        "path": str(src.path), "format": src.kind, "files": src.files, "tensors": [e.to_json() for e in src.entries],
        "total": {"tensors": len(src.entries), "values": values, "bytes": nbytes,
                  "bits_per_value": bits_per_value(nbytes, values)},
    }  # fmt: skip


def _inspect(argv: list[str]) -> int:
    ns = _inspect_parser().parse_args(argv)
    src = scan(ns.path)
    doc = inspect_json(src)
    if ns.json:
        print(json.dumps(doc, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    title = f"{src.path} — {src.kind}, {len(src.files)} file{'s' * (len(src.files) != 1)}"
    table = Table(title=title, show_footer=True)
    tot = doc["total"]
    table.add_column("name", footer=f"{tot['tensors']} tensors")
    table.add_column("shape", footer=f"{tot['values']:,} values")
    table.add_column("recipe / dtype")
    table.add_column("layout")
    table.add_column("bits/value", justify="right", footer=f"{tot['bits_per_value']:.3f}")
    table.add_column("bytes", justify="right", footer=_fmt_bytes(tot["bytes"]))
    for e in src.entries:
        layout = repr(e.layout) if e.layout is not None else "-"
        table.add_row(e.name, "×".join(map(str, e.shape)) or "()", label(e), layout,
                      f"{bits_per_value(e.nbytes, e.numel):.3f}", _fmt_bytes(e.nbytes))  # fmt: skip
    Console(width=200).print(table)
    return 0


def _print_summary(s: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = s["tensors"]
    table = Table(title=f"breccia convert → {s['dst']} ({s['format']})", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    ratio = s["bytes_after"] / s["bytes_before"] if s["bytes_before"] else 0.0
    table.add_row("size before", _fmt_bytes(s["bytes_before"]))
    table.add_row("size after", f"{_fmt_bytes(s['bytes_after'])} ({ratio:.1%})")
    table.add_row("shards", f"{s['shards']} ({len(s['resumed_shards'])} resumed)")
    for action in ("quantized", "requantized", "repacked", "copied"):
        table.add_row(f"tensors {action}", str(t[action]))
    for name, q in s["sqnr_db"].items():
        mean = "exact" if q["mean"] is None else f"{q['mean']:.2f} dB over {q['tensors']}"
        table.add_row(f"mean SQNR {name}", mean + (f", {q['exact']} exact" if q["exact"] and q["mean"] else ""))
    Console(width=160).print(table)


def _convert(argv: list[str]) -> int:
    ns = _convert_parser().parse_args(argv)
    if ns.ray is not None and importlib.util.find_spec("ray") is None:
        raise _UsageError("breccia convert: --ray needs ray: pip install 'breccia-bridges[ray]'")
    plan = make_plan(ns.src, ns.dst, ns.recipe, ns.format, ns.include, ns.exclude, ns.workers)
    from ._convert import convert

    summary = convert(plan, workers=ns.workers, ray=ns.ray, progress=not ns.no_progress)
    _print_summary(summary)
    return 0


def main(name: str, argv: list[str]) -> int:
    """Entry point of ``breccia inspect …`` / ``breccia convert …``; returns the exit status."""
    try:
        if name == "inspect":
            return _inspect(argv)
        if name == "convert":
            return _convert(argv)
        print(f"breccia: unknown command {name!r}; expected inspect or convert", file=sys.stderr)
        return 2
    except _UsageError as e:
        print(str(e), file=sys.stderr)
        return 2
    except BrecciaError as e:
        print(f"breccia {name}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `breccia inspect … | head`: the reader left, which is not an error
        sys.stderr.close()
        return 0
    except OSError as e:
        print(f"breccia {name}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"breccia {name}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
