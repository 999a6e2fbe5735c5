"""One shard of ``breccia convert``: read a source shard's tensors, quantize the selected ones, write one output shard.

This is the unit of work of every execution path (in process, a process pool, a ray task), so it takes and returns
plain picklable values and holds at most one source shard's outputs plus the tensor being converted. The output
bytes depend only on the task, never on which worker ran it or when: safetensors orders the header itself, metadata
holds no timestamps, and entries are converted in name order.

Per selected tensor:

- **re-packed**: the source is already quantized with the target recipe and layout (a breccia file, DeepSeek FP8
  128×128, a compressed-tensors module) → its buffers are written in the target format's naming, bytes unchanged;
- **requantized**: the source is quantized with another recipe → :func:`breccia.requantize` (exact code re-packing
  where the target represents the source exactly, else dequantize → cast);
- **quantized**: a plain float tensor → :func:`breccia.cast`.

SQNR (dB) is measured against the source values (dequantized, for quantized sources) while the tensor is in memory.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from breccia._api import cast, dequantize, requantize
from breccia._errors import BrecciaError, FormatError
from breccia._layouts import Layout, layout_from_dict
from breccia._recipes import Recipe, recipe_from_dict
from breccia._tensor import ScaledTensor

from . import _compressed_tensors as ct
from . import _deepseek as ds
from . import _safetensors as bs
from ._files import Checkpoint, write_file
from ._inspect import Entry, recipe_label

__all__ = ["ShardTask", "file_digest", "run_shard"]


@dataclass(frozen=True)
class ShardTask:
    """Everything one worker needs: no open files, no callables (a process pool or ray pickles it)."""

    src: str  # the checkpoint path as scanned
    kind: str  # the source's convention (inspect's Source.kind)
    file: str  # the source shard's file name; the output shard gets the same name
    out_dir: str
    fmt: str
    recipe: dict[str, Any]
    layout: dict[str, Any] | None
    entries: tuple[Entry, ...]
    selected: frozenset[str]
    quant: dict[str, Any]


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def sqnr_db(ref: Any, got: Any) -> float | None:
    """``10·log10(Σx² / Σ(x−y)²)``; ``None`` for an exact result (infinite SQNR) or an all-zero tensor."""
    x = np.asarray(ref, np.float64)
    err = float(np.sum((x - np.asarray(got, np.float64)) ** 2))
    sig = float(np.sum(x * x))
    if err == 0.0 or sig == 0.0 or not math.isfinite(err / sig):
        return None
    return 10.0 * math.log10(sig / err)


def _load(ckpt: Checkpoint, e: Entry, task: ShardTask) -> Any:
    """The logical tensor ``e``: a host-numpy ScaledTensor for quantized storage, else the plain array."""
    if e.kind == "plain":
        return ckpt.read(e.keys[0])
    where = f"{task.src}: tensor {e.name!r}"
    try:
        if e.kind == "breccia":
            assert e.recipe is not None and e.layout is not None
            bufs = {k[len(e.name) + 1 :]: ckpt.read(k) for k in e.keys}
            bufs = bs._relabel(bufs, e.recipe, "numpy")
            return ScaledTensor(bufs["data"], bufs["scale"], e.recipe, e.layout, e.shape,
                                global_scale=bufs.get("global_scale"), zero_point=bufs.get("zero_point"))  # fmt: skip
        if e.kind == "deepseek":
            block, scale_fmt, fmt = ds._block_from_config(task.quant, Path(task.src))
            return ds.from_deepseek_v3(ckpt.read(e.keys[0]), ckpt.read(e.keys[1]), block, fmt, scale_fmt=scale_fmt)
        meta = ckpt.file_of(e.keys[0]).metadata
        got = ct.load_module(ckpt, task.quant, Path(task.src), e.module, meta)
        if got is None:
            raise FormatError(f"{where}: the compressed-tensors config no longer covers module {e.module!r}")
        return got[0]
    except FormatError:
        raise
    except BrecciaError as err:
        raise FormatError(f"{where}: {err}") from None


def _convert_one(value: Any, recipe: Recipe, layout: Layout | None) -> tuple[Any, str, Any]:
    """``(output, action, reference values for SQNR or None when exact)``."""
    if isinstance(value, ScaledTensor):
        axis = value.layout.blocked_axis
        target = layout or recipe.default_layout(-1 if axis is None else axis)
        if value.recipe == recipe and value.layout == target:
            return value, "repacked", None
        return requantize(value, recipe, layout=layout), "requantized", dequantize(value)
    x = value if value.dtype.kind == "f" or value.dtype.name == "bfloat16" else value.astype(np.float32)
    return cast(x, recipe, layout=layout), "quantized", x


def _groups(fmt: str, outputs: dict[str, Any]) -> tuple[list[tuple[dict[str, Any], dict[str, str]]], dict[str, Any]]:
    """The target format's per-tensor groups (the save_* functions' own code) and what its config needs."""
    if fmt == "breccia":
        return bs.tensor_groups(outputs), {}
    if fmt == "compressed-tensors":
        groups, schemes = ct.tensor_groups(outputs)
        return groups, {"schemes": [[f, asdict(a), mods] for f, a, mods in schemes.values()]}
    groups, blocks = ds.tensor_groups(outputs)
    return groups, {"blocks": sorted([list(b) for b in blocks])}


def run_shard(task: ShardTask, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Convert one shard and write it (atomically) to ``out_dir/file``; return its journal record.

    ``progress(bytes, tensors)`` is called after each tensor (in-process runs draw a live bar from it).
    """
    recipe = recipe_from_dict(task.recipe)
    layout = layout_from_dict(task.layout) if task.layout else None
    ckpt = Checkpoint(task.src)
    outputs: dict[str, Any] = {}
    actions = {"quantized": 0, "requantized": 0, "repacked": 0, "copied": 0}
    sqnr: list[list[Any]] = []
    try:
        src_meta = ckpt._file(task.file).metadata
        for e in task.entries:
            value = _load(ckpt, e, task)
            if e.name in task.selected:
                try:
                    out, action, ref = _convert_one(value, recipe, layout)
                except BrecciaError as err:
                    raise type(err)(f"{task.src}: tensor {e.name!r} {e.shape}: {err}") from None
                db = None if ref is None else sqnr_db(ref, dequantize(out))
                sqnr.append([recipe_label(recipe), db, action])
                del ref
            else:
                out, action = value, "copied"
            actions[action] += 1
            outputs[e.name] = out
            del value
            if progress is not None:
                progress(e.nbytes, 1)
    finally:
        ckpt.close()
    groups, extra = _groups(task.fmt, outputs)
    # the source shard's own metadata ({"format": "pt"} …) stays; per-tensor records are rewritten by the groups
    meta = {k: v for k, v in src_meta.items() if not k.endswith((".config", ".breccia"))}
    tensors: dict[str, Any] = {}
    group_meta: dict[str, str] = {}
    for arrays, m in groups:
        tensors.update(arrays)
        group_meta.update(m)
    meta.update(group_meta)
    path = Path(task.out_dir) / task.file
    write_file(tensors, path, meta)
    total = sum(int((v[0] if isinstance(v, tuple) else v).nbytes) for v in tensors.values())
    del outputs, tensors, groups
    return {
        "file": task.file, "size": path.stat().st_size, "sha256": file_digest(path), "keys": sorted(meta_keys(path)),
        "meta": group_meta, "total_size": total, "tensors": len(task.entries),
        "bytes_in": sum(e.nbytes for e in task.entries), "actions": actions, "sqnr": sqnr,
        **extra,
    }  # fmt: skip


def meta_keys(path: Path) -> list[str]:
    """The tensor names of a written safetensors file (header only)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return list(f.keys())
