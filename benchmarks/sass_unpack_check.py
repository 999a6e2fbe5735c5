"""Flag E4M3 unpacks that read a register before anything wrote it, in a ``cuobjdump -sass`` listing.

Why: on 2026-12-05 an H200 run found NVFP4 one-level bytes wrong for bf16 input with K ≥ 8192 on the by-six
branch. The cause was ``ptxas`` (CUDA 12.8.93, bundled with Triton 3.6): it hoisted
``F2FP.F16.E4M3.UNPACK_B`` above the ``F2FP.SATFINITE.E4M3.F32.PACK`` that defines its operand, although the PTX
has them in order (``benchmarks/NOTES.md``, twelfth session). The listing is read in order: a source register
with no earlier write is reported. Branches are ignored, which suits these straight-line cast kernels.

Usage: ``python benchmarks/sass_unpack_check.py kernel.sass`` (exit status 1 when something is flagged).
"""

from __future__ import annotations

import re
import sys

_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9_.]+)\s+([^;]*);")
_NO_DEST = ("ST", "RED", "ATOM", "BRA", "EXIT", "ISETP", "FSETP", "HSETP", "BAR", "NOP")
_WIDE = {".64": 2, ".128": 4}


def unwritten_unpacks(sass: str) -> list[str]:
    """The ``F2FP…UNPACK`` instructions whose source register has not been written by an earlier line."""
    written: set[str] = set()
    found = []
    for m in _LINE.finditer(sass):
        addr, op, args = m.group(1), m.group(2), [a.strip() for a in m.group(3).split(",")]
        if op.startswith("F2FP.F16.E4M3.UNPACK") and re.sub(r"\..*", "", args[1]) not in written:
            found.append(f"/*{addr}*/ {op} {', '.join(args)}")
        if args and re.fullmatch(r"R\d+", args[0]) and not op.startswith(_NO_DEST):
            n = int(args[0][1:])
            width = next((w for suffix, w in _WIDE.items() if suffix in op and op.startswith("LD")), 1)
            written.update(f"R{n + k}" for k in range(width))
    return found


def main(paths: list[str]) -> int:
    status = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            found = unwritten_unpacks(f.read())
        print(f"{path}: {'; '.join(found) if found else 'none'}")
        status |= bool(found)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
