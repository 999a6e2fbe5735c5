"""What the sm_90 compile scripts share (``_sm90_cast.py``, ``_sm90_gluon.py``): catch a kernel's launch from the
host code, compile it for sm_90 as that launch would specialise it, and list its SASS. No GPU needed: Triton's
compiler and its bundled ``ptxas`` / ``cuobjdump`` run on any machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["Catch", "compile_sm90", "run_script", "sass"]


class Catch:
    """Stands in for a kernel: records the launch's arguments in ``caught`` and stops it (``StopIteration``)."""

    def __init__(self, kernel: Any, caught: dict[str, Any]) -> None:
        self.kernel, self.caught = kernel, caught

    def __getitem__(self, grid: Any) -> Any:
        def launch(*args: Any, **kw: Any) -> None:
            self.caught.update(kernel=self.kernel, args=args, kw=kw)
            raise StopIteration

        return launch


def compile_sm90(
    kernel: Any, args: tuple[Any, ...], consts: dict[str, Any], options: dict[str, Any], gluon: bool = False
) -> Any:
    """``kernel`` (``triton.jit``, or ``gluon.jit`` with ``gluon=True``) compiled for sm_90 with the launch's
    arguments: their own types (``*bf16``, ``i32``, descriptors), its constexprs, and the launch's specialisation
    (16-byte aligned pointers, integers divisible by 16)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.runtime.jit import mangle_type

    if gluon:
        from triton.experimental.gluon._runtime import GluonASTSource as Source
    else:
        from triton.compiler import ASTSource as Source
    names = list(kernel.arg_names)
    sig = {n: mangle_type(a) for n, a in zip(names, args)}
    kept = {n: consts[n] for n in names[len(args) :]}
    sig |= {n: "constexpr" for n in kept}
    attrs = {(i,): [["tt.divisibility", 16]] for i, n in enumerate(names[: len(args)])
             if sig[n].startswith("*") or (isinstance(args[i], int) and args[i] % 16 == 0)}  # fmt: skip
    return triton.compile(Source(kernel, sig, kept, attrs), target=GPUTarget("cuda", 90, 32), options=options)


def sass(compiled: Any) -> tuple[str, int | None]:
    """The compiled kernel's SASS listing (``cuobjdump -sass``) and its register count (``-res-usage``)."""
    import triton

    cuobjdump = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    cubin = Path(os.environ.get("TMPDIR", "/tmp")) / f"breccia_sm90_{os.getpid()}.cubin"
    cubin.write_bytes(compiled.asm["cubin"])
    try:
        listing = subprocess.run([str(cuobjdump), "-sass", str(cubin)], capture_output=True, text=True, check=True)
        res = subprocess.run([str(cuobjdump), "-res-usage", str(cubin)], capture_output=True, text=True, check=True)
    finally:
        cubin.unlink()
    regs = re.search(r"REG:(\d+)", res.stdout)
    return listing.stdout, int(regs.group(1)) if regs else None


def run_script(script: str, tmp_path: Path, timeout: float) -> list[dict[str, Any]]:
    """Run one of the compile scripts of this folder in a subprocess and return its JSON lines. A subprocess,
    because ``TRITON_INTERPRET`` (set by ``conftest.py`` without a GPU) replaces the compiler in the test process;
    ``timeout`` turns a compiler that hangs into a failure, not a stalled run."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"} | {"TMPDIR": str(tmp_path)}
    cmd = [sys.executable, str(Path(__file__).parent / script)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=timeout)
    assert run.returncode == 0, run.stderr[-3000:]
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
