"""The Gluon W4A16 fragment kernels (``_w4a16_mma`` for ``(N, K)`` weights, ``_w4a16_mma_kn`` for ``(K, N)``; M ≤ 16)
against an FP64 product of the dequantized operands, and their routing inside ``w4a16_matmul``.

Gluon has no CPU interpreter, so the numerical tests need a CUDA GPU (sm_80+) and Triton 3.6 or 3.7; the interpreter
runs of ``test_triton_w4a16.py`` cover the same recipes through the Triton kernels. On CPU the eligibility rules
and the refusal of a pinned fragment config are checked. The tolerance argument is ``test_triton_w4a16``'s: the
decode is exact, so the error is the output cast plus FP32 accumulation.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from _w4a16_common import DEVICE, activations, fill_every_code, rel_err, tol, weight

import breccia
from breccia._errors import ShapeError
from breccia.triton import _gemm, _w4a16, _w4a16_tiles
from breccia.triton._gluon import gluon_module
from breccia.triton._w4a16 import Config, MmaConfig, w4a16_matmul

GPU = (
    torch.cuda.is_available()
    and torch.cuda.get_device_capability() >= (8, 0)
    and gluon_module("_w4a16_mma") is not None
)
needs_gpu = pytest.mark.skipif(not GPU, reason="the Gluon kernel runs on an sm_80+ GPU only (no interpreter)")

RECIPES = {
    "int4-sym-fp16-g128": breccia.INT4Scaling(group_size=128),
    "int4-half-bf16-g128": breccia.INT4Scaling(group_size=128, scale_dtype="bf16", symmetric_range="half_range"),
    "int4-asym-uint-bf16-g128": breccia.INT4Scaling(group_size=128, symmetric=False, signed=False, scale_dtype="bf16"),
    "int4-asym-int-fp32-g256": breccia.INT4Scaling(group_size=256, symmetric=False, scale_dtype="fp32"),
    "int4-asym-uint-chan": breccia.INT4Scaling(group_size=-1, symmetric=False, signed=False),
    "nvfp4-1x16": breccia.NVFP4BlockScaling(),
    "nvfp4-1x16-noglobal": breccia.NVFP4BlockScaling(per_tensor_scale=False),
    "nvfp4-16x16": breccia.NVFP4BlockScaling(block_m=16),
}


# (K, N) weights: INT4 without a zero point (those stay on the Triton byte kernel) and NVFP4 1×16
KN = [name for name in RECIPES if "asym" not in name and name != "nvfp4-16x16"]


def _poisoned(x: torch.Tensor, w: breccia.ScaledTensor, cfg: MmaConfig, out_dtype: torch.dtype) -> torch.Tensor:
    """The kernel run straight into a NaN-filled output (an element it failed to write stays NaN)."""
    p = _w4a16._plan(w)
    assert p is not None and _w4a16._mma_applies(x, p)
    mod = gluon_module("_w4a16_mma" if p.pack_k else "_w4a16_mma_kn")
    assert mod is not None
    out = torch.full((x.shape[0], p.n), float("nan"), dtype=out_dtype, device=x.device)
    mod.launch(x, p, out, cfg)
    return out


@needs_gpu
@pytest.mark.parametrize("m", [1, 5, 8, 9, 16])
@pytest.mark.parametrize("name", list(RECIPES))
def test_recipes(name: str, m: int) -> None:
    """N = 200 (the last CTA's rows partly past N), K = 1152 (9 chunks: the K warps get uneven counts); both default
    shapes (a GPU with fewer SMs than N / 32 takes the 32-row CTAs, one with more the 16-row ones)."""
    n, k = 200, 1152
    w = weight(RECIPES[name], "nk", n, k, m)
    x = activations(m, k, torch.bfloat16, m)
    p = _w4a16._plan(w)
    assert p is not None
    for sms in (1, 1000):
        out = _poisoned(x, w, _w4a16._default_mma_config(m, p, sms), torch.float32)
        assert rel_err(out, x, w) <= tol(torch.float32, k)


@needs_gpu
@pytest.mark.parametrize("m", [1, 5, 8, 9, 16])
@pytest.mark.parametrize("name", KN)
def test_recipes_kn(name: str, m: int) -> None:
    """``(K, N)``: N = 200 (25 words: the CTA's 64 outputs partly past N), K = 1152 (18 chunks of 64 over 8 K warps)."""
    n, k = 200, 1152
    w = weight(RECIPES[name], "kn", n, k, m)
    x = activations(m, k, torch.bfloat16, m)
    p = _w4a16._plan(w)
    assert p is not None
    out = _poisoned(x, w, _w4a16._default_mma_config(m, p, 132), torch.float32)
    assert rel_err(out, x, w) <= tol(torch.float32, k)


@needs_gpu
@pytest.mark.parametrize(("even", "xperm"), [(None, True), (True, True), (False, False), (True, False)])
@pytest.mark.parametrize("m", [1, 4, 9, 16])
@pytest.mark.parametrize("name", ["int4-sym-fp16-g128", "int4-asym-uint-bf16-g128", "nvfp4-1x16", "nvfp4-16x16"])
def test_whole_steps_and_permuted_x(
    name: str, m: int, even: bool | None, xperm: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shapes whose K ranges are whole steps and whose row blocks are whole rows, where the loads go unmasked
    (``EVEN``: forced on, off, or as measured), with x permuted by its own kernel at M > 8 (``XPERM``, one K range)
    or read as it is; one K range and two. The tests above mostly take the masked path (N and K not multiples of
    the tile)."""
    mod = gluon_module("_w4a16_mma")
    assert mod is not None
    monkeypatch.setattr(mod, "EVEN", even)
    monkeypatch.setattr(mod, "XPERM", xperm)
    n, k = 512, 2048  # 16 chunks: 4 or 2 steps per K warp, 16 or 32 rows per CTA
    w = weight(RECIPES[name], "nk", n, k, m)
    x = activations(m, k, torch.bfloat16, m)
    p = _w4a16._plan(w)
    assert p is not None
    for cfg in {_w4a16._default_mma_config(m, p, sms) for sms in (1, 132)}:
        out = _poisoned(x, w, cfg, torch.float32)
        assert rel_err(out, x, w) <= tol(torch.float32, k), cfg


@needs_gpu
@pytest.mark.parametrize(
    ("form", "cfg"),
    [("nk", c) for c in _w4a16._mma_candidates(16, True)] + [("kn", c) for c in _w4a16._mma_candidates(16, False)],
    ids=repr,
)
@pytest.mark.parametrize("m", [3, 16])
def test_every_config(form: str, cfg: MmaConfig, m: int) -> None:
    """Each shape the tuner may pick, on a weight with more chunks than K warps and N not a multiple of the tile."""
    n, k = 1000, 2176  # 17 chunks of 128, 34 of 64
    name = ("int4-asym-int-fp32-g256" if form == "nk" else "int4-half-bf16-g128") if m == 3 else "nvfp4-1x16"
    w = weight(RECIPES[name], form, n, k, 3)
    x = activations(m, k, torch.bfloat16, 3)
    out = _poisoned(x, w, cfg, torch.bfloat16)
    assert rel_err(out, x, w) <= tol(torch.bfloat16, k)
    again = _poisoned(x, w, cfg, torch.bfloat16)
    assert torch.equal(out, again)  # deterministic: fixed chunk order per warp, fixed cross-warp sum


@needs_gpu
@pytest.mark.parametrize("m", [2, 16])
@pytest.mark.parametrize("split", [2, 3, 5, 64])
@pytest.mark.parametrize("form", ["nk", "kn"])
def test_split_k(form: str, split: int, m: int) -> None:
    """K ranges across CTAs (grid axis 1) meet in a workspace, the last CTA of a row block adding them in slot
    order: within tolerance of FP64, bitwise equal on a second run, within FP32 rounding of the unsplit kernel,
    and every arrival counter back at zero. 17 chunks of 128 (34 of 64) over 4 K warps make ranges of unequal
    length; 64 ranges are clamped to one step each."""
    n, k = 1000, 2176
    name = "nvfp4-1x16" if m == 16 else ("int4-asym-int-fp32-g256" if form == "nk" else "int4-half-bf16-g128")
    w = weight(RECIPES[name], form, n, k, 11)
    x = activations(m, k, torch.bfloat16, 11)
    cfg = MmaConfig(4, 1, 2 if form == "nk" else 1, SPLIT=split)
    out = _poisoned(x, w, cfg, torch.float32)
    assert rel_err(out, x, w) <= tol(torch.float32, k)
    assert torch.equal(out, _poisoned(x, w, cfg, torch.float32))
    assert all(int(c.abs().sum()) == 0 for c in _gemm._COUNTERS.values())
    one = _poisoned(x, w, cfg._replace(SPLIT=1), torch.float32)
    assert float((out - one).abs().max()) <= 1e-5 * float(one.abs().max())


@needs_gpu
@pytest.mark.parametrize("form", ["nk", "kn"])
def test_split_k_under_concurrency(form: str) -> None:
    """Many CTAs racing to arrive: 30 launches of a 4096 × 4096 product in 4 K ranges (1024 CTAs for the (N, K)
    kernel, 256 for the (K, N) one) give bitwise the same output every time."""
    n = k = 4096
    w = weight(RECIPES["nvfp4-1x16"], form, n, k, 12)
    x = activations(5, k, torch.bfloat16, 12)
    cfg = MmaConfig(4, 1, 1, SPLIT=4)
    first = _poisoned(x, w, cfg, torch.float32)
    assert rel_err(first, x, w) <= tol(torch.float32, k)
    for _ in range(30):
        assert torch.equal(_poisoned(x, w, cfg, torch.float32), first)


def _chain(w: breccia.ScaledTensor, x: torch.Tensor, cfg: MmaConfig, steps: int, graph: bool) -> torch.Tensor:
    """``steps`` products, each reading the one before's output as its ``x`` with no kernel between them: with
    programmatic dependent launch a product starts before the previous one ends, so a wait placed after any read
    of ``x`` (or of the shared split-K workspace and counters) shows up here as different bits. Eager, or captured
    in a CUDA graph (NaN-filled outputs, replayed once)."""
    p = _w4a16._plan(w)
    assert p is not None
    mod = gluon_module("_w4a16_mma")
    assert mod is not None

    def run() -> list[torch.Tensor]:
        ys = [x]
        for _ in range(steps):
            out = torch.empty((x.shape[0], p.n), dtype=torch.bfloat16, device=x.device)
            mod.launch(ys[-1], p, out, cfg)
            ys.append(out)
        return ys[1:]

    if not graph:
        return torch.stack(run())
    run()  # compile outside the capture
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, stream=stream):
            ys = run()
        for y in ys:
            y.fill_(float("nan"))
        g.replay()
    stream.synchronize()
    return torch.stack(ys)


@needs_gpu
@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize(("name", "m", "split"), [("int4-sym-fp16-g128", 1, 1), ("nvfp4-1x16", 8, 4)])
def test_dependent_launches(name: str, m: int, split: int, graph: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Programmatic dependent launch (sm_90+, ``_w4a16_mma.PDL``), with and without the weight prefetch before the
    wait: a chain of dependent products equals bit for bit the chain launched without it, in 1 and 4 K ranges."""
    mod = gluon_module("_w4a16_mma")
    assert mod is not None and m <= mod.PDL_MAX_M  # else PDL is off in both chains
    if not mod._sm90(torch.device(DEVICE)):  # below sm_90 both chains launch without PDL: nothing to compare
        pytest.skip("programmatic dependent launch needs sm_90 or later")
    n = k = 2048
    w = weight(RECIPES[name], "nk", n, k, 13)
    x = activations(m, k, torch.bfloat16, 13)
    cfg = MmaConfig(4, 1, 2, SPLIT=split)
    monkeypatch.setattr(mod, "PDL", False)
    ref = _chain(w, x, cfg, 6, graph)
    assert rel_err(ref[0], x, w) <= tol(torch.bfloat16, k) and not torch.isnan(ref).any()
    for pf in (0, 2):
        monkeypatch.setattr(mod, "PDL", True)
        monkeypatch.setattr(mod, "PF", pf)
        assert torch.equal(_chain(w, x, cfg, 6, graph), ref), pf


@needs_gpu
@pytest.mark.parametrize("x_dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_dtypes_through_w4a16_matmul(
    monkeypatch: pytest.MonkeyPatch, x_dtype: torch.dtype, out_dtype: torch.dtype
) -> None:
    """The routed call (no pinned config) takes the fragment kernel for INT4 with bf16 or fp16 activations."""
    taken = []
    real = gluon_module("_w4a16_mma").launch  # type: ignore[union-attr]
    monkeypatch.setattr(gluon_module("_w4a16_mma"), "launch", lambda *a: taken.append(a[3]) or real(*a))
    w = weight(RECIPES["int4-asym-uint-bf16-g128"], "nk", 256, 512, 7)
    x = activations(4, 512, x_dtype, 7).reshape(2, 2, 512)  # batched activations: flattened to M = 4
    out = w4a16_matmul(x, w, out_dtype=out_dtype)
    assert out is not None and out.shape == (2, 2, 256) and out.dtype == out_dtype
    assert len(taken) == 1 and isinstance(taken[0], MmaConfig)
    assert rel_err(out.reshape(4, 256), x.reshape(4, 512), w) <= tol(out_dtype, 512)


@needs_gpu
def test_kn_routing(monkeypatch: pytest.MonkeyPatch) -> None:
    """``(K, N)`` weights: NVFP4 takes the fragment kernel by default, INT4 the Triton byte kernel (measured faster)."""
    taken = []
    mod = gluon_module("_w4a16_mma_kn")
    real = mod.launch  # type: ignore[union-attr]
    monkeypatch.setattr(mod, "launch", lambda *a: taken.append(a[3]) or real(*a))
    x = activations(3, 256, torch.bfloat16, 5)
    for name, want in (("nvfp4-1x16", 1), ("int4-sym-fp16-g128", 0)):
        taken.clear()
        w = weight(RECIPES[name], "kn", 128, 256, 5)
        out = w4a16_matmul(x, w, out_dtype=torch.float32)
        assert out is not None and rel_err(out, x, w) <= tol(torch.float32, 256)
        assert len(taken) == want


_CODES = {
    "int4-sym": breccia.INT4Scaling(group_size=128),
    "int4-asym-uint": breccia.INT4Scaling(group_size=128, symmetric=False, signed=False),
    "int4-asym-int": breccia.INT4Scaling(group_size=128, symmetric=False, scale_dtype="bf16"),
    "nvfp4-1x16": breccia.NVFP4BlockScaling(per_tensor_scale=False),
    "nvfp4-16x16": breccia.NVFP4BlockScaling(block_m=16, per_tensor_scale=False),
}


def _fragment_cases() -> list[tuple[str, torch.dtype, str]]:
    """The (recipe, activation dtype, weight form) triples the fragment kernels take: NVFP4 with fp16 activations,
    and ``(K, N)`` weights with zero points or 16×16 blocks, stay on the Triton kernels."""
    return [
        (name, x_dtype, form)
        for name, recipe in _CODES.items()
        for x_dtype in (torch.bfloat16, torch.float16)
        for form in ("nk", "kn")
        if not (isinstance(recipe, breccia.NVFP4BlockScaling) and x_dtype == torch.float16)
        and not (form == "kn" and (name == "nvfp4-16x16" or "asym" in name))
    ]


@needs_gpu
@pytest.mark.parametrize(
    ("name", "x_dtype", "form"),
    _fragment_cases(),
    ids=[f"{n}-{str(d).removeprefix('torch.')}-{f}" for n, d, f in _fragment_cases()],
)
def test_every_code_decodes_exactly(name: str, x_dtype: torch.dtype, form: str) -> None:
    """Every byte value, every E4M3 scale code (subnormals, zero, negative, NaN) and zero points across the 4-bit
    range, read with ``x`` = 16-row slices of the identity: each output is one product ``1 · w``, so the FP32 result
    equals ``breccia.dequantize`` bit for bit; a NaN weight makes its whole output column NaN (0 · NaN)."""
    recipe = _CODES[name]
    n = k = 128  # 8192 code bytes, 1024 NVFP4 scales: every value many times
    w = weight(recipe, form, n, k, 0)
    fill_every_code(w, recipe, period=251)  # a prime period: codes meet every position
    eye = torch.eye(k, dtype=x_dtype, device=DEVICE)
    cfg = MmaConfig(8, 1, 2, 1, 128) if form == "nk" else MmaConfig(8, 1, 1)
    got = torch.cat([_poisoned(eye[i : i + 16], w, cfg, torch.float32) for i in range(0, k, 16)])
    want = breccia.dequantize(w).float()
    if form == "nk":
        got = got.t()
        want[want.isnan().any(1)] = float("nan")
    else:
        want[:, want.isnan().any(0)] = float("nan")
    assert int(want.isnan().sum()) < want.numel() // 4  # the NaN codes poison a few rows, not the test
    torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)


@needs_gpu
def test_matches_the_triton_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fragment kernel and Triton word kernel agree to FP32 summation-order differences on an LLM-sized row block."""
    w = weight(RECIPES["nvfp4-1x16"], "nk", 512, 4096, 11)
    x = activations(16, 4096, torch.bfloat16, 11)
    fast = w4a16_matmul(x, w, out_dtype=torch.float32)
    monkeypatch.setattr(_w4a16, "MMA", False)
    slow = w4a16_matmul(x, w, out_dtype=torch.float32)
    assert fast is not None and slow is not None
    assert float(torch.linalg.norm(fast - slow) / torch.linalg.norm(slow)) <= 8 * 4096 * 2.0**-24


def _plan_for(recipe: breccia.Recipe, n: int, k: int, form: str = "nk") -> _w4a16._Plan:
    p = _w4a16._plan(weight(recipe, form, n, k, 0))
    assert p is not None
    return p


@pytest.mark.parametrize(
    ("name", "form", "m", "k", "x_dtype", "want"),
    [
        ("int4-sym-fp16-g128", "nk", 16, 256, torch.bfloat16, True),
        ("int4-sym-fp16-g128", "nk", 17, 256, torch.bfloat16, False),  # prefill-sized M: the Triton kernels
        ("int4-sym-fp16-g128", "nk", 1, 200, torch.bfloat16, False),  # K not whole 128-code chunks
        ("int4-asym-uint-chan", "nk", 1, 256, torch.float16, True),
        ("nvfp4-1x16", "nk", 4, 256, torch.float16, False),  # the packed NVFP4 decode needs bf16's range
        ("nvfp4-16x16", "nk", 4, 256, torch.bfloat16, True),
        ("int4-sym-fp16-g128", "kn", 16, 192, torch.float16, True),
        ("int4-sym-fp16-g128", "kn", 1, 200, torch.bfloat16, False),  # K not whole 64-row chunks
        ("int4-asym-uint-chan", "kn", 1, 256, torch.bfloat16, False),  # (K, N) zero points: the byte kernel
        ("nvfp4-1x16", "kn", 4, 256, torch.bfloat16, True),
        ("nvfp4-1x16", "kn", 4, 96, torch.bfloat16, False),  # K a multiple of 32, not of the 64-row chunk
        ("nvfp4-16x16", "kn", 4, 256, torch.bfloat16, False),
    ],
)
def test_eligibility(name: str, form: str, m: int, k: int, x_dtype: torch.dtype, want: bool) -> None:
    """The shape and recipe rules on an sm_90 (checked on CPU too), and the whole decision where a GPU runs it."""
    p = _plan_for(RECIPES[name], 64, k, form)
    assert _w4a16._mma_fits(p, m, x_dtype, (9, 0)) is want
    if GPU:
        x = torch.zeros(m, k, dtype=x_dtype, device=DEVICE)
        assert _w4a16._mma_applies(x, p) is (want and torch.cuda.get_device_capability() >= (8, 9))


@pytest.mark.parametrize(("cc", "int4", "nvfp4"), [((7, 5), False, False), ((8, 0), True, False), ((8, 9), True, True)])
def test_compute_capability(cc: tuple[int, int], int4: bool, nvfp4: bool) -> None:
    """``mma.sync`` m16n8k16 bf16 needs sm_80; the NVFP4 scale conversion (``cvt.rn.f16x2.e4m3x2``) sm_89."""
    for form in ("nk", "kn"):
        assert _w4a16._mma_fits(_plan_for(RECIPES["int4-sym-fp16-g128"], 64, 256, form), 1, torch.bfloat16, cc) is int4
        assert _w4a16._mma_fits(_plan_for(RECIPES["nvfp4-1x16"], 64, 256, form), 1, torch.bfloat16, cc) is nvfp4


def test_groups_of_64_stay_on_triton() -> None:
    """A 64-code group splits a 128-code chunk across lanes of one MMA step: its scale cannot multiply the chunk
    (the ``(K, N)`` kernel's 64-row chunks take it)."""
    g64 = breccia.INT4Scaling(group_size=64)
    assert not _w4a16._mma_fits(_plan_for(g64, 64, 256), 1, torch.bfloat16, (9, 0))
    assert _w4a16._mma_fits(_plan_for(g64, 64, 256, "kn"), 1, torch.bfloat16, (9, 0))


def test_pinned_fragment_config_is_refused_where_it_does_not_apply() -> None:
    w = weight(breccia.INT4Scaling(group_size=64), "nk", 64, 256, 0)
    with pytest.raises(ShapeError, match="config=MmaConfig"):
        w4a16_matmul(torch.zeros(1, 256, dtype=torch.bfloat16, device=DEVICE), w, config=MmaConfig(8, 1, 2))


def test_kn_needs_whole_words() -> None:
    """(K, N) weights are read as int32 words along N: N not a multiple of 8 keeps the byte kernel."""
    assert _plan_for(RECIPES["nvfp4-1x16"], 64, 256, "kn").kn_scale32 is not None
    assert _plan_for(RECIPES["int4-sym-fp16-g128"], 60, 256, "kn").kn_words is None
    assert not _w4a16._mma_fits(_plan_for(RECIPES["int4-sym-fp16-g128"], 60, 256, "kn"), 1, torch.bfloat16, (9, 0))


def test_default_shapes_are_tuning_candidates() -> None:
    """Every default shape is one the tuner times and ``test_every_config`` runs; the candidates are distinct."""
    for form in ("nk", "kn"):
        for n, k in itertools.product((64, 4096, 8192, 14336), (256, 4096, 8192)):
            p = _plan_for(RECIPES["int4-sym-fp16-g128"], n, k, form)
            cands = _w4a16._mma_candidates(16, p.pack_k)
            assert len(set(cands)) == len(cands)
            for m in (1, 8, 9, 16):
                assert _w4a16._default_mma_config(m, p, 132) in cands, (form, n, k, m)
    assert isinstance(_w4a16._default_config(1, _plan_for(RECIPES["int4-sym-fp16-g128"], 64, 256), 132), Config)


def test_default_split_fills_the_gpu() -> None:
    """A ``(K, N)`` weight with at most half a 64-output CTA per SM is split along K in 2 ranges where that makes
    1.5 CTAs per SM, else in 4; more CTAs than that are not split."""
    for n, sms in ((64, 132), (4096, 132), (4096, 78), (4096, 100), (8192, 132), (14336, 132)):
        cfg = _w4a16._default_mma_config(1, _plan_for(RECIPES["nvfp4-1x16"], n, 256, "kn"), sms)
        ctas = -(-n // 64)
        assert (cfg.SPLIT > 1) == (2 * ctas <= sms)
        assert cfg.SPLIT in (1, 4) or ctas * cfg.SPLIT >= 1.5 * sms


def test_k_ranges_cover_every_chunk_once() -> None:
    """The K ranges are whole steps of the K warps, none empty, at most the asked number, and they cover K."""
    for nchunk, wk, split in itertools.product(range(1, 70), (1, 2, 4, 8, 16), range(1, 10)):
        cps, ranges = _w4a16_tiles._k_ranges(nchunk, wk, split)
        assert cps % wk == 0 and 1 <= ranges <= split
        assert (ranges - 1) * cps < nchunk <= ranges * cps
