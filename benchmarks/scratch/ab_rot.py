"""Position-rotated A/B: HEAD, a second copy of HEAD (HEAD2: any gap between the two is the method's own spread or
a bias of the measuring order), F3 and cuBLAS. Round r measures the four in an order rotated by r, so each takes
every position once over four rounds; reports the best and the median of the rounds, and the mean time by position."""
import importlib.util, math, os, statistics, sys
import torch
import breccia.triton._gemm as G
from breccia.triton._gemm import scaled_gemm
from bench_gpu import _fp8, blockwise_case
from bench_triton_w4a16 import _graph_us

def load(name, path):
    spec = importlib.util.spec_from_file_location(f"breccia.triton._gemm_ws_{name}", path)
    m = importlib.util.module_from_spec(spec); sys.modules[spec.name] = m; spec.loader.exec_module(m); return m

mods = {"HEAD": load("HEAD", "benchmarks/scratch/old_gemm_ws.py"), "HEAD2": load("HEAD2", "benchmarks/scratch/old_gemm_ws.py"),
        "F3": load("F3", "benchmarks/scratch/f3_gemm_ws.py")}
ROUNDS = int(os.environ.get("ROUNDS", "4")); REPLAYS = int(os.environ.get("REPLAYS", "10"))
NK = [(7168, 2048), (24576, 1536), (7168, 16384), (4096, 7168), (4096, 4096)]
block = [(m, n, k) for m in (4096, 16384) for n, k in NK]
tensor = [(8192, 8192, 8192), (4096, 7168, 16384), (16384, 4096, 4096), (4096, 24576, 1536)]
print(f"card: {torch.cuda.get_device_name()}; {ROUNDS} rounds, order rotated each round; {REPLAYS} graph replays of 64 calls")
names = list(mods) + ["cublas"]
ratios = {(kind, n, stat): [] for kind in ("block", "tensor") for n in mods for stat in ("best", "median")}
bypos = [[] for _ in names]  # each time over its function's median for the shape, by position in the round
for kind, shapes in (("block", block), ("tensor", tensor)):
    print(f"\n{kind}\n\n| M×N×K | cuBLAS best / median | " + " | ".join(f"{n} best (×) / median (×)" for n in mods) + " | F3 = HEAD |")
    print("|---|---:|" + "---:|" * len(mods) + "---|")
    for m, n, k in shapes:
        a, w = _fp8((m, k), 1), _fp8((n, k), 2)
        if kind == "block":
            sa, sw, _ref, cb = blockwise_case(a, w, 1)
            args = (a, sa, w.t(), sw.t(), "block")
            cub = lambda: cb(w)
        else:
            sa, sw = torch.tensor(0.5, device="cuda"), torch.tensor(0.25, device="cuda")
            args = (a, sa, w.t(), sw, "tensor")
            cub = lambda: torch._scaled_mm(a, w.t(), scale_a=sa, scale_b=sw, out_dtype=torch.bfloat16)
        def mk(mod):
            def f():
                G._ws_module = lambda: mod
                return scaled_gemm(*args, torch.bfloat16, impl="ws")
            return f
        fns = {nm: mk(md) for nm, md in mods.items()} | {"cublas": cub}
        eq = torch.equal(fns["HEAD"](), fns["F3"]())
        times = {nm: [] for nm in names}
        for r in range(ROUNDS):
            order = names[r % len(names):] + names[: r % len(names)]
            for pos, nm in enumerate(order):
                t = _graph_us([fns[nm]], replays=REPLAYS)
                times[nm].append((t, pos))
        fl = 2.0 * m * n * k
        for nm, v in times.items():
            md = statistics.median(t for t, _ in v)
            for t, pos in v:
                bypos[pos].append(t / md)
        best = {nm: fl / min(t for t, _ in v) / 1e6 for nm, v in times.items()}
        med = {nm: fl / statistics.median(t for t, _ in v) / 1e6 for nm, v in times.items()}
        cells = [f"{best[nm]:.0f} ({best[nm] / best['cublas']:.3f}×) / {med[nm]:.0f} ({med[nm] / med['cublas']:.3f}×)" for nm in mods]
        print(f"| {m}×{n}×{k} | {best['cublas']:.0f} / {med['cublas']:.0f} | " + " | ".join(cells) + f" | {eq} |", flush=True)
        for nm in mods:
            ratios[(kind, nm, "best")].append(best[nm] / best["cublas"]); ratios[(kind, nm, "median")].append(med[nm] / med["cublas"])
print()
for (kind, nm, stat), v in ratios.items():
    print(f"{kind}: geometric mean vs cuBLAS ({stat} of rounds) over {len(v)} shapes, {nm}: {math.exp(sum(map(math.log, v)) / len(v)):.3f}×")
print("time / the function's median for its shape, by position in the round (1 = first): " + ", ".join(
    f"{i + 1}: {statistics.mean(v):.4f}" for i, v in enumerate(bypos)))
