"""NVFP4 16×16 quantize: program tile × warps × grid order, each checked byte for byte against breccia-torch, then
timed as kernel GPU time against a copy of the same input (the sixteenth session's sweep, which set
``NV2D_WARPS = 1`` and ``NV2D_SWAP``):

    PYTHONPATH=packages/breccia-core/src:packages/breccia-torch/src:packages/breccia-triton/src \\
        python benchmarks/sweep_nvfp4_2d_tiles.py

"tile/2" is the program's elements (``TILE / 2``: 16 rows × tile/32); "x copy" the bytes the cast moves per second
over the copy's (read + written). Times are CUDA-graph replays (``bench_gpu.gpu_time``, best of 3 rounds).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch


def sweep(m: int, k: int) -> None:
    """One table: every configuration at ``m × k`` bf16, copy timed before and after."""
    import bench_triton_cast as btc
    from bench_gpu import eager, fresh_input, gpu_time

    import breccia
    from breccia.triton import _cast as tc
    from breccia.triton._amax import tensor_amax

    r = breccia.NVFP4BlockScaling(block_m=16)
    lay = r.default_layout(-1)
    saved = tc.TILE, tc.NV2D_WARPS, tc.NV2D_SWAP
    x = fresh_input(m, k, 3)
    ref = eager(x, r, lay)
    g = tensor_amax(x)
    plan = tc._plan(x, r, lay)
    configs = [(h, w, s) for h in (1024, 2048, 4096, 8192) for w in (1, 2, 4) for s in (False, True)]
    configs = [c for c in configs if 8 <= c[0] // (32 * c[1]) <= 256]
    same: dict[tuple[int, int, bool], bool] = {}
    times: dict[tuple[int, int, bool], float] = {}
    launch: Callable[[], object] = lambda: tc._launch(x, r, plan, g, m)  # noqa: E731 -- reads tc's knobs per call
    copy = [gpu_time({"copy": x.clone}, 3)["copy"]]
    for c in configs:  # the knobs are read at launch (and at graph capture): set them for the check and the timing
        tc.TILE, tc.NV2D_WARPS, tc.NV2D_SWAP = 2 * c[0], c[1], c[2]
        st = tc.cast(x, r)
        same[c] = st is not None and btc.same(st, ref)
        times[c] = gpu_time({"k": launch}, 3)["k"]
    tc.TILE, tc.NV2D_WARPS, tc.NV2D_SWAP = saved
    copy.append(gpu_time({"copy": x.clone}, 3)["copy"])
    moved, cp = btc.moved(x, ref), min(copy)
    print(f"\n{m}x{k} bf16: copy {cp * 1e3:.1f} us (before / after: {copy[0] * 1e3:.1f} / {copy[1] * 1e3:.1f})")
    print("| tile/2 | warps | swap | same bytes | us | x copy |\n|---:|---:|---|---|---:|---:|")
    for c in configs:
        mark = " (default)" if (2 * c[0], c[1], c[2]) == saved else ""
        ratio = moved / times[c] / (2 * btc.nbytes(x) / cp)
        print(f"| {c[0]} | {c[1]} | {c[2]} | {same[c]} | {times[c] * 1e3:.1f} | {ratio:.3f}{mark} |")


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("sweep_nvfp4_2d_tiles.py needs a CUDA device")
    print(f"card: {torch.cuda.get_device_name()}; torch {torch.__version__}")
    for m, k in ((8192, 8192), (4096, 8192)):
        sweep(m, k)


if __name__ == "__main__":
    main()
