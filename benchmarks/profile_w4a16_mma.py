"""ncu driver for the Gluon W4A16 kernel: a few launches of one config at 8192×8192 (INT4 g128 or NVFP4, (N, K)).

Run under ``ncu -k regex:w4a16_mma --launch-skip 2 --launch-count 1 --metrics ... python profile_w4a16_mma.py M
RECIPE WK,WN,RT[,AHEAD[,MAXNREG[,SPLIT]]]`` (``probe_w4a16_mma``'s config text, so K ranges can be profiled);
prints nothing worth reading itself. ``VARIANTS`` as in the probe (its first entry's switches are set)."""

import sys

import torch
from probe_w4a16_mma import _config, _variants

import breccia
from breccia.triton import _w4a16 as W
from breccia.triton import _w4a16_mma as G

for flag, value in _variants()[0][1].items():
    setattr(G, flag, value)
m, recipe = int(sys.argv[1]), sys.argv[2]
cfg = _config(sys.argv[3])
r = breccia.INT4Scaling(group_size=128) if recipe == "int4" else breccia.NVFP4BlockScaling()
w = breccia.cast(torch.randn(8192, 8192, device="cuda") * 0.02, r)
x = torch.randn(m, 8192, device="cuda").bfloat16()
p = W._plan(w)
out = torch.empty(m, 8192, dtype=torch.bfloat16, device="cuda")
for _ in range(4):
    G.launch(x, p, out, cfg)
torch.cuda.synchronize()
