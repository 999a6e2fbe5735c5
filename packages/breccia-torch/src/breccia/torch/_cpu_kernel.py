"""An optional fused CPU kernel for the torch CPU cast, compiled on first use with the system C compiler.

Why: an eager torch cast makes one full pass over memory per operation (|x|, block max, division, clamp,
conversion), which caps it near half the speed of a bare ``x.to(torch.float8_e4m3fn)``, and far below for the 4- and
6-bit formats torch cannot convert natively. :file:`_cpu_kernel.c` does the two memory-bound parts in one pass each
(block ``max |x|``; divide, clamp, round, pack); the recipe math (scales) stays in :mod:`breccia._math`. Both C
primitives are exact by construction and :func:`kernel` checks the freshly loaded library against the shared encoder
before handing it out, so it can only change speed, never bytes.

Shipping C source instead of a compiled extension keeps breccia-torch a pure-Python wheel: where no compiler exists
or anything fails (compile, load, self-check), :func:`kernel` returns ``None`` once and for all, and the caller runs
the eager path. Nothing is compiled at import; nothing is printed; :func:`last_error` says why it is off.
``BRECCIA_CPU_KERNEL=0`` turns it off.

The library is cached in ``${XDG_CACHE_HOME:-~/.cache}/breccia/`` under a name hashed from the source, the compiler's
``--version``, the flags and the CPU's identity (``-march=native`` is used only where that identity is readable), so
an upgrade or another machine sharing the home directory never loads a stale or foreign build. It is compiled to a
unique temporary file in that directory and moved into place with :func:`os.replace`: concurrent processes race
harmlessly and never see a half-written file.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = ["ENV", "FORMATS", "CpuKernel", "kernel", "last_error", "reset"]

ENV = "BRECCIA_CPU_KERNEL"
COMPILER: str | None = None  # None: $CC, else the first of cc / gcc / clang on PATH (tests point this elsewhere)
FORMATS = {"E4M3": 0, "E5M2": 1, "E2M1": 2, "E2M3": 3, "E3M2": 4}  # the `fmt` argument of breccia_encode_blocks
PACKED = frozenset({"E2M1"})
ABI = 1  # must equal BRECCIA_ABI in the C source
_SOURCE = Path(__file__).with_name("_cpu_kernel.c")
_FLAGS = ("-O3", "-fno-fast-math", "-ffp-contract=off", "-std=c99", "-fPIC", "-shared")
_MIN_THREAD_ELEMS = 1 << 20  # waking a pool thread costs ~0.1 ms on the reference VM: worth it from ~1M elements on


class KernelBuildError(RuntimeError):
    """Why the kernel is unavailable (kept for :func:`last_error`; never raised to a user)."""


_I64, _PTR = ctypes.c_int64, ctypes.c_void_p


class CpuKernel:
    """The loaded library, with typed wrappers that split rows across ``torch.get_num_threads()`` threads (ctypes
    releases the GIL for the duration of each call)."""

    def __init__(self, lib: ctypes.CDLL, path: Path) -> None:
        self.path = path
        self._lib = lib  # keeps the library mapped
        self._absmax = lib.breccia_absmax_blocks
        self._absmax.argtypes = [_PTR, _I64, _I64, _I64, _I64, _PTR]
        self._absmax.restype = ctypes.c_int
        self._encode = lib.breccia_encode_blocks
        self._encode.argtypes = [_PTR, _I64, _I64, _I64, _I64, _PTR, _I64, ctypes.c_int32, ctypes.c_int32, _PTR, _I64]
        self._encode.restype = ctypes.c_int

    def absmax_blocks(self, x: torch.Tensor, b: int, out: torch.Tensor) -> bool:
        """Fill ``out`` (fp32, rows × ceil(K/b), contiguous) with ``max |x|`` per block of ``b`` along each row of
        the 2-D fp32 ``x`` (unit column stride, any row stride). Returns ``False`` if any element is NaN or Inf
        (``out`` is then meaningless)."""
        rows, k = _check_rows(x, torch.float32, "x")
        nb = -(-k // b)
        if tuple(out.shape) != (rows, nb) or out.dtype != torch.float32 or not out.is_contiguous():
            raise ValueError(f"absmax_blocks: out must be a contiguous fp32 ({rows}, {nb}); got {out.shape}")
        xp, ld, op = x.data_ptr(), x.stride(0), out.data_ptr()

        def run(r0: int, r1: int) -> int:
            return int(self._absmax(xp + 4 * r0 * ld, r1 - r0, k, ld, b, op + 4 * r0 * nb))

        return not any(_parallel(rows, k, run))

    def encode_blocks(
        self, x: torch.Tensor, b: int, scale: torch.Tensor, multiply: bool, fmt: str, out: torch.Tensor
    ) -> None:
        """Codes of the 2-D fp32 ``x`` into ``out`` (uint8; ``ceil(K/2)`` bytes per row for E2M1, else ``K``):
        ``RNE(clamp(x / s, ±fmax))`` (``x · s`` if ``multiply``), with ``s`` the fp32 ``scale[i, j]`` of block
        ``j`` (``b`` elements) of row ``i``; a row stride of 0 in ``scale`` repeats one row of scales."""
        rows, k = _check_rows(x, torch.float32, "x")
        nb = -(-k // b)
        if scale.dtype != torch.float32 or scale.dim() != 2 or tuple(scale.shape) != (rows, nb):
            raise ValueError(f"encode_blocks: scale must be fp32 ({rows}, {nb}); got {scale.dtype} {scale.shape}")
        _check_rows(scale, torch.float32, "scale")
        cols = (k + 1) // 2 if fmt in PACKED else k
        if _check_rows(out, torch.uint8, "out") != (rows, cols):
            raise ValueError(f"encode_blocks: out must be uint8 ({rows}, {cols}); got {out.shape}")
        xp, ld, sp, sld = x.data_ptr(), x.stride(0), scale.data_ptr(), scale.stride(0)
        op, old, mode, code = out.data_ptr(), out.stride(0), int(multiply), FORMATS[fmt]

        def run(r0: int, r1: int) -> int:
            xs, ss, os_ = xp + 4 * r0 * ld, sp + 4 * r0 * sld, op + r0 * old
            return int(self._encode(xs, r1 - r0, k, ld, b, ss, sld, mode, code, os_, old))

        if any(_parallel(rows, k, run)):
            raise ValueError(f"encode_blocks: the library rejected format {fmt!r}")


def _check_rows(t: torch.Tensor, dtype: torch.dtype, name: str) -> tuple[int, int]:
    """``t``'s (rows, columns) after checking it is a 2-D CPU ``dtype`` tensor the C loops can walk (unit column
    stride, non-negative row stride): a wrong argument must raise here, not corrupt memory there."""
    if t.dim() != 2 or t.dtype != dtype or t.device.type != "cpu" or (t.shape[1] > 1 and t.stride(1) != 1):
        raise ValueError(f"cpu kernel: {name} must be a 2-D CPU {dtype} tensor with unit column stride")
    if t.stride(0) < 0:
        raise ValueError(f"cpu kernel: {name} has a negative row stride")
    return int(t.shape[0]), int(t.shape[1])


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    tried: bool = False
    loaded: CpuKernel | None = None
    error: str | None = None
    pool_lock: threading.Lock = field(default_factory=threading.Lock)  # not `lock`: the self-check runs under that
    pool: ThreadPoolExecutor | None = None
    pool_key: tuple[int, int] = (0, 0)  # (pid, workers): a forked child must not reuse its parent's dead threads


_STATE = _State()


def _parallel(rows: int, k: int, run: Callable[[int, int], int]) -> list[int]:
    """``run(r0, r1)`` over row ranges covering ``[0, rows)``, on up to ``torch.get_num_threads()`` threads (the
    calling thread takes the first range); one call where that is 1 or the work is small."""
    n = min(torch.get_num_threads(), rows, max(1, rows * k // _MIN_THREAD_ELEMS))
    if n <= 1:
        return [run(0, rows)]
    bounds = [rows * i // n for i in range(n + 1)]
    with _STATE.pool_lock:
        pid, workers = _STATE.pool_key
        if _STATE.pool is None or pid != os.getpid() or workers < n - 1:
            if _STATE.pool is not None and pid == os.getpid():
                _STATE.pool.shutdown(wait=False)
            _STATE.pool = ThreadPoolExecutor(max_workers=n - 1, thread_name_prefix="breccia-cpu")
            _STATE.pool_key = (os.getpid(), n - 1)
        pool = _STATE.pool
    futures = [pool.submit(run, bounds[i], bounds[i + 1]) for i in range(1, n)]
    first = run(bounds[0], bounds[1])
    return [first, *(f.result() for f in futures)]


def kernel() -> CpuKernel | None:
    """The loaded kernel, building it on the first call; ``None`` if disabled (``BRECCIA_CPU_KERNEL=0``) or
    unavailable (:func:`last_error` says why; the attempt is not repeated until :func:`reset`)."""
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "off", "no"):
        return None
    if _STATE.tried:
        return _STATE.loaded
    with _STATE.lock:
        if not _STATE.tried:
            try:
                _STATE.loaded = _build_and_load()
            except Exception as e:  # never raise to the user: the eager path is always there
                _STATE.loaded, _STATE.error = None, f"{type(e).__name__}: {e}"
            _STATE.tried = True
    return _STATE.loaded


def last_error() -> str | None:
    """Why the last build or load attempt failed, or ``None`` (never tried, or succeeded)."""
    return _STATE.error


def reset() -> None:
    """Forget the loaded kernel and any failure, so the next :func:`kernel` call tries again (tests)."""
    with _STATE.lock:
        _STATE.tried, _STATE.loaded, _STATE.error = False, None, None


def _compiler() -> list[str]:
    if COMPILER is not None:
        return [COMPILER]
    if os.environ.get("CC", "").strip():
        return shlex.split(os.environ["CC"])
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return [found]
    raise KernelBuildError("no C compiler found (set CC, or install gcc or clang)")


def _cpu_identity() -> str:
    """The CPU model and feature flags from /proc/cpuinfo (Linux), or '' where unreadable: ``-march=native`` is
    only used when this identity goes into the cache key."""
    if sys.platform != "linux":
        return ""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""
    keys = ("vendor_id", "model name", "flags", "CPU implementer", "CPU part", "Features")
    seen: dict[str, str] = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        name = name.strip()
        if name in keys and name not in seen:
            seen[name] = value.strip()
    return "\n".join(f"{k}={v}" for k, v in sorted(seen.items()))


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "breccia"


def _build_and_load() -> CpuKernel:
    if sys.platform == "win32":
        raise KernelBuildError("the CPU kernel is not built on Windows")
    cc = _compiler()
    try:
        version = subprocess.run([*cc, "--version"], capture_output=True, text=True, timeout=60, check=False).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise KernelBuildError(f"cannot run the C compiler {cc}: {e}") from None
    source = _SOURCE.read_bytes()
    ident = _cpu_identity()
    native = ["-march=native"] if ident and platform.machine().lower() in ("x86_64", "amd64", "aarch64") else []
    errors = []
    for extra in [native, []] if native else [[]]:  # a compiler that rejects -march=native still gets a build
        flags = [*_FLAGS, *extra]
        key = "\0".join([str(ABI), " ".join(cc), version, " ".join(flags), platform.machine(), ident])
        digest = hashlib.sha256(source + key.encode()).hexdigest()[:24]
        try:
            return _load_or_build(cc, flags, _cache_dir() / f"cpu_kernel-{digest}.so")
        except KernelBuildError as e:
            errors.append(str(e))
    raise KernelBuildError("; ".join(errors))


def _load_or_build(cc: list[str], flags: list[str], path: Path) -> CpuKernel:
    """Load the cached build at ``path``, or compile one (a cached file that is not sealed, fails to load or fails the
    self-check is replaced). A fresh build is loaded from its unique temporary name before it is moved into place, so
    a bad library already mapped under ``path`` in this process can never be handed back by the dynamic loader."""
    if path.exists() and _sealed(path):
        try:
            return _open(path)
        except (OSError, AttributeError, KernelBuildError):
            pass  # foreign or failing its self-check: rebuild below
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        cmd = [*cc, *flags, "-o", tmp, str(_SOURCE)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        except (OSError, subprocess.SubprocessError) as e:
            raise KernelBuildError(f"{shlex.join(cmd)} failed to run: {e}") from None
        if proc.returncode != 0:
            raise KernelBuildError(f"{shlex.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
        _seal(Path(tmp))
        try:
            kern = _open(Path(tmp))
        except (OSError, AttributeError) as e:
            raise KernelBuildError(f"the freshly built {tmp} does not load: {e}") from None
        os.replace(tmp, path)
        kern.path = path
        return kern
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


_SEAL = b"\0breccia-cpu-kernel-sha256\0"


def _seal(path: Path) -> None:
    """Append a marker and the SHA-256 of the library (the dynamic loader ignores bytes past the ELF contents)."""
    data = path.read_bytes()
    path.write_bytes(data + _SEAL + hashlib.sha256(data).digest())


def _sealed(path: Path) -> bool:
    """Whether ``path`` is a complete library this module wrote. Checked before ``dlopen``, because glibc maps a
    truncated ELF file and then dies of SIGBUS touching the missing pages: a damaged cache must never reach it."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    n = len(_SEAL) + 32
    return len(data) > n and data[-n:-32] == _SEAL and hashlib.sha256(data[:-n]).digest() == data[-32:]


def _open(path: Path) -> CpuKernel:
    lib = ctypes.CDLL(str(path))
    abi = lib.breccia_abi
    abi.restype = ctypes.c_int64
    if abi() != ABI:
        raise KernelBuildError(f"{path} has ABI {abi()}, expected {ABI}")
    kern = CpuKernel(lib, path)
    problem = _self_check(kern)
    if problem:
        raise KernelBuildError(f"{path} fails its self-check: {problem}")
    return kern


def _self_check(kern: CpuKernel) -> str | None:
    """Compare the loaded library with the shared encoder (:func:`breccia._math.encode_float`, run by numpy) on every
    code's value, every midpoint between neighbours and the fp32 values either side of it, out-of-range values, ±0
    and fp32 subnormals, in both scale modes; and the block max on a small grid. A compiler that bends IEEE rules
    (fast-math defaults, flush-to-zero) fails here, and the eager path runs instead. ``None`` when all agree."""
    import numpy as np

    from breccia import _math as M
    from breccia._formats import decode_table, get_format
    from breccia._ops import NumpyOps

    ops = NumpyOps()
    for name in FORMATS:
        fmt = get_format(name)
        table = decode_table(name)
        vals = np.unique(np.abs(table[np.isfinite(table)])).astype(np.float32)
        mids = ((vals[1:].astype(np.float64) + vals[:-1]) / 2).astype(np.float32)
        edge = np.array([fmt.fmax * 1.5, 3e38, np.inf, 1e-45, 1e-39, 2.0**-126], dtype=np.float32)
        x = np.concatenate(
            [vals, mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(0)), edge]
        )
        x = np.concatenate([x, -x]).astype(np.float32)
        want = M.encode_float(ops, np.clip(x, -fmt.fmax, fmt.fmax), fmt).astype(np.uint8)
        xt = torch.from_numpy(x).reshape(1, -1)
        n = x.size
        for multiply in (False, True):
            out = torch.zeros(1, (n + 1) // 2 if name in PACKED else n, dtype=torch.uint8)
            kern.encode_blocks(xt, n, torch.ones(1, 1), multiply, name, out)
            got = out.numpy().reshape(-1)
            if name in PACKED:
                got = np.stack([got & 15, got >> 4], axis=-1).reshape(-1)[:n]
            bad = np.flatnonzero(got != want)
            if bad.size:
                i = int(bad[0])
                return f"{name} encodes {x[i]!r} as {int(got[i]):#x}, the reference as {int(want[i]):#x}"
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 100)) * np.exp(rng.uniform(-20, 20, (3, 1)))).astype(np.float32)
    grid = torch.empty(3, 7)
    if not kern.absmax_blocks(torch.from_numpy(x), 16, grid):
        return "absmax_blocks reports NaN/Inf in finite data"
    want_max = np.abs(np.pad(x, ((0, 0), (0, 12)))).reshape(3, 7, 16).max(axis=-1)
    if not np.array_equal(grid.numpy(), want_max):
        return "absmax_blocks differs from numpy's max |x|"
    x[1, 50] = np.nan
    if kern.absmax_blocks(torch.from_numpy(x), 16, grid):
        return "absmax_blocks misses a NaN"
    return None
