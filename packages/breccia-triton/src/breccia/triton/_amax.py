"""The tensor amax of per-tensor recipes (FP8 current scaling, NVFP4's global scale) as one Triton pass.

Per-tensor current scaling needs two passes over the input: the tensor's amax, then the encode. The first was
``torch.aminmax`` plus three small torch ops: ~54 µs on an 8192² bf16 input on an H200, where reading 128 MB at
copy bandwidth takes ~31 µs. Here each program reduces a contiguous chunk to the largest ``|x|`` *bit pattern* (for
non-negative floats the integer order is the float order; NaN patterns sort above +Inf, so a NaN reaches the
encode kernel's non-finite flag) and merges it with one ``atomic_max`` into an int32 that starts at 0. The result is
viewed as the fp32 amax without a copy. 16-bit inputs are read as one int32 word per element pair.

NVFP4's two-level recipes also need the global scale ``where(amax == 0, 1, amax / 2688)``. As torch ops on the host
that was five launches of one element each, ~60 µs of host time per cast on an H100 machine (a quarter of a whole
``breccia.cast`` call); here the last program to finish writes it (:func:`amax_and_global_scale`).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._cast import _IN_KIND
from ._codes import _mag16_bits, _nv_global_scale

BLOCK = 16384  # elements (or element pairs) per program: 32–64 KB read each, a few thousand atomics per tensor
NUM_WARPS = 8


@triton.jit
def amax_kernel(
    x_ptr, out_ptr, gs_ptr, N, BLOCK: tl.constexpr, IN_KIND: tl.constexpr, PAIRS: tl.constexpr, GLOBAL: tl.constexpr
):  # fmt: skip
    """``out[0] = max(out[0], max |x| as fp32 bits)`` over this program's ``BLOCK`` items of ``N`` (IN_KIND 0 fp32
    as int32 bits, 1 fp16 / 2 bf16 as int16 bits or, with ``PAIRS``, int32 words holding two of them). With
    ``GLOBAL``, each program then counts itself in on ``out[1]`` (acquire-release, so every program's max is in
    ``out[0]`` before its count); the last one reads the complete amax and writes NVFP4's global scale to
    ``gs_ptr``, rounded as torch's division rounds (``div_rn``)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    w = tl.load(x_ptr + offs, mask=offs < N, other=0)
    if IN_KIND == 0:
        a = tl.max(w & 0x7FFFFFFF, axis=0)
    else:
        if PAIRS:
            a = tl.maximum(tl.max(w & 0x7FFF, axis=0), tl.max((w >> 16) & 0x7FFF, axis=0))
        else:
            a = tl.max(w.to(tl.int32) & 0x7FFF, axis=0)
        a = _mag16_bits(a, IN_KIND)  # fp16/bf16 magnitude bits → the same value's fp32 bits (exact)
    tl.atomic_max(out_ptr, a, sem="acq_rel", scope="gpu")
    if GLOBAL:
        last = tl.atomic_add(out_ptr + 1, 1, sem="acq_rel", scope="gpu") == tl.num_programs(0) - 1
        ga = tl.atomic_max(out_ptr, 0, mask=last, sem="acq_rel", scope="gpu").to(tl.float32, bitcast=True)
        gs = _nv_global_scale(tl.zeros([1], tl.float32) + ga)  # a one-element block: the interpreter's masks
        tl.store(gs_ptr + tl.arange(0, 1), gs, mask=(tl.zeros([1], tl.int32) + last.to(tl.int32)) == 1)


def _launch(x2: torch.Tensor, gs: torch.Tensor | None) -> torch.Tensor:
    """The amax pass over ``x2`` (writing the global scale into ``gs`` when given); the amax as float32 (1,)."""
    out = torch.zeros(2, dtype=torch.int32, device=x2.device)  # the amax bits, then the programs' counter
    flat = x2.reshape(-1)
    kind = _IN_KIND[x2.dtype]
    pairs = kind != 0 and flat.numel() % 2 == 0 and flat.data_ptr() % 4 == 0
    xin = flat.view(torch.int32) if kind == 0 or pairs else flat.view(torch.int16)
    n = xin.numel()
    if n:
        amax_kernel[(triton.cdiv(n, BLOCK),)](
            xin, out, out if gs is None else gs, n, BLOCK=BLOCK, IN_KIND=kind, PAIRS=pairs, GLOBAL=gs is not None,
            num_warps=NUM_WARPS if x2.is_cuda else 1,
        )  # fmt: skip
    elif gs is not None:
        gs.fill_(1.0)  # the amax of nothing is 0
    return out[:1].view(torch.float32)


def tensor_amax(x2: torch.Tensor) -> torch.Tensor:
    """``max |x|`` of a contiguous fp32/fp16/bf16 tensor as a float32 tensor of shape (1,); NaN if any element is
    NaN (a NaN's bit pattern wins the integer max), +Inf if any is infinite and none NaN, 0 for an empty tensor."""
    return _launch(x2, None)


def amax_and_global_scale(x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`tensor_amax` and, from the same pass, NVFP4's global scale as a float32 tensor of shape ():
    ``where(amax == 0, 1, amax / 2688)``, bit-identical to breccia-torch's (a true division, not a reciprocal)."""
    gs = torch.empty((), dtype=torch.float32, device=x2.device)
    return _launch(x2, gs), gs
