"""A model of the few PTX instructions that breccia-triton's hand-written E2M1 blocks use, run on numpy arrays.

The blocks (``_fp4.group_ptx``) run only on a GPU. Running their text through this model checks
their logic on a CPU, exactly, against ml_dtypes: a wrong permute selector, constant or operand order fails here
before any device time is spent. The semantics follow the PTX ISA: ``.rn`` arithmetic is IEEE binary32 with
round-to-nearest-even and subnormals kept (no ``.ftz``), ``fma.rn`` rounds once (``breccia._testing.rn32_sum`` on
the exact float64 product), ``prmt.b32`` in its default mode picks bytes of ``{b, a}`` by the selector's nibbles
(bit 3 of a nibble: replicate that byte's sign bit), ``lop3.b32``'s LUT is indexed by the bits of ``a``, ``b``, ``c``
(``0xF0``, ``0xCC``, ``0xAA``). What it cannot model is the hardware itself; the GPU suite runs the same blocks.
"""

from __future__ import annotations

import re

import numpy as np

from breccia._testing import rn32_sum

U32 = np.uint32


def _f(v: np.ndarray) -> np.ndarray:
    return v.view(np.float32)


def _u(v: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(v).view(U32)


def _prmt(a: np.ndarray, b: np.ndarray, sel: int) -> np.ndarray:
    both = [(a >> U32(8 * k)) & U32(0xFF) for k in range(4)] + [(b >> U32(8 * k)) & U32(0xFF) for k in range(4)]
    out = np.zeros_like(a)
    for i in range(4):
        n = (sel >> (4 * i)) & 0xF
        byte = both[n & 7]
        if n & 8:
            byte = np.where(byte & U32(0x80), U32(0xFF), U32(0))
        out |= byte << U32(8 * i)
    return out


def _lop3(a: np.ndarray, b: np.ndarray, c: np.ndarray, lut: int) -> np.ndarray:
    out = np.zeros_like(a)
    for k in range(8):
        term = (a if k & 4 else ~a) & (b if k & 2 else ~b) & (c if k & 1 else ~c)
        if (lut >> k) & 1:
            out |= term
    return out


def _fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    prod = _f(a).astype(np.float64) * _f(b).astype(np.float64)  # exact: 24 + 24 bits
    return _u(rn32_sum(prod, _f(c).astype(np.float64)))


def _f32_op(fn, *xs: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return _u(fn(*(_f(x) for x in xs)).astype(np.float32))


_OPS = {
    "and.b32": lambda a, b: a & b,
    "or.b32": lambda a, b: a | b,
    "shl.b32": lambda a, b: a << b,
    "shr.u32": lambda a, b: a >> b,
    "add.s32": lambda a, b: a + b,  # modulo 2^32, as the hardware wraps
    "max.s32": lambda a, b: np.maximum(a.view(np.int32), b.view(np.int32)).view(U32),
    "mul.rn.f32": lambda a, b: _f32_op(np.multiply, a, b),
    "add.rn.f32": lambda a, b: _f32_op(np.add, a, b),
    "min.f32": lambda a, b: _f32_op(np.fmin, a, b),
    "neg.f32": lambda a: a ^ U32(0x80000000),
    "abs.f32": lambda a: a & U32(0x7FFFFFFF),
    "fma.rn.f32": _fma,
    "cvt.f32.f16": lambda h: _u(h.astype(np.uint16).view(np.float16).astype(np.float32)),
}


def run_ptx(ptx: str, args: list[np.ndarray]) -> np.ndarray:
    """``$0`` of the PTX block ``ptx`` with ``$1``, ``$2``, … bound to ``args`` (uint32 arrays of one shape; pass
    floats as their bits). Raises on an instruction the model does not know, so nothing is skipped silently."""
    shape = args[0].shape
    regs: dict[str, np.ndarray] = {f"${i + 1}": _u(np.asarray(a)) for i, a in enumerate(args)}

    def val(tok: str) -> np.ndarray:
        if tok in regs:
            return regs[tok]
        if tok.startswith("0f"):
            return np.full(shape, int(tok[2:], 16), U32)
        return np.full(shape, int(tok, 0) & 0xFFFFFFFF, U32)

    for raw in ptx.splitlines():
        line = raw.strip().rstrip(";")
        if not line or line in "{}" or line.startswith(".reg"):
            continue
        op, rest = line.split(None, 1)
        if op == "mov.b32" and rest.startswith("{"):  # {lo, hi} = a 32-bit register's two halves
            lo, hi, src = (t.strip() for t in re.split(r"[{},]+", rest) if t.strip())
            regs[lo], regs[hi] = val(src) & U32(0xFFFF), val(src) >> U32(16)
            continue
        if op not in _OPS and op not in ("prmt.b32", "lop3.b32"):
            raise AssertionError(f"the PTX model has no {op!r} (line {raw.strip()!r})")
        dst, *src = (t.strip() for t in rest.split(","))
        if op == "prmt.b32":  # the selector and the LUT are immediates
            regs[dst] = _prmt(val(src[0]), val(src[1]), int(src[2], 0))
        elif op == "lop3.b32":
            regs[dst] = _lop3(val(src[0]), val(src[1]), val(src[2]), int(src[3], 0))
        else:
            regs[dst] = _OPS[op](*(val(s) for s in src))
    return regs["$0"]
