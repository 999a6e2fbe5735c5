"""FP8 scaled GEMM in Triton: per-tensor, rowwise, and DeepSeek 1×128 · 128×128 blockwise.

``out[M, N] = (A[M, K] · sa) @ (B[K, N] · sb)`` with FP8 codes and FP32 accumulation. The blockwise kernel promotes
per 128-wide K block: each block's product comes out of ``tl.dot`` in FP32 and is scaled by ``sa[m, kb] ·
sb[kb, nb]`` before it joins the accumulator. On Hopper the FP8 tensor-core accumulator keeps ~14 mantissa bits
over a long K; promoting every 128 elements bounds that loss (what DeepGEMM does), and it is also the only place the
per-block scales can be applied. Per-tensor and rowwise scales factor out of the sum and are applied once at the end.

The operands are addressed through strides, so ``B`` may be the transposed view of an ``(N, K)`` weight (the
K-major layout the tensor cores want) or a row-major ``(K, N)`` array. K, M and N need not be multiples of anything:
tails are masked, and a masked K tail reads zeros, which add nothing.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import triton
import triton.language as tl

from breccia._errors import RecipeError, ShapeError

from ._gluon import gluon_module

__all__ = ["MODES", "scaled_gemm"]

MODES = {"tensor": 0, "row": 1, "block": 2}
_IMPLS = ("auto", "ws", "tma", "ptr")


_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"  # the CPU interpreter: small tiles, no tuning sweep


# Large tiles for prefill-sized M; narrow ones for decode-sized M (≤ 128), where a 128-wide N tile leaves most SMs
# idle (M = 64, N = 4096: 32 programs on 132 SMs) and the weight, read once, is the whole cost: narrow N tiles put
# a program on every SM, and deeper pipelines keep more of the weight in flight. A long K also splits over 2 or 3
# programs per tile (SPLIT, see the kernel): on an H200, 64×4096×7168 went from 20.0 to 14.5-15.4 µs, while
# 128×7168×2048 (16 K blocks, 224 tiles already) got slower split
# (benchmarks/results/h200_gemm_small_m_split_sweep.log). The pipelined blockwise loop (PIPE 1) never won a
# small-M sweep and is timed for large M only.
_LARGE = ((128, 128, 4, 4), (128, 128, 8, 3), (128, 256, 8, 3), (64, 128, 4, 4))
_SMALL_M = ((64, 32, 4, 4), (64, 32, 4, 6), (64, 64, 4, 4), (64, 64, 4, 5), (64, 128, 4, 4))


def _configs() -> list[triton.Config]:
    out = []
    for bm, bn, warps, stages in _LARGE:
        for pipe in (0, 1):
            cfg = {"BM": bm, "BN": bn, "GROUP_M": 8, "PIPE": pipe, "SPLIT": 1}
            out.append(triton.Config(cfg, num_warps=warps, num_stages=stages))
    for bm, bn, warps, stages in _SMALL_M:
        for split in (1, 2, 3):
            cfg = {"BM": bm, "BN": bn, "GROUP_M": 8, "PIPE": 0, "SPLIT": split}
            out.append(triton.Config(cfg, num_warps=warps, num_stages=stages))
    return out


def _prune(configs: list[triton.Config], named_args: dict[str, Any], **kwargs: Any) -> list[triton.Config]:
    """Time only the tiles meant for this M: the narrow set for M ≤ 128, the large set above; a K split only where
    each half keeps at least two K blocks."""
    small = named_args["M_BUCKET"] <= 128
    nk = -(-named_args["K"] // 128)
    keep = {(bm, bn, w, st) for bm, bn, w, st in (_SMALL_M if small else _LARGE)}
    return [
        c
        for c in configs
        if (c.kwargs["BM"], c.kwargs["BN"], c.num_warps, c.num_stages) in keep
        and (small or c.kwargs["SPLIT"] == 1)
        and nk >= 2 * c.kwargs["SPLIT"]
    ]


@triton.jit
def _split_sum(acc, ws_ptr, cnt_ptr, offs_m, offs_n, out_ok, M, N, SPLIT: tl.constexpr):
    """Split-K fix-up without a second launch: every program of a tile writes its FP32 partial to its own slot of
    ``ws`` (SPLIT, M, N), then counts itself in on the tile's counter (a CTA barrier, then one acquire-release atomic:
    the partials are visible before the count is). The last to arrive adds the slots in slot order — the same sum
    whichever program finished first, so the output is deterministic — and resets the counter for the next call.
    Returns ``(sum, out_ok & last)``: the mask leaves the other programs' epilogue out."""
    slot = ws_ptr + offs_m[:, None].to(tl.int64) * N + offs_n[None, :]
    tl.store(slot + tl.program_id(1).to(tl.int64) * M * N, acc, mask=out_ok)
    tl.debug_barrier()
    arrived = tl.atomic_add(cnt_ptr, 1, sem="acq_rel", scope="gpu")
    # (a scalar condition broadcast into a tensor mask: the interpreter rejects `tensor & scalar_bool`)
    mine = out_ok & (tl.zeros(out_ok.shape, tl.int32) + arrived == SPLIT - 1)
    total = tl.load(slot, mask=mine, other=0.0, cache_modifier=".cg")
    for s in tl.static_range(1, SPLIT):
        total += tl.load(slot + s * M * N, mask=mine, other=0.0, cache_modifier=".cg")
    tl.store(cnt_ptr, 0, mask=arrived == SPLIT - 1)
    return total, mine


@triton.jit
def _block_scales(sa_ptr, sb_ptr, offs_m, offs_n, m_ok, n_ok, kb, nk, s_sam, s_sak, s_sbk, s_sbn):
    """K block ``kb``'s activation and weight scales, zero where ``kb`` is past the run (``nk``): the loop loads
    one block ahead, and a split's last run can be empty. (``0 * offs`` makes the bound a tensor, which the
    interpreter needs where ``kb`` and ``nk`` are ints.)"""
    sa = tl.load(sa_ptr + offs_m * s_sam + kb * s_sak, mask=m_ok & (0 * offs_m + kb < nk), other=0.0)
    sb = tl.load(sb_ptr + kb * s_sbk + (offs_n // 128) * s_sbn, mask=n_ok & (0 * offs_n + kb < nk), other=0.0)
    return sa, sb


@triton.jit
def _gemm_kernel(
    a_ptr, b_ptr, c_ptr, sa_ptr, sb_ptr, ws_ptr, cnt_ptr,
    M, N, K, M_BUCKET,
    s_am, s_ak, s_bk, s_bn, s_cm, s_cn,
    s_sam, s_sak, s_sbk, s_sbn,
    MODE: tl.constexpr, BK: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, GROUP_M: tl.constexpr,
    PIPE: tl.constexpr, SPLIT: tl.constexpr,
):  # fmt: skip
    tl.static_assert(SPLIT == 1 or not (MODE == 2 and PIPE == 1), "the pipelined blockwise loop does not split K")
    pid = tl.program_id(0)
    grid_m = tl.cdiv(M, BM)
    grid_n = tl.cdiv(N, BN)
    group = GROUP_M * grid_n  # grouped ordering: consecutive programs share A rows in L2
    first_m = (pid // group) * GROUP_M
    rows = tl.minimum(grid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % group) % rows
    pid_n = (pid % group) // rows
    offs_m = pid_m * BM + tl.arange(0, BM)
    offs_n = pid_n * BN + tl.arange(0, BN)
    offs_k = tl.arange(0, BK)
    m_ok = offs_m < M
    n_ok = offs_n < N
    a_ptrs = a_ptr + offs_m[:, None].to(tl.int64) * s_am + offs_k[None, :] * s_ak
    b_ptrs = b_ptr + offs_k[:, None] * s_bk + offs_n[None, :].to(tl.int64) * s_bn
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    nk = tl.cdiv(K, BK)
    if MODE == 2 and PIPE == 1:
        # Software-pipelined promotion: block kb's product is scaled into acc while block kb+1's MMA runs, so
        # the tensor cores never wait for the FP32 scale-and-add (the wait sits before the *next* use).
        a = tl.load(a_ptrs, mask=m_ok[:, None] & (offs_k < K)[None, :], other=0.0)
        b = tl.load(b_ptrs, mask=(offs_k < K)[:, None] & n_ok[None, :], other=0.0)
        prev = tl.dot(a, b, out_dtype=tl.float32)
        for kb in range(1, nk):
            a_ptrs += BK * s_ak
            b_ptrs += BK * s_bk
            k_ok = offs_k < K - kb * BK
            a = tl.load(a_ptrs, mask=m_ok[:, None] & k_ok[None, :], other=0.0)
            b = tl.load(b_ptrs, mask=k_ok[:, None] & n_ok[None, :], other=0.0)
            cur = tl.dot(a, b, out_dtype=tl.float32)
            sa, sb = _block_scales(sa_ptr, sb_ptr, offs_m, offs_n, m_ok, n_ok, kb - 1, nk, s_sam, s_sak, s_sbk, s_sbn)
            acc += prev * (sa[:, None] * sb[None, :])
            prev = cur
        sa, sb = _block_scales(sa_ptr, sb_ptr, offs_m, offs_n, m_ok, n_ok, nk - 1, nk, s_sam, s_sak, s_sbk, s_sbn)
        acc += prev * (sa[:, None] * sb[None, :])
    else:
        kb0 = 0
        if SPLIT > 1:  # program (tile, s) takes the s-th run of ceil(nk / SPLIT) K blocks
            per = tl.cdiv(nk, SPLIT)
            kb0 = tl.program_id(1) * per
            nk = tl.minimum(nk, kb0 + per)
            a_ptrs += kb0 * BK * s_ak
            b_ptrs += kb0 * BK * s_bk
        # Block mode loads each K block's scales one block ahead: in the M-major layout cuBLAS and DeepGEMM use, a
        # block's BM activation scales share no cache line with the next block's (nor do the weight scales of a
        # (K/128, N/128) grid), so a load issued in its own iteration waits out an L2 round trip every time
        # (64×4096×7168 on an H100: 18.3 µs, against 16.0 with row-major scales, whose lines hold a row's scales
        # for 32 blocks and stay in L1).
        if MODE == 2:
            sa_next, sb_next = _block_scales(
                sa_ptr, sb_ptr, offs_m, offs_n, m_ok, n_ok, kb0, nk, s_sam, s_sak, s_sbk, s_sbn
            )
        for kb in range(kb0, nk):
            k_ok = offs_k < K - kb * BK
            a = tl.load(a_ptrs, mask=m_ok[:, None] & k_ok[None, :], other=0.0)
            b = tl.load(b_ptrs, mask=k_ok[:, None] & n_ok[None, :], other=0.0)
            if MODE == 2:
                sa, sb = sa_next, sb_next
                sa_next, sb_next = _block_scales(
                    sa_ptr, sb_ptr, offs_m, offs_n, m_ok, n_ok, kb + 1, nk, s_sam, s_sak, s_sbk, s_sbn
                )
                acc += tl.dot(a, b, out_dtype=tl.float32) * (sa[:, None] * sb[None, :])
            else:
                # promote to FP32 every BK elements: Hopper's FP8 MMA otherwise accumulates ~14-bit sums over all K
                acc = tl.dot(a, b, acc, out_dtype=tl.float32, max_num_imprecise_acc=BK)
            a_ptrs += BK * s_ak
            b_ptrs += BK * s_bk
    out_ok = m_ok[:, None] & n_ok[None, :]
    if SPLIT > 1:
        acc, out_ok = _split_sum(acc, ws_ptr, cnt_ptr + pid, offs_m, offs_n, out_ok, M, N, SPLIT)
    if MODE == 0:
        acc = acc * (tl.load(sa_ptr) * tl.load(sb_ptr))
    elif MODE == 1:
        sa = tl.load(sa_ptr + offs_m * s_sam, mask=m_ok, other=0.0)
        sb = tl.load(sb_ptr + offs_n * s_sbn, mask=n_ok, other=0.0)
        acc = acc * (sa[:, None] * sb[None, :])
    c_ptrs = c_ptr + offs_m[:, None].to(tl.int64) * s_cm + offs_n[None, :] * s_cn
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=out_ok)


_tuned = triton.autotune(
    configs=_configs(), key=["M_BUCKET", "N", "K", "MODE"], prune_configs_by={"early_config_prune": _prune}
)(_gemm_kernel)


_COUNTERS: dict[tuple[int, int], torch.Tensor] = {}


def _split_buffers(device: torch.device, split: int, m: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The split-K slots (fresh: every slot is written before it is read) and the per-tile arrival counters, zero
    once and reset by the kernel itself, kept per device and stream (two streams must not share counters)."""
    ws = torch.empty((split, m, n), dtype=torch.float32, device=device)
    tiles = triton.cdiv(m, 16) * triton.cdiv(n, 16)  # the most tiles any BM, BN ≥ 16 makes
    stream = torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else 0
    key = (device.index or 0, stream) if device.type == "cuda" else (-1, 0)
    cnt = _COUNTERS.get(key)
    if cnt is None or cnt.numel() < tiles:
        cnt = _COUNTERS[key] = torch.zeros(max(tiles, 4096), dtype=torch.int32, device=device)
    return ws, cnt


def _ws_module() -> Any:
    """:mod:`._gemm_ws`, or None where this Triton has no Gluon Hopper API of 3.6's shape (breccia-triton accepts
    Triton 3.2 and newer; the other kernels do not need Gluon; :mod:`._gluon` says which versions)."""
    return gluon_module("_gemm_ws")


def ws_available(device: torch.device) -> bool:
    """Whether the warp-specialised GEMM can run on ``device`` (an sm_90 GPU, Triton 3.6 or 3.7: :mod:`._gluon`)."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device) == (9, 0) and _ws_module() is not None


def _bucket(m: int) -> int:
    """Tune once per power-of-two M (decode-sized M differs from prefill-sized M), not per exact M."""
    return 1 << max(0, (m - 1).bit_length())


def scaled_gemm(
    a: torch.Tensor,
    sa: torch.Tensor,
    b: torch.Tensor,
    sb: torch.Tensor,
    mode: str,
    out_dtype: torch.dtype,
    *,
    config: dict[str, int] | None = None,
    impl: str = "auto",
) -> torch.Tensor:
    """``(a · sa) @ (b · sb)`` for FP8 ``a`` (M, K) and ``b`` (K, N); returns (M, N) in ``out_dtype``.

    ``mode="tensor"``: ``sa``, ``sb`` fp32 scalars. ``"row"``: ``sa`` (M,) / (M, 1), ``sb`` (N,) / (1, N).
    ``"block"``: ``sa`` (M, ceil(K/128)) for 1×128 activation blocks, ``sb`` (ceil(K/128), ceil(N/128)) for 128×128
    weight blocks (breccia's compact grids, any strides). ``config`` pins the tile (``BM``, ``BN``, ``GROUP_M``,
    ``PIPE``, optionally ``SPLIT`` programs per tile along K, ``num_warps``, ``num_stages``) instead of autotuning;
    the CPU interpreter always uses a small pinned tile.

    ``impl``: ``"ws"`` runs the warp-specialised Gluon kernel (:mod:`._gemm_ws`, sm_90 only), ``"tma"`` the
    persistent TMA Triton kernel (:mod:`._gemm_tma`, Hopper and newer, where the operands' layouts allow
    descriptors), ``"ptr"`` the pointer-addressed kernel here. ``"auto"`` takes the first that applies: the
    warp-specialised one for M > 128 on sm_90, the TMA one for M > 128 elsewhere, the pointer one for decode-sized
    M (narrow tiles, split-K) and for layouts descriptors cannot address.
    """
    if mode not in MODES:
        raise RecipeError(f"scaled_gemm: mode={mode!r}; expected one of {', '.join(map(repr, MODES))}")
    if impl not in _IMPLS:
        raise RecipeError(f"scaled_gemm: impl={impl!r}; expected one of {', '.join(map(repr, _IMPLS))}")
    m, k = a.shape
    k2, n = b.shape
    if k != k2:
        raise ShapeError(
            f"scaled_gemm: a is {tuple(a.shape)} and b is {tuple(b.shape)}; K (a's last axis, b's first) must agree"
        )
    c = torch.empty((m, n), dtype=out_dtype, device=a.device)
    if m == 0 or n == 0:
        return c
    sa = sa.float()
    sb = sb.float()
    from . import _gemm_tma

    sa2, sb2, strides = _gemm_tma.scale_operands(sa, sb, MODES[mode], m, n)

    def grid(meta: dict[str, Any]) -> tuple[int, int]:
        return (triton.cdiv(m, meta["BM"]) * triton.cdiv(n, meta["BN"]), meta["SPLIT"])

    if impl == "ws":
        gws = _ws_module()
        if gws is None or not gws.applies(a, b, out_dtype):
            raise ShapeError(
                f"scaled_gemm(impl='ws'): needs Triton 3.6 or 3.7 (Gluon), an sm_90 GPU and TMA-addressable operands; "
                f"a {tuple(a.shape)} / b {tuple(b.shape)} with strides {a.stride()} / {b.stride()}; use impl='auto'"
            )
        gws.gemm_ws(a, sa2, b, sb2, MODES[mode], c)
        return c
    if impl == "auto" and config is None and (m > 128 or (m > 64 and mode == "block")):
        gws = _ws_module()
        if gws is not None and gws.applies(a, b, out_dtype):  # sm_90: the warp-specialised kernel
            gws.gemm_ws(a, sa2, b, sb2, MODES[mode], c, None if m > 128 else gws.SMALL_M)
            return c
    use_tma = impl == "tma" or (impl == "auto" and config is None)
    tma_cfg = _gemm_tma.pick_config(m, n, k) if use_tma else None
    if impl == "tma" and tma_cfg is None:
        tma_cfg = _gemm_tma.CONFIGS["64x128 w4 s4"]
    if tma_cfg is not None and _gemm_tma.applies(a, b, out_dtype):
        _gemm_tma.gemm_tma(a, sa2, b, sb2, MODES[mode], c, tma_cfg)
        return c
    if impl == "tma":
        raise ShapeError(
            f"scaled_gemm(impl='tma'): a {tuple(a.shape)} / b {tuple(b.shape)} with strides {a.stride()} / "
            f"{b.stride()} cannot be TMA descriptors (CUDA sm_90+, K-contiguous a, 16-byte aligned rows); "
            "use impl='auto'"
        )
    if config is None and _INTERPRET:
        config = {"BM": 16, "BN": 32, "GROUP_M": 2, "PIPE": 1}
    if config is not None:
        config = {"SPLIT": 1, **config}
        if config["SPLIT"] not in (1, 2, 3, 4) or (config["SPLIT"] > 1 and config.get("PIPE", 0)):
            raise RecipeError(f"scaled_gemm: config={config!r}; SPLIT must be 1-4, and 1 with PIPE=1")
    split = config["SPLIT"] if config is not None else (3 if _bucket(m) <= 128 else 1)
    ws, cnt = (c, c) if split == 1 else _split_buffers(a.device, split, m, n)
    args = (a, b, c, sa2, sb2, ws, cnt, m, n, k, _bucket(m),
            a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0), c.stride(1), *strides)  # fmt: skip
    if config is None:
        _tuned[grid](*args, MODE=MODES[mode], BK=128)
    else:
        _gemm_kernel[grid](*args, MODE=MODES[mode], BK=128, **config)
    return c
