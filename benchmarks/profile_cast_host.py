"""Where a whole ``breccia.cast`` call on a CUDA tensor spends its time, beside its kernel's GPU time (one CUDA GPU).

The quantize kernels run at 0.93–1.01× of a device copy, but the public call measured 0.09–0.34× of it (issue 5's
tables, "call" column): the call adds host work (planning, allocations, the launch, the result's assembly) and one
sync (the non-finite flag's ``.item()``), so its wall time is host work + GPU time, never overlapped. This prints,
per recipe and size, the kernel alone (CUDA-graph replay of ``_cast._launch``), the whole ``breccia.triton.cast``
and ``breccia.cast`` calls (wall time per call over a loop of calls, as a user's conversion loop sees it), the host
share (wall − GPU), and the peer timed the same way in the same run: torch's eager ``x.to(float8_e4m3fn)``, one
kernel and no scale, the floor of an eager conversion call. Then the host cost of each stage of
``breccia.triton.cast`` alone (each timed over calls queued behind ``torch.cuda._sleep``, so none waits for the GPU;
the flag's ``.item()`` timed on a ready value). Then ``cProfile`` of the public call for two recipes, top functions
by own time (written to ``$OUT/cast_host_profile.txt`` when ``OUT`` is set, else printed). Without a GPU it says so
and exits 0."""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_triton_w4a16 import _graph_us
from profile_w4a16_host import _host_us

PICK = ["Float8Block 1x128", "Float8Current per-tensor", "MXFP8 E4M3 rceil", "NVFP4 two-level", "INT4 g128 asym"]
PICK = os.environ.get("RECIPES", ";".join(PICK)).split(";")  # e.g. RECIPES="NVFP4 two-level" for a short A/B
SIZES = [(8192, 8192), (4096, 4096), (16, 4096)]


def _wall_us(fn: Callable[[], Any], calls: int = 50) -> float:
    """Wall time per call of ``calls`` back-to-back calls (each syncs once on its flag), after two warm-up calls."""
    fn()
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    return 1e6 * (time.perf_counter() - t0) / calls


def _stages(recipes: dict[str, Any]) -> None:
    print("\n| recipe (4096×4096 bf16) | stage | host us per call |\n|---|---|---:|")
    for name in [n for n in ("Float8Block 1x128", "NVFP4 two-level") if n in PICK]:
        for stage, us in _stage_rows(recipes[name]).items():
            print(f"| {name} | {stage} | {us:.1f} |", flush=True)


def _stage_rows(recipe: Any) -> dict[str, float]:
    """Host microseconds per call of each stage of ``breccia.triton.cast`` on a 4096×4096 bf16 tensor."""
    from breccia._api import _resolve
    from breccia.triton import _amax
    from breccia.triton import _cast as tc

    x = torch.randn(4096, 4096, device="cuda").bfloat16()
    shape = (4096, 4096)
    lay = _resolve(recipe, None, -1, "profile", 2)
    plan = tc._plan(x, recipe, lay)
    assert plan is not None
    x2 = x.reshape(-1, plan.k)
    gamax = _amax.tensor_amax(x2) if recipe.has_global_scale else None
    data, scale, zp, flags = tc._launch(x2, recipe, plan, gamax, 4096)
    st = tc._assemble(data, scale, zp, recipe, lay, shape)
    ready = flags.max()
    torch.cuda.synchronize()
    rows = {
        "_resolve (layout check)": partial(_resolve, recipe, None, -1, "profile", 2),
        "_plan": partial(tc._plan, x, recipe, lay),
        "one torch.empty": partial(torch.empty, (4096, 32), dtype=torch.uint8, device="cuda"),
        "_launch (allocations + Triton launch)": partial(tc._launch, x2, recipe, plan, gamax, 4096),
        "flags.max() (a reduction launch)": flags.max,
        "_assemble (views + ScaledTensor)": partial(tc._assemble, data, scale, zp, recipe, lay, shape),
        "ScaledTensor.validate()": st.validate,
    }
    if gamax is not None:
        rows["amax pass (launch)"] = partial(_amax.tensor_amax, x2)
    out = {stage: _host_us(fn, 100) for stage, fn in rows.items()}  # 100 calls: the launch queue stays short
    out[".item() of a ready value (GPU idle)"] = _wall_us(ready.item, 300)
    out["whole breccia.triton.cast (GPU idle, kernel included)"] = _wall_us(partial(tc.cast, x, recipe), 300)
    return out


def main() -> int:
    if not torch.cuda.is_available():
        print("profile_cast_host: no CUDA device here (nothing was profiled).")
        return 0
    from bench_triton_cast import RECIPES

    import breccia
    import breccia.triton as bt
    from breccia.triton import _amax
    from breccia.triton import _cast as tc

    recipes = dict(RECIPES)
    print(f"card: {torch.cuda.get_device_name()} · torch {torch.__version__}")
    print(
        "| recipe | shape | kernel GPU us | triton.cast us | breccia.cast us | host share of breccia.cast "
        "| torch x.to(e4m3) us | breccia.cast / torch |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in PICK:
        recipe = recipes[name]
        for m, k in SIZES:
            x = torch.randn(m, k, device="cuda").bfloat16()
            plan = tc._plan(x, recipe, recipe.default_layout(-1))
            if plan is None:
                continue
            x2 = x.reshape(-1, plan.k)
            per_tensor = recipe.has_global_scale or plan.per_tensor

            def kernel(x2: torch.Tensor = x2, recipe: Any = recipe, plan: Any = plan, pt: bool = per_tensor) -> Any:
                gamax = None
                if pt:  # the amax pass the cast runs
                    gamax = _amax.tensor_amax(x2)
                return tc._launch(x2, recipe, plan, gamax, x2.shape[0])

            t_k = _graph_us([kernel])
            t_t = _wall_us(lambda x=x, r=recipe: bt.cast(x, r))
            t_b = _wall_us(lambda x=x, r=recipe: breccia.cast(x, r))
            # the peer, timed the same way in the same run: torch's own one-kernel eager conversion (no scale)
            t_p = _wall_us(lambda x=x: x.to(torch.float8_e4m3fn))
            print(
                f"| {name} | {m}×{k} | {t_k:.1f} | {t_t:.1f} | {t_b:.1f} | {(t_b - t_k) / t_b:.2f} | {t_p:.1f} "
                f"| {t_b / t_p:.2f}× |",
                flush=True,
            )
    _stages(recipes)
    if os.environ.get("NO_CPROFILE") == "1":
        return 0
    buf = io.StringIO()
    for name in ("Float8Block 1x128", "NVFP4 two-level"):
        x = torch.randn(4096, 4096, device="cuda").bfloat16()
        recipe = recipes[name]
        breccia.cast(x, recipe)
        torch.cuda.synchronize()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(200):
            breccia.cast(x, recipe)
        torch.cuda.synchronize()
        prof.disable()
        buf.write(f"\n## {name}, 4096×4096 bf16, 200 calls of breccia.cast\n")
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(30)
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(40)
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, "cast_host_profile.txt"), "w") as f:
            f.write(buf.getvalue())
        print(f"profile written to {out}/cast_host_profile.txt")
    else:
        print(buf.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
