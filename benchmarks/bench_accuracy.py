"""Accuracy of every breccia recipe: round-trip SQNR and cosine, and matmul cosine against an fp64 reference.

* Round trip: ``dequantize(cast(x, recipe, axis=-1))`` vs ``x`` for (a) Gaussian and (b) Student-t (ν=3,
  heavy-tailed) fp32 inputs of shape ``--rows × --k`` (default 1024 × 4096).
* Matmul: ``breccia.matmul(cast(A, r, axis=-1), cast(W, r, axis=0))`` vs ``A @ W`` in fp64, activations
  ``A[M, K]`` blocked along their last axis and the weight ``W[K, N]`` blocked along K (axis 0), for
  Gaussian and Student-t activations. Targets: FP8 recipes cosine ≥ 0.999, NVFP4 ≥ 0.99.

Run ``python benchmarks/bench_accuracy.py [--markdown PATH] [--json PATH]``; the results are deterministic
(fixed seed), so only the date line changes between runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import _common  # before numpy: pins BLAS/OpenMP to one thread
import numpy as np

import breccia
from breccia._demo import DEMO_RECIPES
from breccia._recipes import (
    DelayedScaling,
    Float8BlockScaling,
    Float8CurrentScaling,
    MXFP8BlockScaling,
    NVFP4BlockScaling,
    Recipe,
)

FP8_TARGET = 0.999
NVFP4_TARGET = 0.99


def matmul_target(recipe: Recipe) -> float | None:
    """The matmul-cosine target of a recipe (None: reported without a target)."""
    if isinstance(recipe, (Float8CurrentScaling, DelayedScaling, Float8BlockScaling, MXFP8BlockScaling)):
        return FP8_TARGET
    if isinstance(recipe, NVFP4BlockScaling):
        return NVFP4_TARGET
    return None


def sqnr_db(ref: np.ndarray, approx: np.ndarray) -> float:
    """``10·log10(Σ ref² / Σ (ref − approx)²)`` in fp64 (inf when exact)."""
    r = ref.astype(np.float64)
    noise = float(np.sum((r - approx.astype(np.float64)) ** 2))
    return float("inf") if noise == 0 else 10.0 * float(np.log10(float(np.sum(r * r)) / noise))


def cosine(ref: np.ndarray, approx: np.ndarray) -> float:
    """Cosine similarity of the flattened arrays, in fp64."""
    a, b = ref.astype(np.float64).ravel(), approx.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def inputs(rows: int, k: int, m: int, n: int, seed: int) -> dict[str, np.ndarray]:
    """The fixed-seed test tensors (fp32)."""
    rng = np.random.default_rng(seed)
    return {
        "gaussian": rng.standard_normal((rows, k)).astype(np.float32),
        "student_t3": rng.standard_t(3, size=(rows, k)).astype(np.float32),
        "act_gaussian": rng.standard_normal((m, k)).astype(np.float32),
        "act_student_t3": rng.standard_t(3, size=(m, k)).astype(np.float32),
        "weight": (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32),
    }


def _cast(x: np.ndarray, recipe: Recipe, axis: int) -> breccia.ScaledTensor:
    st = breccia.cast(x, recipe, axis=axis)
    assert isinstance(st, breccia.ScaledTensor)
    return st


def run(t: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Every metric for every demo recipe."""
    w = t["weight"]
    w64 = w.astype(np.float64)
    refs = {name: t[name].astype(np.float64) @ w64 for name in ("act_gaussian", "act_student_t3")}
    out = []
    for label, recipe in DEMO_RECIPES:
        row: dict[str, Any] = {"label": label, "recipe": repr(recipe), "target": matmul_target(recipe)}
        for name in ("gaussian", "student_t3"):
            x = t[name]
            st = _cast(x, recipe, -1)
            y = breccia.dequantize(st)
            row["bits_per_value"] = st.bits_per_value
            row[f"{name}_sqnr_db"] = sqnr_db(x, y)
            row[f"{name}_cosine"] = cosine(x, y)
        sw = _cast(w, recipe, 0)
        row["weight_sqnr_db"] = sqnr_db(w, breccia.dequantize(sw))
        for name, ref in refs.items():
            prod = np.asarray(breccia.matmul(_cast(t[name], recipe, -1), sw))
            row[f"matmul_{name}_cosine"] = cosine(ref, prod)
            row[f"matmul_{name}_sqnr_db"] = sqnr_db(ref, prod)
        target = row["target"]
        row["pass"] = None if target is None else all(row[f"matmul_{name}_cosine"] >= target for name in refs)
        out.append(row)
        g, s = row["matmul_act_gaussian_cosine"], row["matmul_act_student_t3_cosine"]
        print(
            f"  {label:34s} SQNR {row['gaussian_sqnr_db']:5.1f} / {row['student_t3_sqnr_db']:5.1f} dB, "
            f"matmul cos {g:.6f} / {s:.6f}",
            file=sys.stderr,
        )
    return out


def roundtrip_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: round-trip SQNR and cosine on both input distributions."""
    head = (
        "recipe",
        "bits/val",
        "Gaussian SQNR dB",
        "Gaussian cosine",
        "Student-t3 SQNR dB",
        "Student-t3 cosine",
    )
    body = [
        (
            r["label"],
            f"{r['bits_per_value']:.2f}",
            f"{r['gaussian_sqnr_db']:.2f}",
            f"{r['gaussian_cosine']:.6f}",
            f"{r['student_t3_sqnr_db']:.2f}",
            f"{r['student_t3_cosine']:.6f}",
        )
        for r in rows
    ]
    return _common.markdown_table(head, body)


def matmul_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: matmul cosine (and SQNR) vs the fp64 reference, with pass/fail against the targets."""
    head = (
        "recipe",
        "weight SQNR dB",
        "A Gaussian: cosine",
        "SQNR dB",
        "A Student-t3: cosine",
        "SQNR dB",
        "target",
        "result",
    )
    body = []
    for r in rows:
        target = "—" if r["target"] is None else f">= {r['target']}"
        result = "—" if r["pass"] is None else ("PASS" if r["pass"] else "FAIL")
        body.append(
            (
                r["label"],
                f"{r['weight_sqnr_db']:.2f}",
                f"{r['matmul_act_gaussian_cosine']:.6f}",
                f"{r['matmul_act_gaussian_sqnr_db']:.2f}",
                f"{r['matmul_act_student_t3_cosine']:.6f}",
                f"{r['matmul_act_student_t3_sqnr_db']:.2f}",
                target,
                result,
            )
        )
    return _common.markdown_table(head, body, "lrrrrrll")


def report(rows: list[dict[str, Any]], info: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> str:
    """The full markdown report."""
    failed = [r["label"] for r in rows if r["pass"] is False]
    verdict = "all matmul targets met" if not failed else "matmul target MISSED by: " + ", ".join(failed)
    return "\n".join(
        [
            "# breccia accuracy benchmark",
            "",
            _common.describe(info),
            "",
            f"## Round trip: dequantize(cast(x, recipe, axis=-1)) vs x, x of shape {shapes['x']} (fp32)",
            "",
            roundtrip_table(rows),
            "",
            f"## Matmul vs fp64 reference: A{list(shapes['a'])} (cast axis=-1) @ W{list(shapes['w'])} "
            "(Gaussian / sqrt(K), cast axis=0)",
            "",
            f"Targets: FP8 recipes (per-tensor, delayed, 1x128, 128x128, MXFP8) cosine >= {FP8_TARGET} "
            f"and NVFP4 >= {NVFP4_TARGET}, on both activation distributions. Result: {verdict}.",
            "",
            matmul_table(rows),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print markdown, optionally write markdown/JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1024, help="rows of the round-trip inputs (default 1024)")
    ap.add_argument("--k", type=int, default=4096, help="contraction length / row length (default 4096)")
    ap.add_argument("--m", type=int, default=512, help="activation rows for the matmul (default 512)")
    ap.add_argument("--n", type=int, default=1024, help="weight columns for the matmul (default 1024)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", metavar="PATH", help="also write the markdown report here")
    ap.add_argument("--json", metavar="PATH", help="write the raw numbers as JSON")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a matmul target is missed")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    info = _common.machine_info()
    t = inputs(args.rows, args.k, args.m, args.n, args.seed)
    rows = run(t)
    shapes = {"x": (args.rows, args.k), "a": (args.m, args.k), "w": (args.k, args.n)}
    text = report(rows, info, shapes)
    print(text)
    print(f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.json:
        _common.dump_json(args.json, {"machine": info, "shapes": shapes, "seed": args.seed, "rows": rows})
    return 1 if args.strict and any(r["pass"] is False for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
