# requires: breccia-jax
"""Train a small MLP regression in JAX with FP8 fake quantization (straight-through) on weights and activations.

Every matmul input goes through ``breccia.cast_ste`` (FP8 E4M3 forward values, identity gradient), the way FP8
training recipes see quantization. The final loss is compared with the same model trained in fp32.
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import breccia

FP8 = breccia.Float8BlockScaling(block_k=32)  # 1x32 activation blocks along the contraction axis


def init(key: Any, sizes: list[int]) -> list[tuple[jax.Array, jax.Array]]:
    params = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        w = jax.random.normal(jax.random.fold_in(key, i), (n_in, n_out)) / np.sqrt(n_in)
        params.append((w, jnp.zeros(n_out)))
    return params


def forward(params: list[tuple[jax.Array, jax.Array]], x: jax.Array, fp8: bool) -> jax.Array:
    for i, (w_full, b) in enumerate(params):
        w = w_full
        if fp8:
            x = breccia.cast_ste(x, FP8)  # activations: blocks along K (their last axis)
            w = breccia.cast_ste(w_full, FP8, axis=0)  # weights: blocks along K (their first axis)
        x = x @ w + b
        if i < len(params) - 1:
            x = jax.nn.gelu(x)
    return x


def train(fp8: bool, steps: int = 300) -> float:
    def data(seed: int, n: int) -> tuple[jax.Array, jax.Array]:
        x = jax.random.normal(jax.random.PRNGKey(seed), (n, 64))
        noise = 0.3 * jax.random.normal(jax.random.PRNGKey(seed + 100), (n, 1))  # irreducible loss floor 0.09
        return x, jnp.sin(x[:, :8].sum(axis=1, keepdims=True)) + 0.1 * x[:, 8:9] ** 2 + noise

    x, y = data(0, 4096)
    x_test, y_test = data(1, 4096)
    params = init(jax.random.PRNGKey(1), [64, 128, 128, 1])

    def loss(p: Any) -> jax.Array:
        return jnp.mean((forward(p, x, fp8) - y) ** 2)

    @jax.jit
    def step(p: Any) -> tuple[Any, jax.Array]:
        value, grads = jax.value_and_grad(loss)(p)
        return jax.tree_util.tree_map(lambda a, g: a - 0.05 * g, p, grads), value

    for _ in range(steps):
        params, _ = step(params)
    return float(jnp.mean((forward(params, x_test, fp8) - y_test) ** 2))  # held-out loss


if __name__ == "__main__":
    ref, q = train(fp8=False), train(fp8=True)
    print(f"held-out loss fp32 {ref:.5f}  FP8 (cast_ste) {q:.5f}  ratio {q / ref:.3f}")
    assert abs(q / ref - 1.0) < 0.05, "FP8 training should land within 5% of the fp32 loss"
