"""breccia-triton W4A16 (bf16 activations × INT4 g128 / NVFP4 weights) vs bf16 cuBLAS at decode sizes, one CUDA GPU.

Decode is memory-bound: the time is the weight bytes over the bandwidth, so the table gives the weight bytes each
kernel reads per second and the speed-up over ``x @ w_bf16.T`` (cuBLAS) measured in the same run, on the same card.
Issue 5's target is ≥ 3× bf16 cuBLAS at M ≤ 16 for 8192×8192 (4-bit codes are a quarter of bf16's bytes, plus
scales, so ~3.5× is the ceiling). Each (shape, M) also times the peer PyTorch ships, tinygemm's INT4 g128 kernel
(:func:`tinygemm`; torchao's CUDA INT4 path), the same way; ``probe_w4a16_peers.py`` adds Marlin.

Before timing, each case checks the full-size product against an FP64 product of the dequantized operands, with
the output memory poisoned (NaN blocks freed to the caching allocator just before the call, so a kernel that left
elements unwritten would return NaN). Weights are timed in both orientations the kernel reads in place:
``kn`` = breccia.matmul's ``b[K, N]`` (the routed path; ``breccia.matmul`` is timed too, Python overhead included)
and ``nk`` = the ``(N, K)`` Linear weight (at M ≤ 16 the Gluon fragment kernels take ``nk`` and NVFP4 ``kn``;
``breccia.triton._w4a16.MMA = False`` keeps the Triton kernels). Two times per row: "graph" is GPU time (the calls
captured in a CUDA graph and replayed, each call on its own copy of the weight so that the copies exceed L2 and
every read is cold: what a decode loop under CUDA graphs sees; ratios and GB/s use it); "eager" is
``triton.testing.do_bench`` of a plain Python call (L2 flushed), which includes the host-side launch cost once
that exceeds the GPU time.

Run: ``python benchmarks/bench_triton_w4a16.py`` (a markdown table on stdout; with ``$OUT`` set, the table and a
JSON log are written there too). Exits with a message and status 0 where CUDA is absent.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import torch

SHAPES = [(8192, 8192), (4096, 14336), (14336, 4096)]  # weight (N, K): out_features × in_features
MS = [1, 4, 16]


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _poisoned(fn: Any, shapes: list[tuple[tuple[int, ...], torch.dtype]]) -> Any:
    """Call ``fn`` right after freeing NaN-filled blocks of the sizes it allocates (the allocator reuses them)."""
    junk = [torch.full(s, float("nan"), dtype=dt, device="cuda") for s, dt in shapes]
    del junk
    return fn()


def _graph_us(calls: list[Any], replays: int = 20) -> float:
    """GPU µs per call: the calls (one per weight copy, so each reads cold weights: the copies together exceed
    L2) captured once in a CUDA graph and replayed, so host-side launch cost is not counted."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for fn in calls:
            fn()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            for _ in range(max(1, 64 // len(calls))):
                for fn in calls:
                    fn()
        graph.replay()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(stream)
        for _ in range(replays):
            graph.replay()
        end.record(stream)
    end.synchronize()
    return start.elapsed_time(end) * 1e3 / (replays * max(1, 64 // len(calls)) * len(calls))


def _cold_count(nbytes: int) -> int:
    """How many copies of ``nbytes`` exceed the L2 cache twice over (150 MiB), so graph replays read cold weights."""
    return max(1, -(-(150 << 20) // nbytes))


def _copies(st: Any, nbytes: int) -> list[Any]:
    """Enough clones of ``st`` to exceed the L2 cache twice over (the graph timing then reads cold weights)."""
    import breccia

    count = _cold_count(nbytes)

    def clone(t: Any) -> Any:
        return None if t is None else t.clone()

    return [breccia.ScaledTensor(clone(st.data), clone(st.scale), st.recipe, st.layout, st.shape,
                                 clone(st.global_scale), clone(st.zero_point)) for _ in range(count)]  # fmt: skip


def _weight(w: torch.Tensor, recipe: Any, form: str, x: torch.Tensor) -> tuple[Any, int, torch.Tensor]:
    """``w`` (N, K) quantized in ``form`` (``kn``: ``(K, N)`` blocked along axis 0; ``nk``: the Linear weight):
    ``(ScaledTensor, bytes it holds, FP64 reference product with x)``."""
    import breccia

    st = breccia.cast(w.t().contiguous(), recipe, axis=0) if form == "kn" else breccia.cast(w, recipe)
    parts = (st.data, st.scale, st.global_scale, st.zero_point)
    nbytes = sum(int(t.nelement() * t.element_size()) for t in parts if t is not None)
    d = breccia.dequantize(st).double()
    return st, nbytes, x.double() @ (d if form == "kn" else d.t())


def _rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float(torch.linalg.norm(out.double() - ref) / torch.linalg.norm(ref))


def _graph(fn: Any, parts: list[torch.Tensor]) -> float:
    """GPU µs per call of ``fn(*parts)`` over enough clones of ``parts`` to read cold weights (as :func:`_copies`)."""
    nbytes = sum(t.nelement() * t.element_size() for t in parts)
    clones = [[t.clone() for t in parts] for _ in range(_cold_count(nbytes))]
    return _graph_us([lambda c=c: fn(*c) for c in clones])


def tinygemm(n: int, k: int, x: torch.Tensor, group: int = 128) -> dict[str, Any]:
    """The peer: PyTorch's built-in tinygemm INT4 kernel (``aten._weight_int4pack_mm``, what torchao's
    ``Int4WeightOnlyConfig`` runs on CUDA), bf16 ``x`` times an ``(N, K)`` asymmetric INT4 weight of ``group``-code
    groups (``(q − 8)·s + z``). Random codes, scales and zeros in its layout (bytes of two codes → its packed tiles;
    scales and zeros as ``(K/group, N, 2)``); the product checked against FP64 (output NaN-poisoned), then timed as
    the other rows. Returns ``{"us", "err", "call"}`` (``call``: one product on the first weight, for eager timing)."""
    q = torch.randint(0, 16, (n, k), dtype=torch.int32, device="cuda")
    s = (torch.rand(n, k // group, device="cuda") * 0.01 + 1e-3).bfloat16()
    z = ((torch.rand(n, k // group, device="cuda") - 0.5) * 0.01).bfloat16()
    packed = torch.ops.aten._convert_weight_to_int4pack((q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8), 8)
    sz = torch.stack([s, z], 2).transpose(0, 1).contiguous()
    w = (q - 8).double().view(n, k // group, group) * s.double()[..., None] + z.double()[..., None]

    def fn(p: torch.Tensor, sz: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten._weight_int4pack_mm(x, p, group, sz)

    err = _rel_err(_poisoned(lambda: fn(packed, sz), [((x.shape[0], n), torch.bfloat16)]), x.double() @ w.view(n, k).T)
    return {"us": _graph(fn, [packed, sz]), "err": err, "call": lambda: fn(packed, sz)}


def _case(w: torch.Tensor, m: int, recipes: dict[str, Any], bench: Any) -> list[dict[str, Any]]:
    """One weight and one M: bf16 cuBLAS, then each recipe in both orientations (checked, then timed)."""
    import breccia
    from breccia.triton._w4a16 import _TUNED, w4a16_matmul

    n, k = w.shape
    w_bf16 = [w.bfloat16() for _ in range(2)]
    x = torch.randn(m, k, device="cuda").bfloat16()
    t_ref = _graph_us([lambda wb=wb: x @ wb.T for wb in w_bf16])
    t_ref_eager = bench(lambda: x @ w_bf16[0].T)
    base = {"shape": f"{n}×{k}", "m": m}
    rows = [{**base, "kernel": "bf16 cuBLAS", "us": t_ref, "eager_us": t_ref_eager, "bytes": n * k * 2,
             "err": None, "config": ""}]  # fmt: skip
    peer = tinygemm(n, k, x)
    rows.append({**base, "kernel": "tinygemm INT4 g128 (peer)", "us": peer["us"], "eager_us": bench(peer["call"]),
                 "bytes": n * k // 2 + 2 * (n * k // 64), "err": peer["err"], "config": ""})  # fmt: skip
    for rname, recipe in recipes.items():
        for form in ("kn", "nk"):
            st, nbytes, ref = _weight(w, recipe, form, x)
            before = set(_TUNED)
            w4a16_matmul(x, st)  # tune once (first use per shape)
            cfg = ", ".join(str(tuple(c)) for key, c in _TUNED.items() if key not in before)
            poison = [((m, n), torch.bfloat16), ((64, m, n), torch.float32)]
            out = _poisoned(lambda st=st: w4a16_matmul(x, st), poison)
            err = _rel_err(out, ref)
            bound = 2.0**-9 + 8 * k * 2.0**-24
            if not err <= bound:  # also catches NaN: unwritten output
                print(f"WRONG: {rname} {form} {n}×{k} M={m}: rel. error {err:.2e} > {bound:.2e}")
            t = _graph_us([lambda c=c: w4a16_matmul(x, c) for c in _copies(st, nbytes)])
            t_eager = bench(lambda st=st: w4a16_matmul(x, st))
            rows.append({**base, "kernel": f"{rname} {form}", "us": t, "eager_us": t_eager, "bytes": nbytes,
                         "err": err, "config": cfg})  # fmt: skip
            if form == "kn":
                t_mm = bench(lambda st=st: breccia.matmul(x, st, out_dtype=torch.bfloat16))
                rows.append({**base, "kernel": f"{rname} via breccia.matmul", "us": None, "eager_us": t_mm,
                             "bytes": nbytes, "err": None, "config": ""})  # fmt: skip
    for r in rows:
        r["ratio"] = None if r["us"] is None else t_ref / r["us"]
        r["eager_ratio"] = t_ref_eager / r["eager_us"]
    return rows


def sweep(
    shapes: list[tuple[int, int]],
    ms: list[int],
    budget_s: float = 240.0,
    portable: bool = False,
    forms: tuple[str, ...] = ("kn", "nk"),
) -> list[str]:
    """Every candidate tile (BN × split × stages × warps) with the packed PTX decode on and off, per recipe, form and
    M: GPU time of cold-weight calls (CUDA graph), the best tile, and the ratio to bf16 cuBLAS of the same run.
    Prints and returns a markdown table; stops adding cases after ``budget_s`` seconds."""
    import time

    import triton

    import breccia
    from breccia.triton import _w4a16 as W

    start = time.monotonic()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    recipes = {"INT4 g128": breccia.INT4Scaling(group_size=128), "NVFP4": breccia.NVFP4BlockScaling()}
    lines = ["| weight N×K | M | kernel | decode | cuBLAS µs | best µs | × cuBLAS | GB/s | best tile "
             "| every tile (BN/BK/split/stages) µs |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for n, k in shapes:
        w = torch.randn(n, k, device="cuda") * 0.02
        for m in ms:
            x = torch.randn(m, k, device="cuda").bfloat16()
            t_ref = _graph_us([lambda wb=wb, x=x: x @ wb.T for wb in [w.bfloat16() for _ in range(2)]])
            for rname, recipe in recipes.items():
                for form in forms:
                    if time.monotonic() - start > budget_s:
                        lines.append(f"| {n}×{k} | {m} | {rname} {form} | (time budget spent) |")
                        continue
                    st, nbytes, ref = _weight(w, recipe, form, x)
                    p = W._plan(st)
                    assert p is not None
                    copies = _copies(st, nbytes)
                    bm = 16 if m <= 16 else 32
                    cands = []
                    for bn in (64, 128) if p.words is not None else (128, 256):
                        for bk in (64, 128) if p.words is not None else (128,):
                            s0 = W._split_for(m, bm, bn, p, triton.cdiv(k, bk), sms)
                            for split in sorted({s0, 2 * s0}):
                                # word kernel: num_stages = how many steps ahead its words are loaded
                                for stages in (1, 2, 3) if p.words is not None else (3,):
                                    cands.append(W.Config(bm, bn, bk, min(split, k // bk), 8 if bn == 256 else 4,
                                                          stages))  # fmt: skip
                    for asm in (True, False) if portable else (True,):
                        W.ASM = asm
                        timed = []
                        for c in cands:
                            try:
                                out = W.w4a16_matmul(x, st, out_dtype=torch.float32, config=c)
                                assert out is not None
                                err = _rel_err(out, ref)
                                if not err <= 2.0**-20 + 8 * k * 2.0**-24:
                                    timed.append((float("inf"), c, f"WRONG {err:.1e}"))
                                    continue
                                us = _graph_us([lambda cc=cc, c=c, x=x: W.w4a16_matmul(x, cc, config=c)
                                                for cc in copies])  # fmt: skip
                                timed.append((us, c, ""))
                            except Exception as e:  # a tile that does not compile is a result
                                timed.append((float("inf"), c, type(e).__name__))
                        W.ASM = True
                        best = min(timed, key=lambda t: t[0])
                        every = ", ".join(f"{c.BN}/{c.BK}/{c.SPLIT}/{c.num_stages}: {us:.1f}{' ' + e if e else ''}"
                                          for us, c, e in timed)  # fmt: skip
                        how = ("words, " if p.words is not None else "bytes, ") + ("packed PTX" if asm else "portable")
                        line = (f"| {n}×{k} | {m} | {rname} {form} | {how} | "
                                f"{t_ref:.1f} | {best[0]:.1f} | {t_ref / best[0]:.2f}× | "
                                f"{nbytes / best[0] / 1e3:.0f} | {tuple(best[1])} | {every} |")  # fmt: skip
                        lines.append(line)
                        print(line, flush=True)
    return lines


def main() -> int:
    if not torch.cuda.is_available():
        print("bench_triton_w4a16: no CUDA device here; this benchmark needs an NVIDIA GPU (nothing was timed).")
        return 0
    import triton

    import breccia

    def bench(fn: Any) -> float:
        return float(triton.testing.do_bench(fn, warmup=25, rep=200)) * 1e3  # µs

    props = torch.cuda.get_device_properties(0)
    head = f"card: {props.name} · torch {torch.__version__} · triton {triton.__version__}"
    print(head + "\n")
    if "--sweep" in sys.argv:
        forms = ("nk",) if "--nk" in sys.argv else ("kn",) if "--kn" in sys.argv else ("kn", "nk")
        table = "\n".join(sweep([(8192, 8192)], [1, 16], portable="--portable" in sys.argv, forms=forms))
        if os.environ.get("OUT"):
            _write_atomic(os.path.join(os.environ["OUT"], "w4a16_sweep.md"), head + "\n\n" + table + "\n")
        return 0
    recipes = {"INT4 g128": breccia.INT4Scaling(group_size=128), "NVFP4": breccia.NVFP4BlockScaling()}
    rows: list[dict[str, Any]] = []
    torch.manual_seed(0)
    for n, k in SHAPES:
        w = torch.randn(n, k, device="cuda") * 0.02
        for m in MS:
            rows += _case(w, m, recipes, bench)
    lines = [
        "| weight N×K | M | kernel | µs (graph) | GB/s (weight bytes) | × bf16 cuBLAS | µs (eager) | × (eager) "
        "| rel. err vs FP64 | tuned (BM, BN, BK, SPLIT, warps, stages) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        err = "—" if r["err"] is None else f"{r['err']:.1e}"
        if r["us"] is None:
            us = gbs = ratio = "—"
        else:
            us, gbs, ratio = f"{r['us']:.1f}", f"{r['bytes'] / (r['us'] * 1e-6) / 1e9:.0f}", f"{r['ratio']:.2f}×"
        lines.append(f"| {r['shape']} | {r['m']} | {r['kernel']} | {us} | {gbs} | {ratio} | {r['eager_us']:.1f} | "
                     f"{r['eager_ratio']:.2f}× | {err} | {r['config']} |")  # fmt: skip
    table = "\n".join(lines)
    print(table)
    out_dir = os.environ.get("OUT")
    if out_dir:
        _write_atomic(os.path.join(out_dir, "bench_triton_w4a16.md"), head + "\n\n" + table + "\n")
        log = {"card": props.name, "torch": torch.__version__, "triton": triton.__version__, "rows": rows}
        _write_atomic(os.path.join(out_dir, "bench_triton_w4a16.json"), json.dumps(log, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
