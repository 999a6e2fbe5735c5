"""02 — Recipe-portable training: train with MXFP8, ship as NVFP4 — the model code never changes.

A 2-layer MLP learns a teacher network's outputs (a task it generates, so it runs offline in seconds). The same
model is trained twice from the same initialisation: once in fp32, once with every Linear converted to
``ScaledLinear(recipe=MXFP8BlockScaling())`` (quantized operands forward, straight-through gradients). Then the
MXFP8-trained weights are exported as NVFP4 and the model is evaluated with them.
"""
# requires: breccia-torch

from __future__ import annotations

import copy
import sys

import torch
from torch import nn

import breccia
from breccia.torch.nn import apply_weights, convert_linears, export_weights

torch.manual_seed(0)
D_IN, D_HID, D_OUT, STEPS, BATCH = 64, 256, 16, 800, 256

teacher = nn.Sequential(nn.Linear(D_IN, 128), nn.Tanh(), nn.Linear(128, D_OUT))
for p in teacher.parameters():
    p.requires_grad_(False)


def batch(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, D_IN, generator=gen)
    return x, teacher(x)


def train(model: nn.Module) -> float:
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, STEPS)
    for _ in range(STEPS):
        x, y = batch(BATCH, gen)
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return evaluate(model)


@torch.no_grad()
def evaluate(model: nn.Module) -> float:
    x, y = batch(8192, torch.Generator().manual_seed(123))
    return float(nn.functional.mse_loss(model(x), y))


base = nn.Sequential(nn.Linear(D_IN, D_HID), nn.GELU(), nn.Linear(D_HID, D_OUT))
fp32_model = copy.deepcopy(base)
mx_model = convert_linears(copy.deepcopy(base), breccia.MXFP8BlockScaling())  # the only line that differs

loss_fp32 = train(fp32_model)
loss_mx = train(mx_model)

# Ship: export the MXFP8-trained weights as NVFP4, load them into a plain copy of the model, evaluate.
weights = export_weights(mx_model, breccia.NVFP4BlockScaling())
shipped = apply_weights(copy.deepcopy(base), weights)
loss_nv = evaluate(shipped)
bits = sum(w.nbytes for w in weights.values()) * 8 / sum(w.size for w in weights.values())

ratio = loss_mx / loss_fp32
print(f"fp32 training      eval MSE {loss_fp32:.5f}")
print(f"MXFP8 training     eval MSE {loss_mx:.5f}   ({ratio:.3f}x fp32, target within 5%)")
print(f"exported as NVFP4  eval MSE {loss_nv:.5f}   ({bits:.2f} bits/weight)")
sys.exit(0 if abs(ratio - 1) <= 0.05 else 1)
