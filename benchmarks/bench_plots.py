"""Plots for the docs: accuracy vs storage cost per recipe, and the memory of a real model's weights per recipe.

Writes two PNGs (matplotlib, Agg backend) into ``docs/img/``:

* ``accuracy_vs_bits.png`` — round-trip SQNR (dB) against bits/value for every recipe of
  ``bench_real_model.CASES`` on three inputs: Gaussian and Student-t (ν=3) fp32 tensors (``bench_accuracy.inputs``,
  the tensors ``bench_accuracy.py`` measures) and the 37 Linear weights of all-MiniLM-L6-v2 (SQNR: mean over the
  weights, as ``bench_real_model.py`` reports it);
* ``minilm_memory.png`` — bytes of all-MiniLM-L6-v2's Linear weights per recipe, scales included, next to fp32
  and bf16.

bits/value is the storage cost as breccia stores it: bits of data + scales (+ global scale, zero point) divided by
the element count (``ScaledTensor.bits_per_value``); MXFP6 keeps one 6-bit code per byte, so it costs 8.25.

Run ``python benchmarks/bench_plots.py [--out docs/img]`` (needs matplotlib and what bench_real_model.py needs;
~1 min on 2 cores). It also prints the plotted numbers as markdown tables.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import _common  # before numpy: pins BLAS/OpenMP to one thread
import bench_accuracy
import bench_real_model
import matplotlib
import numpy as np
import torch

import breccia

matplotlib.use("Agg")
import matplotlib.pyplot as plt

OUT = bench_real_model.ROOT / "docs" / "img"
SERIES = ("Gaussian", "Student-t (ν=3)", "MiniLM Linear weights")


def synthetic(rows: int, k: int, seed: int) -> dict[str, np.ndarray]:
    """The Gaussian and Student-t round-trip inputs of bench_accuracy.py (its matmul operands are not needed)."""
    t = bench_accuracy.inputs(rows, k, 1, 1, seed)
    return {SERIES[0]: t["gaussian"], SERIES[1]: t["student_t3"]}


def measure(rows: int, k: int, seed: int) -> list[dict[str, Any]]:
    """bits/value and SQNR per case and series, and the MiniLM Linear weights' bytes."""
    ex = bench_real_model.load_example()
    bench = bench_real_model.Bench(ex)
    weights = {n: bench.fp32[n] for n in bench.linears}
    n_values = sum(w.numel() for w in weights.values())
    tensors = synthetic(rows, k, seed)
    out: list[dict[str, Any]] = [
        {"label": "fp32", "bits": dict.fromkeys(SERIES, 32.0), "sqnr": {}, "bytes": 4 * n_values}
    ]
    for case in bench_real_model.CASES:
        row: dict[str, Any] = {"label": case.label.replace(" (baseline)", ""), "bits": {}, "sqnr": {}}
        for name, x in tensors.items():
            if case.recipe is None:
                xt = torch.from_numpy(x)
                row["bits"][name] = 16.0
                row["sqnr"][name] = bench_accuracy.sqnr_db(x, xt.bfloat16().float().numpy())
            else:
                st = breccia.cast(x, case.recipe, layout=case.layout)
                row["bits"][name] = st.bits_per_value
                row["sqnr"][name] = bench_accuracy.sqnr_db(x, breccia.dequantize(st))
        if case.recipe is None:
            quantized = {n: w.bfloat16() for n, w in weights.items()}
            sqnrs = [ex.sqnr_db(w, quantized[n].float()) for n, w in weights.items()]
        else:
            bench.reset()
            quantized, sqnrs = ex.fake_quantize(bench.model, case.recipe, case.layout)
        row["bytes"] = sum(int(v.nbytes) for v in quantized.values())
        row["bits"][SERIES[2]] = 8.0 * row["bytes"] / n_values
        row["sqnr"][SERIES[2]] = sum(sqnrs) / len(sqnrs)
        out.append(row)
        print(f"  {row['label']:24s} " + "  ".join(f"{row['sqnr'][s]:6.2f}" for s in SERIES), file=sys.stderr)
    return out


def _save(fig: Any, path: Path) -> None:
    """Save atomically: a half-written PNG never replaces a good one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=130, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    os.replace(tmp, path)


def plot_accuracy(rows: list[dict[str, Any]], path: Path) -> None:
    """SQNR vs bits/value, one marker per recipe, one column per input; the bottom row zooms into the 8-bit
    cluster (FP8, MXFP8, MXFP6, INT8), where the recipes differ by fractions of a bit and a few dB."""
    fig, grid = plt.subplots(2, 3, figsize=(15, 9), sharey="row", gridspec_kw={"height_ratios": [3, 2]})
    markers = "osD^v<>PXh*"
    colors = [plt.get_cmap("tab10")(i) for i in range(10)]
    recipes = [r for r in rows if r["sqnr"]]
    for col, series in enumerate(SERIES):
        for ax, zoom in ((grid[0, col], False), (grid[1, col], True)):
            for i, r in enumerate(recipes):
                bits = r["bits"][series]
                if zoom and not 7.9 <= bits <= 8.4:
                    continue
                ax.scatter(
                    bits,
                    r["sqnr"][series],
                    s=60,
                    marker=markers[i % len(markers)],
                    color=colors[i % len(colors)],
                    label=r["label"],
                    edgecolor="black",
                    linewidth=0.5,
                )
            ax.grid(True, alpha=0.3)
        grid[0, col].set_title(series)
        grid[0, col].set_xticks([4, 6, 8, 10, 12, 14, 16])
        grid[1, col].set_xlim(7.95, 8.3)
        grid[1, col].set_xlabel("storage bits / value (data + scales)")
    grid[0, 0].set_ylabel("round-trip SQNR (dB, higher is better)")
    grid[1, 0].set_ylabel("8-bit recipes, zoomed (dB)")
    handles, labels = grid[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, frameon=False, bbox_to_anchor=(0.5, -0.06))
    fig.suptitle("breccia recipes: accuracy vs storage cost (round trip dequantize(cast(x)) vs x)")
    fig.tight_layout()
    _save(fig, path)


def plot_memory(rows: list[dict[str, Any]], path: Path) -> None:
    """Horizontal bars: MiB of the MiniLM Linear weights per recipe, with the ratio to fp32."""
    mib = 2.0**20
    fp32 = rows[0]["bytes"]
    labels = [r["label"] for r in rows][::-1]
    sizes = [r["bytes"] / mib for r in rows][::-1]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    bars = ax.barh(labels, sizes, color=["#999999" if lbl in ("fp32", "bf16") else "#3b75af" for lbl in labels])
    for bar, size in zip(bars, sizes):
        ax.text(
            bar.get_width() + 0.3,
            bar.get_y() + bar.get_height() / 2,
            f"{size:.2f} MiB ({size * mib / fp32:.1%} of fp32)",
            va="center",
            fontsize=8,
        )
    ax.set_xlabel("MiB (data + scales)")
    ax.set_xlim(0, max(sizes) * 1.35)
    ax.set_title(f"all-MiniLM-L6-v2: its {fp32 // 4 / 1e6:.2f} M Linear weight values, stored per recipe")
    ax.grid(True, axis="x", alpha=0.3)
    _save(fig, path)


def tables(rows: list[dict[str, Any]]) -> str:
    """The plotted numbers as markdown."""
    head = ("recipe", *(f"{s}: bits/value" for s in SERIES[::2]), *(f"{s}: SQNR dB" for s in SERIES), "MiniLM MiB")
    body = [
        (
            r["label"],
            f"{r['bits'][SERIES[0]]:.2f}",
            f"{r['bits'][SERIES[2]]:.2f}",
            *(f"{r['sqnr'][s]:.2f}" if r["sqnr"] else "—" for s in SERIES),
            f"{r['bytes'] / 2**20:.2f}",
        )
        for r in rows
    ]
    return _common.markdown_table(head, body)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(OUT), help="folder for the PNGs (default docs/img)")
    ap.add_argument("--rows", type=int, default=1024, help="rows of the synthetic inputs (default 1024)")
    ap.add_argument("--k", type=int, default=4096, help="row length of the synthetic inputs (default 4096)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    info = _common.machine_info()
    rows = measure(args.rows, args.k, args.seed)
    out = Path(args.out)
    plot_accuracy(rows, out / "accuracy_vs_bits.png")
    plot_memory(rows, out / "minilm_memory.png")
    print(f"{_common.describe(info)}\n\nsynthetic inputs {args.rows}x{args.k}, seed {args.seed}\n\n{tables(rows)}")
    print(
        f"wrote {out / 'accuracy_vs_bits.png'} and {out / 'minilm_memory.png'} ({time.perf_counter() - t0:.1f} s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
