"""The cast kernel as the GPU runs it, checked without a GPU: every specialisation in ``_sm90_cast.CASES`` compiled
for sm_90 by the installed Triton and its ``ptxas``, its SASS scanned for registers read before anything writes
them (``_sass.undefined_reads``). ptxas 12.8 produced such a read in the one-level NVFP4 kernel (an E4M3 unpack
moved above the pack that made its operand), and the bytes were wrong on the H200 while the interpreter, the PTX
model and every PTX-level check agreed with the reference; this is the check that sees it. The scanner itself is
tested first, on listings in ``cuobjdump -sass``'s format, the first one the kernel's own faulty lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("triton")

from _sass import undefined_reads
from _sm90 import run_script
from _sm90_cast import CASES


def _listing(*lines: str) -> str:
    """Instructions as ``cuobjdump -sass`` prints them, at addresses 0x0, 0x10, …"""
    return "\n".join(f"        /*{16 * i:04x}*/                   {t} ;   /* 0x0000000000000000 */"
                     for i, t in enumerate(lines))  # fmt: skip


def test_the_faulty_one_level_lines_are_flagged() -> None:
    """From the one-level NVFP4 kernel ptxas 12.8 compiled wrong (bf16, K = 8192): the unpack of an E4M3 pair reads
    R46 at the top of the kernel; the pack that should have defined its operand comes much later."""
    text = _listing(
        "LDC R1, c[0x0][0x28]",
        "S2R R36, SR_CTAID.Y",
        "F2FP.F16.E4M3.UNPACK_B R46, R46",
        "HSETP2.NEU.AND P0, P1, R46, RZ.H0_H0, PT",
        "HADD2.F32 R45, -RZ, R46.H0_H0",
        "F2FP.SATFINITE.E4M3.F32.PACK_AB_MERGE_C R2, R49, R36, RZ",
    )
    found = undefined_reads(text)
    assert found[0] == "0020 F2FP.F16.E4M3.UNPACK_B R46, R46 [R46]"
    assert "[R49]" in found[-1]  # and the pack's own undefined operand
    assert len(found) == 2  # R46 is defined once the unpack has written it


def test_an_unpack_of_a_loaded_register_is_flagged() -> None:
    """From the column-wise NVFP4 kernels ptxas 12.8 compiled wrong (4096×8192, both directions): the hoisted E4M3
    unpack read R1, which the prologue had loaded with the stack pointer (one-level), or the register an LDG of the
    global amax had written (two-level). An unpack of a pack's result, and other reads of R1 (local memory, the
    don't-care operands ptxas gives it), stay unreported."""
    text = _listing(
        "LDC R1, c[0x0][0x28]",
        "S2R R36, SR_CTAID.Y",
        "F2FP.F16.E4M3.UNPACK_B R70, R1",
        "LDG.E R0, desc[UR4][R2.64]",
        "F2FP.F16.E4M3.UNPACK_B R8, R0",
        "F2FP.SATFINITE.E4M3.F32.PACK_AB_MERGE_C R3, R36, R36, R1",
        "F2FP.F16.E4M3.UNPACK_B R9, R3",
        "STL [R1+0x10], R36",
        "HADD2.F32 R67, -RZ, R70.H1_H1",
    )
    assert [f.split(" [")[-1] for f in undefined_reads(text)] == [
        "R1 from LDC, not a pack]",
        "R2]",  # the load's address (nothing wrote R2)
        "R0 from LDG.E, not a pack]",
    ]


def test_what_counts_as_a_write() -> None:
    clean = _listing(
        "S2R R0, SR_TID.X",
        "LDG.E.128 R4, desc[UR8][R0.64]",  # R4–R7
        "SHFL.BFLY PT, R9, R7, 0x2, 0x1f",  # a predicate first, then the destination
        "IMAD.WIDE R10, R9, 0x4, R4",  # R10–R11
        "@!P0 BRA 0x90",
        "CALL.REL.NOINC 0xa0",  # writes R12 (below)
        "FADD R13, R12, R11",
        "STG.E desc[UR8][R10.64], R13",  # a store: all operands are sources
        "EXIT",
        "BRA 0x90",
        "MUFU.RCP R12, R6",  # the subroutine
        "RET.REL.NODEC R2 0x0",
    )
    assert undefined_reads(clean) == []
    assert undefined_reads(_listing("S2R R0, SR_TID.X", "FADD R1, R0, R2")) == ["0010 FADD R1, R0, R2 [R2]"]
    assert undefined_reads(_listing("LDG.E.64 R4, desc[UR8][R0.64]")) == ["0000 LDG.E.64 R4, desc[UR8][R0.64] [R0]"]
    # the subroutine's writes count only from the call on
    early = _listing("FADD R13, R12, RZ", "CALL.REL.NOINC 0x30", "EXIT", "MUFU.RCP R12, R13", "RET.REL.NODEC R2 0x0")
    assert [f.split()[-1] for f in undefined_reads(early)] == ["[R12]"]


def test_predicate_bits_kept_in_a_register() -> None:
    """ptxas spills predicates into a register bit by bit: clear a bit, set it under a predicate, test it. The
    other bits are never defined and never read; a test of a bit nothing cleared or set is a fault."""
    bits = [
        "LOP3.LUT R83, R83, 0xfffff7ff, RZ, 0xc0, !PT",  # bit 11 := 0
        "@P1 LOP3.LUT R83, R83, 0x800, RZ, 0xfc, !PT",  # bit 11 := 1 where P1
        "LOP3.LUT P2, RZ, R83.reuse, 0x800, RZ, 0xc0, !PT",  # test bit 11
    ]
    assert undefined_reads(_listing(*bits)) == []
    assert undefined_reads(_listing(*bits, "LOP3.LUT P3, RZ, R83, 0x400, RZ, 0xc0, !PT")) == [
        "0030 LOP3.LUT P3, RZ, R83, 0x400, RZ, 0xc0, !PT [R83]"
    ]
    assert [f.split()[-1] for f in undefined_reads(_listing(*bits, "IADD3 R1, R83, 0x1, RZ"))] == ["[R83]"]
    # a set under a predicate does not define a bit nothing cleared
    assert len(undefined_reads(_listing(bits[1], bits[2]))) == 1


def test_cast_kernels_read_no_undefined_register(tmp_path: Path) -> None:
    """Every case of ``_sm90_cast.CASES`` through the installed Triton's sm_90 compiler (no GPU needed): a kernel
    that reads a register nothing wrote has no defined result, whatever the interpreter says. A subprocess, because
    ``TRITON_INTERPRET`` replaces the compiler in this one."""
    pytest.importorskip("triton.backends.nvidia")
    # 66 compiles: ~70 s on two CPU cores
    results = run_script("_sm90_cast.py", tmp_path, timeout=1200)
    assert [r["case"] for r in results] == [c[0] for c in CASES]  # every case compiled, none skipped
    for r in results:
        assert "error" not in r, r
        assert r["instructions"] > 300, r  # a whole kernel, not an empty listing
        assert r["undefined"] == [], r
