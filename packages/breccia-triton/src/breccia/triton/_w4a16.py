"""Weight-only 4-bit matmul (W4A16) for decode: bf16/fp16 activations times an INT4 or NVFP4 ScaledTensor.

Decode reads every weight byte once per token and does almost no arithmetic per byte, so the time is the weight
bytes over the memory bandwidth: a 4-bit weight moves a quarter of bf16's bytes. The kernel streams the packed
codes once, dequantizes them in registers and multiplies on the tensor cores (``tl.dot`` in the activation dtype,
FP32 accumulation), with all rows of ``x`` (padded to 16) in each program. The weight tile is the MMA's A operand
(``outᵀ = W · xᵀ``, so the big tile never has to be re-laid out as a B operand) and whole-tile shapes load without
masks (``EVEN``). Two kernels (:mod:`._w4a16_kernels`): ``(N, K)`` weights whose rows are whole 32-bit words (K a
multiple of 8: every real checkpoint) are read as words, decoded eight codes at a time in K order and fed to one
MMA per step; other shapes and ``(K, N)`` weights are read as bytes, low and high nibbles feeding two MMAs. On the
GPU both decode with packed PTX (:mod:`._w4a16_decode`: ~1.5 instructions per INT4 code, ~2.5–3 per NVFP4 code,
against 4–5 and ~25 for the portable fp32 decode the interpreter runs). Decode-sized products (M ≤ 16) with
``(N, K)`` weights of whole 128-code chunks go instead to a Gluon kernel that decodes each thread's words straight
into its ``mma.sync`` fragments (:mod:`._w4a16_mma`; 1.3–2.1× faster than the word kernel on an H200), and NVFP4
``(K, N)`` weights to its twin (:mod:`._w4a16_mma_kn`; up to 1.9× faster than the byte kernel).

Exactness of the in-register dequantization (so the only roundings are FP32 accumulation and the output cast):

- INT4: ``q − zp`` is an integer of magnitude ≤ 135, exact in bf16/fp16. The group scale is *not* folded into the
  weight (``(q − zp) · s`` would round in bf16): each K tile lies inside one group (``BK`` divides the group), so
  the scale multiplies the tile's FP32 partial product instead, as the reference's ``Σ_k x·(q − zp)·s`` factors.
- NVFP4: an E2M1 value (2 significant bits) times an E4M3 block scale (4 bits) has ≤ 6 significant bits and lies
  in [2^-10, 2688], so it is exact in bf16 and fp16; the fp32 global scale multiplies the FP32 accumulator.

Split-K without atomics: program ``(n, s, m)`` covers K range ``s`` and writes its FP32 partial to a workspace
``(S, M, N)``; a second small kernel sums the ``S`` partials in a fixed order. Results are deterministic for a
given tile configuration. The tile comes from :func:`_default_config` (measured on an H200); with
``BRECCIA_TRITON_TUNE=1`` it is tuned on first use per (recipe form, M bucket, N, K) by timing the whole launch,
reduction included, as GPU time (CUDA-graph replay). Nothing is probed at import.

Weight orientation. The contraction axis is the one the blocks run along (DESIGN.md §4): a weight blocked along
axis 0 is breccia.matmul's ``b[K, N]`` (codes packed along N) and gives ``x @ dequantize(w)``; one blocked along
its last axis is an ``nn.Linear``-style ``(N, K)`` weight (codes packed along K) and gives
``x @ dequantize(w).T``. Both are read in place.
"""

from __future__ import annotations

import os
import weakref
from typing import Any, NamedTuple

import torch
import triton

from breccia._errors import DTypeError, ShapeError
from breccia._layouts import PerBlock2D, PerBlockK, PerChannel
from breccia._recipes import INT4Scaling, NVFP4BlockScaling
from breccia._tensor import ScaledTensor

from ._gluon import gluon_module
from ._w4a16_kernels import reduce_kernel, w4a16_kernel, w4a16_words_kernel
from ._w4a16_tiles import (
    Config,
    MmaConfig,
    _candidates,
    _default_config,
    _default_mma_config,
    _mma_candidates,
)

__all__ = ["w4a16_matmul"]

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
#: The packed PTX dequantization (``_w4a16_decode``) on the GPU; False restores the
#: portable fp32 decode (benchmarks compare the two; the interpreter always uses the portable one).
ASM = True
#: ``(N, K)`` weights with whole-word rows go to the word-loading kernel; False keeps them on the byte kernel.
WORDS = True
#: Decode-sized products (M ≤ 16) go to the Gluon fragment kernels where they apply (:func:`_mma_applies`: the
#: ``(N, K)`` kernel, and the ``(K, N)`` one for NVFP4) on the GPU; False keeps them on the Triton kernels.
MMA = True
_ACT = (torch.bfloat16, torch.float16)
_OUT = (torch.float32, torch.bfloat16, torch.float16)


class _Plan(NamedTuple):
    """What the kernel needs to know about the weight, derived once per ScaledTensor (decode calls the same weight
    every token, and the host-side work is a visible part of a ~20 µs product)."""

    kind: int  # 0 INT4, 1 NVFP4
    pack_k: bool  # True: (N, K) weight packed along K; False: (K, N) packed along N
    n: int
    k: int
    gk: int  # K elements per scale (1 with a zero K stride for per-channel)
    gn: int  # N elements per scale (16 for NVFP4 16×16 tiles)
    bk_max: int  # the largest K tile that keeps the dequantization exact
    data: torch.Tensor  # packed codes, rows contiguous
    words: torch.Tensor | None  # (N, K) weights with whole-word rows: the int32 view the word kernel reads
    kn_words: torch.Tensor | None  # (K, N) weights with N % 8 == 0: the int32 view the Gluon (K, N) kernel reads
    kn_scale32: torch.Tensor | None  # (K, N) NVFP4 1×16: the E4M3 scales as int32 words of four outputs
    scale: torch.Tensor  # NVFP4: the E4M3 bytes as uint8
    zp: torch.Tensor  # the zero point (or any tensor, unread)
    g: torch.Tensor  # the global scale (or any tensor, unread)
    strides: tuple[int, int, int, int, int]  # data row; scale along K groups, along N; zero point likewise
    flags: tuple[bool, bool, bool]  # SIGNED, HAS_ZP, HAS_G


_PLANS: weakref.WeakKeyDictionary[ScaledTensor, _Plan | None] = weakref.WeakKeyDictionary()


def _plan(w: ScaledTensor) -> _Plan | None:
    """The kernel's view of ``w`` (cached per tensor), or None where the kernel does not apply."""
    try:
        return _PLANS[w]
    except KeyError:
        p = _PLANS[w] = _make_plan(w)
        return p


def _make_plan(w: ScaledTensor) -> _Plan | None:
    r, lay = w.recipe, w.layout
    if len(w.shape) != 2 or not isinstance(w.data, torch.Tensor) or w.data.element_size() != 1:
        return None
    if isinstance(r, INT4Scaling):
        if getattr(r, "zero_point_domain", "int") != "int" or not isinstance(lay, (PerBlockK, PerChannel)):
            return None
        kind = 0
    elif isinstance(r, NVFP4BlockScaling) and isinstance(lay, (PerBlockK, PerBlock2D)):
        kind = 1
    else:
        return None
    pack_k = lay.axis % 2 == 1
    k, n = (w.shape[1], w.shape[0]) if pack_k else w.shape
    if w.scale.ndim != 2:
        return None
    gn = lay.block_m if isinstance(lay, PerBlock2D) else 1
    if isinstance(lay, PerChannel):
        gk, bk_max = 1, 128
    else:
        gk = lay.block_k
        bk_max = 128 if kind == 1 else min(128, gk & -gk)  # INT4: the K tile must divide the group
    if bk_max < (32 if pack_k else 16):  # tl.dot needs K ≥ 16 (the (N, K) form splits a tile into even/odd k)
        return None

    def along_k_n(t: torch.Tensor) -> tuple[int, int]:
        sk, sn = (t.stride(1), t.stride(0)) if pack_k else (t.stride(0), t.stride(1))
        return (0 if gk == 1 else sk), sn  # per-channel: one group along K

    data = w.data if w.data.stride(1) == 1 else w.data.contiguous()  # rows read as contiguous bytes
    words = None
    if pack_k and k % 8 == 0 and data.stride(0) % 4 == 0 and data.data_ptr() % 4 == 0:
        words = data.view(torch.uint8).view(torch.int32)
    scale = w.scale.view(torch.uint8) if kind == 1 else w.scale
    kn_words = kn_scale32 = None
    if not pack_k and n % 8 == 0 and data.stride(0) % 4 == 0 and data.data_ptr() % 4 == 0:
        kn_words = data.view(torch.uint8).view(torch.int32)
        if kind == 1 and gn == 1 and scale.stride(1) == 1 and scale.stride(0) % 4 == 0 and scale.data_ptr() % 4 == 0:
            kn_scale32 = scale.view(torch.int32)
    zp = w.zero_point if w.zero_point is not None else scale
    g = w.global_scale if w.global_scale is not None else scale
    strides = (data.stride(0), *along_k_n(scale), *(along_k_n(zp) if w.zero_point is not None else (0, 0)))
    flags = (kind == 0 and r.element.signed, w.zero_point is not None, w.global_scale is not None)
    return _Plan(kind, pack_k, n, k, gk, gn, bk_max, data, words, kn_words, kn_scale32, scale, zp, g, strides, flags)


_CC: dict[torch.device, tuple[int, int]] = {}


def _capability(device: torch.device) -> tuple[int, int]:
    """A CUDA device's compute capability, looked up once per device: it is asked on every call, and torch's lookup
    is a visible part of the eager host path."""
    cc = _CC.get(device)
    if cc is None:
        cc = _CC[device] = torch.cuda.get_device_capability(device)
    return cc


def _mma_applies(x2: torch.Tensor, p: _Plan) -> bool:
    """Whether a Gluon fragment kernel takes this product: a GPU (Triton 3.6 or 3.7) with contiguous ``x`` rows, and
    the rules of :func:`_mma_fits` for its shape, recipe and compute capability."""
    if not (MMA and not _INTERPRET and x2.is_cuda and x2.stride(-1) == 1):
        return False
    cc = _capability(x2.device)
    return _mma_fits(p, x2.shape[0], x2.dtype, cc) and gluon_module(_mma_module_name(p)) is not None


def _mma_module_name(p: _Plan) -> str:
    return "_w4a16_mma" if p.pack_k else "_w4a16_mma_kn"


def _mma_fits(p: _Plan, m: int, x_dtype: torch.dtype, cc: tuple[int, int]) -> bool:
    """The device-independent rules (so CPU tests check them): M ≤ 16 on sm_80+, and either an ``(N, K)`` weight
    read as words with K a multiple of 128 and INT4 groups of whole 128-code chunks (:mod:`._w4a16_mma`), or a
    ``(K, N)`` weight with N a multiple of 8, K of 64, INT4 groups of whole 64-row chunks without a zero point or
    NVFP4 1×16 (:mod:`._w4a16_mma_kn`). Either way INT4 may be per channel, and NVFP4 needs bf16 activations (its
    decode uses bf16's exponent range) on sm_89+ (its scales use the E4M3 conversion instruction)."""
    if m > 16 or cc < (8, 0):
        return False
    if p.pack_k:
        if p.words is None or p.k % 128 or (p.kind == 0 and p.gk != 1 and p.gk % 128):
            return False
    elif (
        p.kn_words is None
        or p.k % 64
        or (p.kind == 0 and (p.flags[1] or (p.gk != 1 and p.gk % 64)))
        or (p.kind == 1 and p.kn_scale32 is None)
    ):
        return False
    return not (p.kind == 1 and (x_dtype != torch.bfloat16 or cc < (8, 9)))


def _launch(x2: torch.Tensor, p: _Plan, out: torch.Tensor, cfg: Config | MmaConfig) -> None:
    m = x2.shape[0]
    if isinstance(cfg, MmaConfig):
        mod = gluon_module(_mma_module_name(p))
        assert mod is not None  # _mma_applies checked it
        mod.launch(x2, p, out, cfg)
        return
    nk = triton.cdiv(p.k, cfg.BK)
    split = max(1, min(cfg.SPLIT, nk))
    k_split = triton.cdiv(nk, split) * cfg.BK
    split = triton.cdiv(p.k, k_split)  # every split non-empty
    target = out if split == 1 else torch.empty((split, m, p.n), dtype=torch.float32, device=out.device)
    os_ = 0 if split == 1 else target.stride(0)
    grid = (triton.cdiv(p.n, cfg.BN), split, triton.cdiv(m, cfg.BM))
    even = p.n % cfg.BN == 0 and p.k % cfg.BK == 0
    if p.words is not None and WORDS:
        w4a16_words_kernel[grid](
            x2, p.words, p.scale, p.zp, p.g, target,
            m, p.n, p.k, k_split, p.gk,
            x2.stride(0), x2.stride(1), p.words.stride(0), *p.strides[1:], os_, out.stride(0), out.stride(1),
            KIND=p.kind, SIGNED=p.flags[0], HAS_ZP=p.flags[1], HAS_G=p.flags[2], GN=p.gn,
            BM=cfg.BM, BN=cfg.BN, BK=cfg.BK, F32=_INTERPRET, BITS=x2.dtype == torch.bfloat16 and not _INTERPRET,
            EVEN=even, ASM=_use_asm(p, x2.dtype), AHEAD=max(1, min(cfg.num_stages, 3)),
            num_warps=cfg.num_warps, num_stages=1,
        )  # fmt: skip
    else:
        w4a16_kernel[grid](
            x2, p.data, p.scale, p.zp, p.g, target,
            m, p.n, p.k, k_split, k_split // 2, p.gk,
            x2.stride(0), x2.stride(1), *p.strides, os_, out.stride(0), out.stride(1),
            KIND=p.kind, SIGNED=p.flags[0], HAS_ZP=p.flags[1], HAS_G=p.flags[2], PACK_K=p.pack_k, GN=p.gn,
            BM=cfg.BM, BN=cfg.BN, BK=cfg.BK, F32=_INTERPRET, BITS=x2.dtype == torch.bfloat16 and not _INTERPRET,
            EVEN=even, ASM=_use_asm(p, x2.dtype),
            num_warps=cfg.num_warps, num_stages=cfg.num_stages,
        )  # fmt: skip
    if split > 1:
        mn = m * p.n
        reduce_kernel[(triton.cdiv(mn, 512),)](target, out, mn, split, BLOCK=512, F32=_INTERPRET)


def _use_asm(p: _Plan, dtype: torch.dtype) -> bool:
    """The packed PTX decode applies on the GPU to INT4 (bf16 or fp16 activations) and to NVFP4 with bf16 (its
    ``scale · 2^100`` trick needs bf16's exponent range)."""
    return ASM and not _INTERPRET and (p.kind == 0 or dtype == torch.bfloat16)


def _bucket(m: int) -> int:
    return 1 << max(0, (m - 1).bit_length())


_TUNED: dict[tuple[Any, ...], Config | MmaConfig] = {}


def _tuned_config(x2: torch.Tensor, p: _Plan, out: torch.Tensor) -> Config | MmaConfig:
    # (K, N) INT4 measured faster on the Triton byte kernel (its 64-output CTAs are too few at N = 4096), so the
    # (K, N) fragment kernel is taken by default for NVFP4 only; tuning times both
    mma = _mma_applies(x2, p) and (p.pack_k or p.kind == 1 or os.environ.get("BRECCIA_TRITON_TUNE", "0") == "1")
    key = (p.kind, p.pack_k, p.gk, p.gn, _bucket(x2.shape[0]), p.n, p.k, x2.dtype, out.dtype, x2.device, mma)
    cfg = _TUNED.get(key)
    if cfg is None:
        sms = torch.cuda.get_device_properties(x2.device).multi_processor_count
        if os.environ.get("BRECCIA_TRITON_TUNE", "0") != "1":
            m = x2.shape[0]
            cfg = _TUNED[key] = _default_mma_config(m, p, sms) if mma else _default_config(m, p, sms)
            return cfg
        cands: list[Config | MmaConfig] = [*_mma_candidates(x2.shape[0], p.pack_k)] if mma else []
        timed = []
        for c in cands + list(_candidates(x2.shape[0], p, sms)):
            # GPU time only (a CUDA graph of repeated launches): eager timing would measure the host-side launch
            # cost, which is the same for every tile and would make the choice a coin toss
            ms = triton.testing.do_bench_cudagraph(lambda c=c: _launch(x2, p, out, c), rep=20)
            timed.append((float(ms), repr(c), c))
        cfg = min(timed)[2]
        _TUNED[key] = cfg
    return cfg


def w4a16_matmul(
    x: torch.Tensor,
    w: ScaledTensor,
    *,
    out_dtype: torch.dtype | None = None,
    config: Config | MmaConfig | None = None,
) -> torch.Tensor | None:
    """``x[..., K]`` times the 4-bit weight ``w`` contracted along its blocked (K) axis, FP32 accumulation.

    ``x``: bf16/fp16 on the weight's device (CUDA, or CPU under ``TRITON_INTERPRET=1``). ``w``: INT4Scaling
    (groups or per-channel, symmetric or with an integer zero point, fp16/bf16/fp32 scales) or NVFP4BlockScaling
    (1×16 or 16×16, with or without the global scale), either ``(K, N)`` blocked along axis 0 (breccia.matmul's
    ``b``: returns ``x @ dequantize(w)``) or ``(N, K)`` blocked along its last axis (``x @ dequantize(w).T``).
    Returns ``(..., N)`` in ``out_dtype`` (default: ``x.dtype``), or None where the kernel does not apply: other
    recipes, float zero points, INT4 groups not a multiple of 16 (32 for ``(N, K)``), other devices or dtypes.
    ``config`` pins the tile instead of tuning (the interpreter always uses a small pinned tile).
    """
    if not isinstance(x, torch.Tensor) or not isinstance(w, ScaledTensor) or isinstance(x, ScaledTensor):
        return None
    if x.dtype not in _ACT or x.ndim < 1 or not isinstance(w.data, torch.Tensor) or x.device != w.data.device:
        return None
    if not (x.is_cuda or (_INTERPRET and x.device.type == "cpu")):
        return None
    p = _plan(w)
    if p is None:
        return None
    want = x.dtype if out_dtype is None else out_dtype
    if not isinstance(want, torch.dtype) or not want.is_floating_point:
        raise DTypeError(f"w4a16_matmul: out_dtype={out_dtype!r}; expected a torch float dtype (e.g. torch.bfloat16)")
    if x.shape[-1] != p.k:
        raise ShapeError(
            f"w4a16_matmul: x has K={x.shape[-1]} on its last axis but the weight of shape {tuple(w.shape)} "
            f"has K={p.k} along its blocked axis; pass x of shape (..., {p.k})"
        )
    x2 = x.reshape(-1, p.k)
    m = x2.shape[0]
    out = torch.empty((m, p.n), dtype=want if want in _OUT else torch.float32, device=x.device)
    if m and p.n:
        if p.k == 0:
            out.zero_()
        else:
            if config is None and _INTERPRET:
                config = Config(16, 32, min(32, p.bk_max), 2)
            cfg = config if config is not None else _tuned_config(x2, p, out)
            if isinstance(cfg, MmaConfig):
                if config is not None and not _mma_applies(x2, p):
                    raise ShapeError(
                        f"w4a16_matmul: config={cfg!r} pins a Gluon fragment kernel, which needs a GPU with Triton "
                        f"3.6 or 3.7, M <= 16 (got {m}), bf16 x for NVFP4, and an (N, K) weight with K % 128 == 0 and "
                        f"INT4 groups of 128·j or a (K, N) one with K % 64 == 0, N % 8 == 0, no zero point and "
                        f"NVFP4 1×16 (got K={p.k}, N={p.n}, groups of {p.gk}); pass a Config or None"
                    )
                _launch(x2, p, out, cfg)
            else:
                _launch(x2, p, out, cfg._replace(BK=min(cfg.BK, p.bk_max)))
    return out.reshape(*x.shape[:-1], p.n).to(want)
