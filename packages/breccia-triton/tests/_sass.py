"""A def-use check over a SASS listing (``cuobjdump -sass``): registers read before any instruction writes them.

Why: ptxas 12.8 (Triton 3.6's) compiled the one-level NVFP4 cast with the E4M3 → f16 unpack of a block scale
moved above the ``F2FP…PACK_AB_MERGE_C`` that makes its operand (bf16, ``K ≥ 8192``): the unpack read a register
nothing had written, and half the kernel's divisors were whatever it held. The bytes were wrong on the H200 while
every PTX-level check and the interpreter agreed with the reference. A kernel whose straight-line body reads a
register before writing it has no defined result, so the check needs no GPU: compile for sm_90, list the SASS,
scan it. The scan is linear (the cast kernels have no loops), with ``CALL.REL`` counted as writing every register
its subroutine writes (``div.rn``'s slow path returns its quotient that way), and it reads only named registers
(``R4`` of a 64-bit operand ``R4.64``, not ``R5``) so that what it reports is a read of something never written.
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["opcodes", "undefined_reads"]

_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Za-z0-9_.]*)\s*([^;]*);")
# opcodes whose operands are all sources (stores, branches, barriers) or whose first operands are predicates
_NO_REG_DEST = (
    "ST", "RED", "ATOM", "BRA", "EXIT", "ISETP", "FSETP", "HSETP", "DSETP", "BAR", "NOP", "WARPSYNC", "BSYNC",
    "BSSY", "RET", "CALL", "DEPBAR", "MEMBAR", "FCHK", "PLOP3", "R2UR", "R2P", "YIELD", "ERRBAR", "CCTL", "FENCE",
)  # fmt: skip
_REG = re.compile(r"\bR(\d+)\b")
# the writers of a register that an E4M3 unpack must not read in a cast kernel (see undefined_reads)
_NOT_PACKED = ("LDG", "LDC", "S2R", "ULDC")


def _width(op: str) -> int:
    """Registers an instruction's destination spans."""
    if ".128" in op:
        return 4
    if ".64" in op or op.startswith(("IMAD.WIDE", "DADD", "DMUL", "DFMA", "F2F.F64", "I2F.F64")):
        return 2
    return 1


def _parse(listing: str) -> list[tuple[int, bool, str, list[str]]]:
    """``(address, predicated, opcode, operands)`` per instruction."""
    return [
        (int(m.group(1), 16), m.group(2) is not None, m.group(3),
         [a.strip().replace(".reuse", "") for a in m.group(4).split(",") if a.strip()])
        for m in _LINE.finditer(listing)
    ]  # fmt: skip


def opcodes(listing: str) -> Counter[str]:
    """How many instructions of each opcode (its first dot-separated part: ``QGMMA``, ``LDL``, …) the listing has."""
    return Counter(op.split(".")[0] for _, _, op, _ in _parse(listing))


def _dest(op: str, args: list[str]) -> tuple[str | None, list[str]]:
    """The destination register (None where there is none) and the source operands."""
    if op.startswith(_NO_REG_DEST) or not args:
        return None, args
    if op.startswith("SHFL"):  # SHFL.BFLY PT, Rd, Ra, …: a predicate first
        return args[1], args[:1] + args[2:]
    return (args[0], args[1:]) if re.fullmatch(r"R\d+", args[0]) else (None, args)


def _regs(d: str, op: str) -> list[str]:
    return [f"R{int(d[1:]) + k}" for k in range(_width(op))]


_FULL = 0xFFFFFFFF


def _imm(a: str) -> int | None:
    return int(a, 16) & _FULL if re.fullmatch(r"0x[0-9a-f]+", a) else None


def _bit_op(pred: bool, op: str, args: list[str], defined: dict[str, int]) -> tuple[bool, str | None]:
    """The predicate-in-a-register forms of ``LOP3.LUT`` (see :func:`undefined_reads`): ``(handled, the register
    it reads undefined bits of, or None)``, with ``defined`` updated."""
    if op != "LOP3.LUT" or len(args) < 6:
        return False, None
    if re.fullmatch(r"!?P[T\d]", args[0]) and args[1] == "RZ" and args[4] == "RZ" and args[5] == "0xc0":
        m = _imm(args[3])  # Pn = (Rx & bit) != 0
        if m is None or not re.fullmatch(r"R\d+", args[2]):
            return False, None
        return True, args[2] if m & ~defined.get(args[2], 0) else None
    if re.fullmatch(r"R\d+", args[0]) and args[1] == args[0] and args[3] == "RZ" and args[4] in ("0xc0", "0xfc"):
        m = _imm(args[2])
        if m is None:
            return False, None
        known = defined.get(args[0], 0)
        if args[4] == "0xc0":  # Rx &= mask: the bits outside the mask become 0 (where it runs)
            defined[args[0]] = known if pred else known | (~m & _FULL)
        else:  # Rx |= bits: the bits become 1 (where it runs)
            defined[args[0]] = known if pred else known | m
        return True, None
    return False, None


def undefined_reads(listing: str) -> list[str]:
    """``"ADDR OPCODE operands [Rn]"`` for each read, in the kernel's body (before its first subroutine), of a
    register (or of bits of one) that no earlier instruction has written; empty for a well-formed straight-line
    kernel.

    Bits are tracked where ptxas keeps predicates in a register: ``LOP3.LUT Rx, Rx, mask, RZ, 0xc0`` clears the
    bits outside ``mask``, ``… 0xfc`` sets the bits of ``mask`` (both define those bits, unless predicated), and
    ``LOP3.LUT Pn, RZ, Rx, bit, RZ, 0xc0`` reads only ``bit``; any other read needs the whole register. A
    predicated write of a whole register counts as a write (the check reports reads of what nothing wrote).

    An E4M3 unpack (``F2FP…UNPACK``) whose operand a global, constant or special-register load wrote last is
    reported too: a cast kernel unpacks only the block scales it has just packed. ptxas 12.8 hoisted such an unpack
    above its pack in the column-wise NVFP4 kernels (branch ``fourteenth/columnwise-cast``), where it read R1 (the
    stack pointer, which the prologue's ``LDC`` loads, so the def-use scan saw it as written) or the global amax an
    ``LDG`` had loaded, and the block divisors it fed were wrong on the H200. (Other reads of R1 as a value occur in
    correct code: ptxas assigns it to PTX registers Triton leaves undefined in don't-care bytes.)"""
    ins = _parse(listing)
    calls = sorted({int(a[0], 16) for _, _, op, a in ins if op.startswith("CALL") and a and a[0].startswith("0x")})
    body_end = calls[0] if calls else (ins[-1][0] + 1 if ins else 0)
    subs: dict[int, set[str]] = {}
    for t, nxt in zip(calls, [*calls[1:], None]):
        sub = [(op, args) for a, _, op, args in ins if a >= t and (nxt is None or a < nxt)]
        subs[t] = {r for op, args in sub if (d := _dest(op, args)[0]) is not None for r in _regs(d, op)}
    defined: dict[str, int] = {"RZ": _FULL}
    found: list[str] = []
    writer: dict[str, str] = {}  # the opcode that last wrote each register
    for addr, pred, op, args in ins:
        if addr >= body_end:
            break
        handled, bad = _bit_op(pred, op, args, defined)
        if bad is not None:
            found.append(f"{addr:04x} {op} {', '.join(args)} [{bad}]")
        if handled:
            continue
        d, srcs = _dest(op, args)
        for a in srcs:
            for r in _REG.findall(a):
                if defined.get(f"R{r}", 0) != _FULL:
                    found.append(f"{addr:04x} {op} {', '.join(args)} [R{r}]")
        if "UNPACK" in op and srcs and writer.get(srcs[0], "").startswith(_NOT_PACKED):
            found.append(f"{addr:04x} {op} {', '.join(args)} [{srcs[0]} from {writer[srcs[0]]}, not a pack]")
        if op.startswith("CALL") and args and args[0].startswith("0x"):
            defined.update(dict.fromkeys(subs.get(int(args[0], 16), set()), _FULL))
        if d is not None:
            defined.update(dict.fromkeys(_regs(d, op), _FULL))
            writer.update(dict.fromkeys(_regs(d, op), op))
    return found
