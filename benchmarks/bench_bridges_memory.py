"""Peak memory of saving and loading a 1 GiB breccia safetensors checkpoint (issue: < 1.5x the file size).

Each phase runs in a fresh process, so its peak RSS (``ru_maxrss``) is its own: ``save`` builds 1 GiB of
ScaledTensors (that 1x is the tensors themselves) and writes them; ``load`` reads them back into numpy or torch.
The peer, measured in the same run on the same bytes: safetensors' own ``safetensors.numpy.save_file`` /
``load_file`` (which have no float8 dtypes, so they get the buffers as uint8 views).
Reported: (peak RSS - RSS after imports) / file size, and breccia / peer. Run:
``python benchmarks/bench_bridges_memory.py [GiB]``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS, COLS = 4096, 32768  # one MXFP8 weight: 128 MiB of data + 4 MiB of E8M0 scales


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _phase(phase: str, path: str, n: int) -> None:
    import ml_dtypes
    import numpy as np

    import breccia
    import breccia.bridges._arrays
    from breccia.bridges import load_safetensors, save_safetensors

    if phase == "load-torch":
        import torch  # noqa: F401  (imported before the baseline so its own footprint is not counted)
    import safetensors.numpy

    base = _rss()
    t0 = time.perf_counter()
    if phase in ("save", "peer-save"):
        rng = np.random.default_rng(0)
        recipe = breccia.MXFP8BlockScaling()
        sts = {}
        for i in range(n):
            data = rng.integers(0, 126, (ROWS, COLS), dtype=np.uint8).view(ml_dtypes.float8_e4m3fn)
            scale = rng.integers(100, 140, (ROWS, COLS // 32), dtype=np.uint8).view(ml_dtypes.float8_e8m0fnu)
            sts[f"layer{i}"] = breccia.from_buffer(data, scale, recipe)
        t0 = time.perf_counter()
        if phase == "save":
            save_safetensors(sts, path)
        else:
            plain = {f"{k}.{p}": getattr(st, p).view(np.uint8) for k, st in sts.items() for p in ("data", "scale")}
            safetensors.numpy.save_file(plain, path + ".peer")
    elif phase == "peer-load":
        out = safetensors.numpy.load_file(path + ".peer")
        assert len(out) == 2 * n
        for arr in out.values():
            arr.max()
    else:
        out = load_safetensors(path, framework="torch" if phase == "load-torch" else "numpy")
        assert len(out) == n
        for st in out.values():  # touch every byte: torch tensors may be file-backed (mmap) until read
            breccia.bridges._arrays.host_numpy(st.data).view(np.uint8).max()
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"phase": phase, "extra": peak - base, "seconds": secs}))


def main() -> None:
    gib = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    n = max(1, round(gib * (1 << 30) / (ROWS * COLS * (1 + 1 / 32))))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ckpt.safetensors")
        rows = []
        phases = ["save", "peer-save", "load-numpy", "peer-load"]
        try:
            import torch  # noqa: F401

            phases.append("load-torch")
        except ImportError:
            pass
        for phase in phases:
            out = subprocess.run([sys.executable, __file__, "--phase", phase, path, str(n)], check=True,
                                 capture_output=True, text=True).stdout  # fmt: skip
            rows.append(json.loads(out.strip().splitlines()[-1]))
        size = os.path.getsize(path)
    print(f"checkpoint: {n} MXFP8 tensors of {ROWS}x{COLS}, file {size / (1 << 30):.3f} GiB\n")
    by = {r["phase"]: r for r in rows}
    peer = {"save": "peer-save", "load-numpy": "peer-load", "load-torch": "peer-load"}
    print("| phase | peak RSS above baseline | / file size | seconds | GB/s | memory vs safetensors.numpy |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        p = by.get(peer.get(r["phase"], ""))
        ratio = f"{r['extra'] / p['extra']:.3f}x" if p else "(peer)"
        print(f"| {r['phase']} | {r['extra'] / (1 << 30):.3f} GiB | {r['extra'] / size:.3f}x | {r['seconds']:.2f} | "
              f"{size / r['seconds'] / 1e9:.2f} | {ratio} |")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--phase":
        _phase(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
