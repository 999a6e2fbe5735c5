"""The tensor amax of per-tensor recipes (FP8 current scaling, NVFP4's global scale) as one Triton pass.

Per-tensor current scaling needs two passes over the input: the tensor's amax, then the encode. The first was
``torch.aminmax`` plus three small torch ops: ~54 µs on an 8192² bf16 input on an H200, where reading 128 MB at
copy bandwidth takes ~31 µs. Here each program reduces a contiguous chunk to the largest ``|x|`` *bit pattern* (for
non-negative floats the integer order is the float order; NaN patterns sort above +Inf, so a NaN reaches the
encode kernel's non-finite flag) and merges it with one ``atomic_max`` into an int32 that starts at 0. The result is
viewed as the fp32 amax without a copy. 16-bit inputs are read as one int32 word per element pair.

NVFP4's two-level recipes also need the global scale ``where(amax == 0, 1, amax / 2688)``. The encode kernel
computes it from this amax in every program anyway, so program (0, 0) of that kernel writes it
(``_kernel.quant_rows_kernel``): no torch launches on the host (five one-element ones, ~60 µs of host time per cast
on an H100 machine) and no extra work in this pass (a last-program counter here cost 3.2 µs of GPU time at 8192²
on an H100, benchmarks/NOTES.md).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._cast import _IN_KIND
from ._codes import _mag16_bits

BLOCK = 16384  # elements (or element pairs) per program: 32–64 KB read each, a few thousand atomics per tensor
NUM_WARPS = 8


@triton.jit
def amax_kernel(x_ptr, out_ptr, N, BLOCK: tl.constexpr, IN_KIND: tl.constexpr, PAIRS: tl.constexpr):
    """``out = max(out, max |x| as fp32 bits)`` over this program's ``BLOCK`` items of ``N`` (IN_KIND 0 fp32 as
    int32 bits, 1 fp16 / 2 bf16 as int16 bits or, with ``PAIRS``, int32 words holding two of them)."""
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
    tl.atomic_max(out_ptr, a)


def tensor_amax(x2: torch.Tensor) -> torch.Tensor:
    """``max |x|`` of a contiguous fp32/fp16/bf16 tensor as a float32 tensor of shape (1,); NaN if any element is
    NaN (a NaN's bit pattern wins the integer max), +Inf if any is infinite and none NaN, 0 for an empty tensor."""
    out = torch.zeros(1, dtype=torch.int32, device=x2.device)
    flat = x2.reshape(-1)
    kind = _IN_KIND[x2.dtype]
    pairs = kind != 0 and flat.numel() % 2 == 0 and flat.data_ptr() % 4 == 0
    xin = flat.view(torch.int32) if kind == 0 or pairs else flat.view(torch.int16)
    n = xin.numel()
    if n:
        amax_kernel[(triton.cdiv(n, BLOCK),)](
            xin, out, n, BLOCK=BLOCK, IN_KIND=kind, PAIRS=pairs, num_warps=NUM_WARPS if x2.is_cuda else 1
        )
    return out.view(torch.float32)
