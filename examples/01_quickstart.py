"""01 — Quickstart: cast + scaled matmul in 15 lines (needs only breccia-core)."""
# requires: breccia-core

import numpy as np

import breccia

rng = np.random.default_rng(0)
x = rng.standard_normal((16, 256)).astype(np.float32)  # activations [M, K]
w = (rng.standard_normal((256, 128)) * 0.05).astype(np.float32)  # weights [K, N]

a = breccia.cast(x, breccia.MXFP8BlockScaling())  # blocks of 32 along K (axis -1)
b = breccia.cast(w, breccia.MXFP8BlockScaling(), axis=0)  # weights are blocked along K = axis 0
y = breccia.matmul(a, b)  # fp32 accumulation

ref = x @ w
print(a)
print(f"relative error vs fp32: {np.linalg.norm(y - ref) / np.linalg.norm(ref):.2e}")
print(f"bits per value: {a.bits_per_value:.2f}  (fp32: 32)")
