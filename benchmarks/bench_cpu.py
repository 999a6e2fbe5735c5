"""CPU throughput, peak memory and import time of breccia-core's numpy reference kernels.

Every timing is the minimum over ``--repeats`` (cast) or ``--dequant-repeats`` (dequantize) interleaved rounds
(candidate and peer run back to back in each round), and the headline numbers are *ratios measured in the same
run*:

* cast: ``t(x.astype(ml_dtypes.float8_e4m3fn)) / t(breccia.cast(x, recipe))`` (> 1: breccia faster than a bare
  ml_dtypes conversion, which does no amax, no scaling and no saturation);
* dequantize: ``t(x.copy()) / t(breccia.dequantize(st))`` for an fp32 array of the output's size.

Run ``python benchmarks/bench_cpu.py`` (about a minute, < 1 GiB RAM); ``--memory`` adds the peak-memory table
for a 1 GiB fp32 tensor (in a subprocess, ~3 GiB RAM, a few minutes); ``--json PATH`` dumps everything.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path
from typing import Any

import _common  # before numpy: pins BLAS/OpenMP to one thread
import ml_dtypes
import numpy as np

import breccia
from breccia._demo import DEMO_RECIPES
from breccia._recipes import (
    DelayedScaling,
    Float8BlockScaling,
    Float8CurrentScaling,
    MXFP8BlockScaling,
    Recipe,
)

CAST_TARGET_LABEL = "FP8 E4M3 1x128 blocks"  # Float8BlockScaling(): amax + scale + encode, 1x128
CAST_TARGET = 1.0  # × ml_dtypes astype
DEQUANT_TARGET = 0.5  # × numpy copy
MEMORY_TARGET = 1.5  # peak traced bytes / output ScaledTensor nbytes
MEMORY_LABELS = (
    "FP8 E4M3 1x128 blocks",
    "FP8 E4M3 per-tensor (current)",
    "MXFP8 E4M3 (rceil)",
    "MXFP4 E2M1",
    "NVFP4 1x16 two-level",
    "INT4 g128 symmetric",
)
HERE = Path(__file__).resolve().parent
FRAMEWORKS = ("torch", "jax", "mlx", "triton", "safetensors")


def is_fp8(recipe: Recipe) -> bool:
    """FP8-element recipes: the ones the dequantize target applies to."""
    return isinstance(recipe, (Float8CurrentScaling, DelayedScaling, Float8BlockScaling, MXFP8BlockScaling))


def _cast(x: np.ndarray, recipe: Recipe) -> breccia.ScaledTensor:
    st = breccia.cast(x, recipe)
    assert isinstance(st, breccia.ScaledTensor)
    return st


def bench_throughput(size: int, repeats: int, deq_repeats: int, select: str | None) -> list[dict[str, Any]]:
    """Cast and dequantize time of every demo recipe on a ``size × size`` fp32 Gaussian, peers interleaved.

    Cast and astype run ``repeats`` interleaved rounds; copy and dequantize (about 4x cheaper, so noisier)
    ``deq_repeats`` rounds.
    """
    x = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    f8 = ml_dtypes.float8_e4m3fn
    rows = []
    for label, recipe in DEMO_RECIPES:
        if select and select.lower() not in label.lower():
            continue
        st = _cast(x, recipe)
        t = _common.interleaved_min(
            {"astype": lambda: x.astype(f8), "cast": lambda r=recipe: breccia.cast(x, r)}, repeats
        )
        t |= _common.interleaved_min({"copy": x.copy, "dequantize": lambda s=st: breccia.dequantize(s)}, deq_repeats)
        out_bytes = x.size * 4
        rows.append(
            {
                "label": label,
                "recipe": repr(recipe),
                "fp8": is_fp8(recipe),
                "bits_per_value": st.bits_per_value,
                "nbytes": st.nbytes,
                "astype_ms": t["astype"] * 1e3,
                "cast_ms": t["cast"] * 1e3,
                "cast_gbps": (x.nbytes + st.nbytes) / t["cast"] / 1e9,
                "cast_vs_astype": t["astype"] / t["cast"],
                "copy_ms": t["copy"] * 1e3,
                "dequantize_ms": t["dequantize"] * 1e3,
                "dequantize_gbps": (st.nbytes + out_bytes) / t["dequantize"] / 1e9,
                "dequantize_vs_copy": t["copy"] / t["dequantize"],
            }
        )
        print(
            f"  {label:34s} cast {t['cast'] * 1e3:7.1f} ms ({t['astype'] / t['cast']:.2f}x astype)  "
            f"dequantize {t['dequantize'] * 1e3:6.1f} ms ({t['copy'] / t['dequantize']:.2f}x copy)",
            file=sys.stderr,
        )
    return rows


def throughput_table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of :func:`bench_throughput` rows."""
    head = (
        "recipe",
        "bits/val",
        "cast ms",
        "cast GB/s",
        "astype ms",
        "cast vs astype",
        "dequant ms",
        "dequant GB/s",
        "copy ms",
        "dequant vs copy",
    )
    body = [
        (
            r["label"],
            f"{r['bits_per_value']:.2f}",
            f"{r['cast_ms']:.1f}",
            f"{r['cast_gbps']:.2f}",
            f"{r['astype_ms']:.1f}",
            f"{r['cast_vs_astype']:.2f}x",
            f"{r['dequantize_ms']:.1f}",
            f"{r['dequantize_gbps']:.2f}",
            f"{r['copy_ms']:.1f}",
            f"{r['dequantize_vs_copy']:.2f}x",
        )
        for r in rows
    ]
    return _common.markdown_table(head, body)


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pass/fail of the targets: the FP8 1x128 cast vs astype, and dequantize vs copy for every recipe."""
    out = []
    for r in rows:
        if r["label"] == CAST_TARGET_LABEL:
            out.append(
                {
                    "target": f"cast {r['label']} >= {CAST_TARGET}x astype",
                    "value": r["cast_vs_astype"],
                    "pass": r["cast_vs_astype"] >= CAST_TARGET,
                    "acceptance": True,
                }
            )
    for r in rows:
        out.append(
            {
                "target": f"dequantize {r['label']} >= {DEQUANT_TARGET}x copy",
                "value": r["dequantize_vs_copy"],
                "pass": r["dequantize_vs_copy"] >= DEQUANT_TARGET,
                "acceptance": r["fp8"],
            }
        )
    return out


def targets_table(items: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`targets`."""
    body = [
        (
            t["target"],
            f"{t['value']:.2f}x",
            "PASS" if t["pass"] else "FAIL",
            "acceptance" if t["acceptance"] else "info",
        )
        for t in items
    ]
    return _common.markdown_table(("target", "measured", "result", "kind"), body, "lrll")


# ---- peak memory (run in a subprocess: 1 GiB input) ----


def memory_worker(side: int, labels: list[str]) -> list[dict[str, Any]]:
    """tracemalloc peak of cast and dequantize of a ``side × side`` fp32 tensor, per recipe (this process)."""
    import gc
    import time

    x = np.random.default_rng(0).standard_normal((side, side), dtype=np.float32)
    recipes = dict(DEMO_RECIPES)
    rows = []
    for label in labels:
        recipe = recipes[label]
        gc.collect()
        tracemalloc.start()
        t0 = time.perf_counter()
        st = _cast(x, recipe)
        t_cast = time.perf_counter() - t0
        peak_cast = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        gc.collect()
        tracemalloc.start()
        t0 = time.perf_counter()
        y = breccia.dequantize(st)
        t_deq = time.perf_counter() - t0
        peak_deq = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows.append(
            {
                "label": label,
                "input_bytes": x.nbytes,
                "output_nbytes": st.nbytes,
                "cast_peak_bytes": peak_cast,
                "cast_peak_ratio": peak_cast / st.nbytes,
                "cast_s_traced": t_cast,
                "dequant_out_bytes": y.nbytes,
                "dequant_peak_bytes": peak_deq,
                "dequant_peak_ratio": peak_deq / y.nbytes,
                "dequant_s_traced": t_deq,
            }
        )
        print(
            f"  {label:34s} cast peak {peak_cast / st.nbytes:.3f}x output, "
            f"dequantize peak {peak_deq / y.nbytes:.3f}x output",
            file=sys.stderr,
        )
        del st, y
    return rows


def bench_memory(side: int, labels: list[str]) -> dict[str, Any]:
    """Run :func:`memory_worker` in a fresh interpreter and return its rows plus the child's max RSS."""
    code = textwrap.dedent(f"""
        import json, resource, sys
        sys.path.insert(0, {str(HERE)!r})
        import bench_cpu
        rows = bench_cpu.memory_worker({side}, {labels!r})
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps({{"rows": rows, "max_rss_bytes": rss}}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"memory worker failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def memory_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`memory_worker` rows."""
    mib = 1 << 20
    body = [
        (
            r["label"],
            f"{r['output_nbytes'] / mib:.0f}",
            f"{r['cast_peak_bytes'] / mib:.0f}",
            f"{r['cast_peak_ratio']:.3f}",
            "PASS" if r["cast_peak_ratio"] <= MEMORY_TARGET else "FAIL",
            f"{r['dequant_peak_bytes'] / mib:.0f}",
            f"{r['dequant_peak_ratio']:.3f}",
        )
        for r in rows
    ]
    head = (
        "recipe",
        "output MiB",
        "cast peak MiB",
        "cast peak / output",
        f"<= {MEMORY_TARGET}",
        "dequant peak MiB",
        "dequant peak / fp32 output",
    )
    return _common.markdown_table(head, body, "lrrrlrr")


# ---- import time ----

_IMPORT_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import numpy
t1 = time.perf_counter()
import breccia
t2 = time.perf_counter()
after_import = sorted(m for m in {fw!r} if m in sys.modules)
breccia.cast
t3 = time.perf_counter()
st = breccia.cast(numpy.ones((4, 128), numpy.float32), breccia.Float8BlockScaling())
breccia.dequantize(st)
after_use = sorted(m for m in {fw!r} if m in sys.modules)
print(json.dumps({{"numpy_s": t1 - t0, "breccia_s": t2 - t1, "cast_attr_s": t3 - t2,
                  "after_import": after_import, "after_use": after_use}}))
"""


def bench_import(runs: int) -> dict[str, Any]:
    """Min over ``runs`` fresh interpreters of ``import breccia`` (after numpy) and framework absence."""
    code = _IMPORT_PROBE.format(fw=FRAMEWORKS)
    results = []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        results.append(json.loads(proc.stdout))
    keys = ("numpy_s", "breccia_s", "cast_attr_s")
    best = {k: min(r[k] for r in results) for k in keys}
    best["numpy_plus_breccia_s"] = min(r["numpy_s"] + r["breccia_s"] for r in results)
    best["frameworks_after_import"] = sorted({m for r in results for m in r["after_import"]})
    best["frameworks_after_cast"] = sorted({m for r in results for m in r["after_use"]})
    best["runs"] = runs
    return best


def import_table(imp: dict[str, Any]) -> str:
    """Markdown table of :func:`bench_import`."""
    fw_import = ", ".join(imp["frameworks_after_import"]) or "none"
    fw_cast = ", ".join(imp["frameworks_after_cast"]) or "none"
    body = [
        ("import numpy", f"{imp['numpy_s'] * 1e3:.1f} ms"),
        ("import breccia (after numpy)", f"{imp['breccia_s'] * 1e3:.1f} ms"),
        (
            "import numpy + breccia",
            f"{imp['numpy_plus_breccia_s'] * 1e3:.1f} ms (target < 100 ms: "
            f"{'PASS' if imp['numpy_plus_breccia_s'] < 0.1 else 'FAIL'})",
        ),
        ("first breccia.cast access (loads kernels, ml_dtypes)", f"{imp['cast_attr_s'] * 1e3:.1f} ms"),
        (f"{'/'.join(FRAMEWORKS)} in sys.modules after import", fw_import),
        ("... after a cast + dequantize of a numpy array", fw_cast),
    ]
    head = (f"measure (min of {imp['runs']} fresh interpreters)", "value")
    return _common.markdown_table(head, body, "ll")


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the selected benchmarks, print markdown, optionally dump JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=4096, help="side of the square fp32 tensor (default 4096)")
    ap.add_argument("--repeats", type=int, default=7, help="interleaved cast rounds; min is reported (default 7)")
    ap.add_argument("--dequant-repeats", type=int, default=21, help="interleaved dequantize rounds (default 21)")
    ap.add_argument("--recipes", default=None, help="only recipes whose label contains this substring")
    ap.add_argument("--memory", action="store_true", help="also measure peak memory on a 1 GiB tensor")
    ap.add_argument("--memory-only", action="store_true", help="only the peak-memory table")
    ap.add_argument("--memory-all", action="store_true", help="memory table for every demo recipe")
    ap.add_argument("--memory-side", type=int, default=16384, help="memory tensor side (16384: 1 GiB)")
    ap.add_argument("--import-runs", type=int, default=5, help="fresh interpreters for the import time")
    ap.add_argument("--json", metavar="PATH", help="write all results as JSON")
    ap.add_argument("--strict", action="store_true", help="exit 1 if an acceptance target is missed")
    args = ap.parse_args(argv)

    info = _common.machine_info()
    result: dict[str, Any] = {
        "machine": info,
        "size": args.size,
        "repeats": args.repeats,
        "dequant_repeats": args.dequant_repeats,
    }
    print(f"# breccia CPU benchmark\n\n{_common.describe(info)}\n")
    failed = False
    if not args.memory_only:
        what = (
            f"{args.size}x{args.size} fp32, one thread, min of {args.repeats} (cast) / {args.dequant_repeats} "
            "(dequantize) interleaved rounds"
        )
        print(f"## Throughput: {what}", file=sys.stderr)
        rows = bench_throughput(args.size, args.repeats, args.dequant_repeats, args.recipes)
        tg = targets(rows)
        result["throughput"] = rows
        result["targets"] = tg
        failed |= any(not t["pass"] and t["acceptance"] for t in tg)
        print(f"## Throughput: {what}\n")
        print(
            "cast vs astype = t(x.astype(ml_dtypes.float8_e4m3fn)) / t(breccia.cast); dequant vs copy = "
            "t(x.copy()) / t(breccia.dequantize); > 1 means breccia is faster. GB/s counts bytes read + "
            "written.\n"
        )
        print(throughput_table(rows) + "\n")
        print("## Targets\n")
        print(targets_table(tg) + "\n")
        imp = bench_import(args.import_runs)
        result["import"] = imp
        print("## Import time\n")
        print(import_table(imp) + "\n")
    if args.memory or args.memory_only:
        labels = [label for label, _ in DEMO_RECIPES] if args.memory_all else list(MEMORY_LABELS)
        gib = args.memory_side**2 * 4 / (1 << 30)
        print(f"## Peak memory: {args.memory_side}x{args.memory_side} fp32 ({gib:.2f} GiB)", file=sys.stderr)
        mem = bench_memory(args.memory_side, labels)
        result["memory"] = mem
        failed |= any(r["cast_peak_ratio"] > MEMORY_TARGET for r in mem["rows"])
        print(f"## Peak memory: {args.memory_side}x{args.memory_side} fp32 tensor ({gib:.2f} GiB)\n")
        print(
            "tracemalloc peak during the call (input allocated before tracing starts), divided by the "
            "ScaledTensor's nbytes (cast) or the fp32 result's bytes (dequantize). Child max RSS: "
            f"{mem['max_rss_bytes'] / (1 << 30):.2f} GiB.\n"
        )
        print(memory_table(mem["rows"]) + "\n")
    if args.json:
        _common.dump_json(args.json, result)
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    raise SystemExit(main())
