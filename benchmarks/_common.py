"""Shared helpers for the breccia benchmarks: single-thread setup, interleaved timing, tables, machine info.

Import this module *before* numpy (the scripts do), so the thread-count variables take effect in the BLAS and
OpenMP runtimes numpy loads.
"""

from __future__ import annotations

import os

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def single_thread() -> None:
    """Pin every BLAS/OpenMP runtime numpy may load to one thread (call before importing numpy)."""
    for var in THREAD_VARS:
        os.environ[var] = "1"


single_thread()

import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from typing import Any  # noqa: E402


def interleaved_min(fns: dict[str, Callable[[], Any]], repeats: int = 7) -> dict[str, float]:
    """Minimum wall time in seconds of each callable over ``repeats`` rounds.

    Each round runs every callable once, in the given order, so a candidate and its peer see the same machine
    state (on a noisy shared VM the min over interleaved rounds is the only comparable number). The garbage
    collector is paused while timing, and each call's result is dropped before the next call.
    """
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():  # warm-up: first-touch page faults, lazy imports, caches
        fn()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                out = fn()
                dt = time.perf_counter() - t0
                del out
                best[name] = min(best[name], dt)
    finally:
        if enabled:
            gc.enable()
    return best


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> str:
    """A GitHub-markdown table; ``align`` is one letter per column (``l`` or ``r``; default: first left)."""
    align = align or "l" + "r" * (len(head) - 1)
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows, strict=True)]
    widths = [max(w, 3) for w in widths]

    def fmt(cells: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(
                str(c).ljust(w) if a == "l" else str(c).rjust(w) for c, w, a in zip(cells, widths, align, strict=True)
            )
            + " |"
        )

    rule = (
        "|"
        + "|".join(
            (":" + "-" * (w + 1)) if a == "l" else ("-" * (w + 1) + ":") for w, a in zip(widths, align, strict=True)
        )
        + "|"
    )
    return "\n".join([fmt(head), rule, *(fmt(r) for r in rows)])


def machine_info() -> dict[str, Any]:
    """Versions, CPU and date, for the header of every result."""
    import ml_dtypes
    import numpy as np

    import breccia

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "ml_dtypes": ml_dtypes.__version__,
        "breccia": breccia.__version__,
        "threads": os.environ.get("OMP_NUM_THREADS", "?"),
    }


def describe(info: dict[str, Any]) -> str:
    """One line summarising :func:`machine_info`."""
    return (
        f"{info['date']}; {info['cpu']} ({info['cpu_count']} cores), {info['platform']}; "
        f"Python {info['python']}, numpy {info['numpy']}, ml_dtypes {info['ml_dtypes']}, "
        f"breccia {info['breccia']}; {info['threads']} thread(s)"
    )


def dump_json(path: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON."""
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, default=str)
        f.write("\n")
