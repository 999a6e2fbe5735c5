"""``breccia demo``: every recipe on a built-in tensor set, one table (needs only breccia-core).

The tensor set is generated from a fixed seed so the table is reproducible: a Gaussian weight matrix, activations
with Student-t (ν=3) heavy tails, and the same activations with a few outlier channels (the case that separates
per-tensor from block scaling). Each recipe quantizes weights (blocked along K, axis 0 of ``W[K, N]``) and
activations (along K, their last axis); the matmul column compares ``dequant(A) @ dequant(W)`` to the fp32 product.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ._api import cast, dequantize, matmul
from ._recipes import (
    DelayedScaling,
    Float8BlockScaling,
    Float8CurrentScaling,
    INT4Scaling,
    INT8Scaling,
    MXFP4BlockScaling,
    MXFP6BlockScaling,
    MXFP8BlockScaling,
    NVFP4BlockScaling,
    Recipe,
)
from ._tensor import ScaledTensor

__all__ = ["DEMO_RECIPES", "DemoRow", "demo_tensors", "run_demo"]

DEMO_RECIPES: list[tuple[str, Recipe]] = [
    ("FP8 E4M3 per-tensor (current)", Float8CurrentScaling()),
    ("FP8 E4M3 per-tensor (delayed)", DelayedScaling()),
    ("FP8 E5M2 per-tensor", Float8CurrentScaling(fp8_format="E5M2")),
    ("FP8 E4M3 1x128 blocks", Float8BlockScaling()),
    ("FP8 E4M3 128x128 blocks", Float8BlockScaling(block_m=128)),
    ("FP8 1x128 pow2 (DeepSeek ue8m0)", Float8BlockScaling(power_of_2_scales=True)),
    ("MXFP8 E4M3 (rceil)", MXFP8BlockScaling()),
    ("MXFP8 E4M3 (floor, OCP)", MXFP8BlockScaling(scale_rounding="floor")),
    ("MXFP6 E2M3", MXFP6BlockScaling(element="E2M3")),
    ("MXFP6 E3M2", MXFP6BlockScaling(element="E3M2")),
    ("MXFP4 E2M1", MXFP4BlockScaling()),
    ("NVFP4 1x16 two-level", NVFP4BlockScaling()),
    ("NVFP4 16x16 two-level", NVFP4BlockScaling(block_m=16)),
    ("NVFP4 1x16 one-level", NVFP4BlockScaling(per_tensor_scale=False)),
    ("INT8 per-channel", INT8Scaling()),
    ("INT4 g128 symmetric", INT4Scaling()),
    ("INT4 g128 asymmetric", INT4Scaling(symmetric=False, signed=False)),
]


@dataclass(frozen=True)
class DemoRow:
    label: str
    bits_per_value: float
    bytes_vs_fp32: float
    sqnr_db: float
    matmul_cosine: float
    max_abs_error: float


def demo_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    """The built-in tensor set (fp32): ``weight`` [1024, 512], ``act`` and ``act_outliers`` [256, 1024]."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((1024, 512)) * 0.02).astype(np.float32)
    a = rng.standard_t(3, size=(256, 1024)).astype(np.float32)
    ao = a.copy()
    ao[:, rng.choice(1024, 8, replace=False)] *= 50.0
    return {"weight": w, "act": a, "act_outliers": ao}


def sqnr_db(x: np.ndarray, y: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB (inf when exact)."""
    noise = float(np.sum((x.astype(np.float64) - y) ** 2))
    sig = float(np.sum(x.astype(np.float64) ** 2))
    return float("inf") if noise == 0 else 10.0 * float(np.log10(sig / noise))


def cosine(x: np.ndarray, y: np.ndarray) -> float:
    x64, y64 = x.astype(np.float64).ravel(), y.astype(np.float64).ravel()
    return float(x64 @ y64 / (np.linalg.norm(x64) * np.linalg.norm(y64)))


def _st(x: np.ndarray, recipe: Recipe, axis: int) -> ScaledTensor:
    st = cast(x, recipe, axis=axis)
    assert isinstance(st, ScaledTensor)
    return st


def run_demo(seed: int = 0) -> list[DemoRow]:
    t = demo_tensors(seed)
    w, a = t["weight"], t["act_outliers"]
    ref = a.astype(np.float64) @ w.astype(np.float64)
    rows = []
    for label, recipe in DEMO_RECIPES:
        sw, sa = _st(w, recipe, 0), _st(a, recipe, -1)
        dw = dequantize(sw)
        y = matmul(sa, sw)
        rows.append(
            DemoRow(
                label,
                sw.bits_per_value,
                sw.nbytes / w.nbytes,
                sqnr_db(w, dw),
                cosine(ref, y),
                float(np.max(np.abs(dw - w))),
            )
        )
    return rows


def format_table(rows: list[DemoRow]) -> str:
    head = ("recipe", "bits/value", "bytes vs fp32", "weight SQNR dB", "matmul cosine", "max abs err")
    body = [
        (
            r.label,
            f"{r.bits_per_value:.2f}",
            f"{r.bytes_vs_fp32:.3f}",
            f"{r.sqnr_db:.1f}",
            f"{r.matmul_cosine:.6f}",
            f"{r.max_abs_error:.2e}",
        )
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(head), "  ".join("-" * w for w in widths), *map(line, body)])


def main(seed: int = 0) -> str:
    t0 = time.perf_counter()
    rows = run_demo(seed)
    dt = time.perf_counter() - t0
    return (
        f"breccia demo: weight [1024, 512] Gaussian, activations [256, 1024] Student-t(3) with 8 outlier "
        f"channels ×50; seed {seed}\n\n{format_table(rows)}\n\n{len(rows)} recipes in {dt:.2f} s"
    )
