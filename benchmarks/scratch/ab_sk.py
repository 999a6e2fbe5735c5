"""A/B of the stream-K schedule (SK) against main's kernel (HEAD) and the branch with stream-K off (DP), with cuBLAS,
interleaved in one process: blockwise and tensorwise shapes. DP must equal HEAD bit for bit; SK differs only at cut
tiles (max relative difference reported)."""
import importlib.util, math, os, sys
import torch
import breccia.triton._gemm as G
from breccia.triton._gemm import scaled_gemm
from bench_gpu import _fp8, blockwise_case, gpu_time

def load(name, path):
    spec = importlib.util.spec_from_file_location(f"breccia.triton._gemm_ws_{name}", path)
    m = importlib.util.module_from_spec(spec); sys.modules[spec.name] = m; spec.loader.exec_module(m); return m

br = "packages/breccia-triton/src/breccia/triton/_gemm_ws.py"
mods = {"HEAD": load("HEAD", "benchmarks/scratch/old_gemm_ws.py"), "DP": load("DP", br), "SK": load("SK", br)}
mods["DP"].FORCE = mods["DP"].WS_CONFIGS["128x128 s5"]._replace(stream_k=False)
NK = [(7168, 2048), (24576, 1536), (7168, 16384), (4096, 7168), (4096, 4096)]
block = [(m, n, k) for m in (4096, 16384) for n, k in NK] + [(4096, 2112, 7168), (8192, 8192, 8192)]
tensor = [(8192, 8192, 8192), (4096, 7168, 16384), (16384, 4096, 4096), (4096, 24576, 1536)]
print(f"card: {torch.cuda.get_device_name()}")
names = list(mods)
logs = {(kind, n): [] for kind in ("block", "tensor") for n in names}
for kind, shapes in (("block", block), ("tensor", tensor)):
    print(f"\n{kind}\n\n| M×N×K | cuBLAS | " + " | ".join(f"{n} TFLOP/s (×)" for n in names) + " | DP = HEAD | SK vs HEAD |")
    print("|---|---:|" + "---:|" * len(names) + "---|---:|")
    for m, n, k in shapes:
        a, w = _fp8((m, k), 1), _fp8((n, k), 2)
        if kind == "block":
            sa, sw, _ref, cb = blockwise_case(a, w, 1)
            args = (a, sa, w.t(), sw.t(), "block")
        else:
            sa, sw = torch.tensor(0.5, device="cuda"), torch.tensor(0.25, device="cuda")
            args = (a, sa, w.t(), sw, "tensor")
            cb = lambda w2, a=a, sa=sa, sw=sw: torch._scaled_mm(a, w2.t(), scale_a=sa, scale_b=sw, out_dtype=torch.bfloat16)
        def mk(mod):
            def f():
                G._ws_module = lambda: mod
                return scaled_gemm(*args, torch.bfloat16, impl="ws")
            return f
        fns = {nm: mk(md) for nm, md in mods.items()}
        base = fns["HEAD"]().float()
        eq = torch.equal(base, fns["DP"]().float())
        sk = fns["SK"]().float()
        diff = float((sk - base).abs().max() / base.abs().max())
        if cb is not None: fns["cublas"] = lambda: cb(w)
        t = gpu_time(fns, rounds=int(os.environ.get("ROUNDS", "2")))
        fl = 2.0 * m * n * k
        tf = {kk: fl / v / 1e9 for kk, v in t.items()}
        c = tf.get("cublas")
        cells = [f"{tf[nm]:.0f} ({tf[nm] / c:.3f}×)" if c else f"{tf[nm]:.0f} ({tf[nm] / tf['HEAD']:.3f}× HEAD)" for nm in names]
        print(f"| {m}×{n}×{k} | {c:.0f} | " if c else f"| {m}×{n}×{k} | refused | ", " | ".join(cells), f"| {eq} | {diff:.1e} |", flush=True)
        if c and m >= 4096 and not (kind == "block" and m == n == k):
            for nm in names: logs[(kind, nm)].append(tf[nm] / c)
print()
for (kind, nm), v in logs.items():
    print(f"{kind}: geometric mean vs cuBLAS over {len(v)} shapes, {nm}: {math.exp(sum(map(math.log, v)) / len(v)):.3f}×")
