"""``breccia inspect``: what a checkpoint holds, from the safetensors headers alone.

:func:`scan` turns a ``.safetensors`` file, a sharded directory or an HF model directory into one :class:`Entry`
per *logical* tensor, whichever convention stored it:

- breccia: ``name.data`` / ``name.scale`` / … with a ``name.config`` metadata record;
- compressed-tensors: ``config.json`` ``quantization_config`` (or ``compression_config``) with
  ``quant_method: "compressed-tensors"``; module ``M`` is ``M.weight`` / ``M.weight_packed`` + ``M.weight_scale`` …;
- DeepSeek-V3: ``X.weight`` (F8) + ``X.weight_scale_inv`` (F32), block size from ``config.json``;
- anything else: plain tensors.

No tensor is read, with one exception: the 16-byte ``weight_shape`` of compressed-tensors' ``pack-quantized`` INT
modules, the only place that format keeps the logical width (packed int32 words round it up). ``breccia convert``
plans its work from the same scan, so what inspect shows is what convert sees.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from breccia._errors import BrecciaError, FormatError
from breccia._layouts import Layout, PerBlock2D
from breccia._recipes import Float8BlockScaling, Recipe, recipe_from_dict

from ._compressed_tensors import _LOCAL, _args, _quant_config, _scheme, _structure
from ._compressed_tensors_formats import _recipe
from ._deepseek import SCALE_SUFFIX, _block_from_config
from ._files import _NP, INDEX_NAME, Checkpoint
from ._safetensors import PARTS, parse_config

__all__ = ["Entry", "Source", "recipe_label", "scan"]

FLOAT_CODES = ("F16", "BF16", "F32", "F64")


@dataclass
class Entry:
    """One logical tensor: where it lives, its logical shape, how it is stored and what that costs."""

    name: str
    file: str
    shape: tuple[int, ...]
    dtype: str  # safetensors code of a plain tensor, of the data buffer for a quantized one
    keys: list[str]
    nbytes: int
    kind: str = "plain"  # plain | breccia | compressed-tensors | deepseek
    recipe: Recipe | None = None
    layout: Layout | None = None
    module: str = ""  # compressed-tensors module name

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def floating(self) -> bool:
        """A real-valued tensor: plain float storage, or quantized (its logical values are real)."""
        return self.recipe is not None or self.dtype in FLOAT_CODES

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "file": self.file, "shape": list(self.shape), "dtype": self.dtype, "kind": self.kind,
            "recipe": self.recipe.to_dict() if self.recipe else None, "recipe_label": label(self),
            "layout": self.layout.to_dict() if self.layout else None, "bytes": self.nbytes,
            "bits_per_value": bits_per_value(self.nbytes, self.numel),
        }  # fmt: skip


@dataclass
class Source:
    """A scanned checkpoint: its files in order, the logical tensors and the configuration around them."""

    path: Path
    root: Path
    kind: str
    files: list[str]
    indexed: bool
    entries: list[Entry]
    config: dict[str, Any] | None  # config.json, when the checkpoint lives in an HF-style directory
    quant: dict[str, Any] = field(default_factory=dict)  # compressed-tensors / DeepSeek quantization_config
    file_bytes: dict[str, int] = field(default_factory=dict)

    def by_file(self) -> dict[str, list[Entry]]:
        out: dict[str, list[Entry]] = {f: [] for f in self.files}
        for e in self.entries:
            out[e.file].append(e)
        return out


def bits_per_value(nbytes: int, numel: int) -> float:
    return round(8 * nbytes / numel, 4) if numel else 0.0


def recipe_label(r: Recipe) -> str:
    """``Name(changed=field, …)``: only the fields that differ from the recipe's defaults (short enough for a table)."""
    default = type(r)()
    diff = [f"{f.name}={getattr(r, f.name)!r}" for f in fields(r) if getattr(r, f.name) != getattr(default, f.name)]
    return f"{r.name}({', '.join(diff)})"


def label(e: Entry) -> str:
    return recipe_label(e.recipe) if e.recipe is not None else e.dtype


def _read_config(root: Path) -> dict[str, Any] | None:
    path = root / "config.json"
    if not path.is_file():
        return None
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise FormatError(f"{path}: must hold a JSON object; got {type(cfg).__name__}")
    return cfg


def _quant_method(cfg: dict[str, Any] | None) -> Any:
    if cfg is None:
        return None
    text = cfg.get("text_config")
    for c in (cfg, text):
        if isinstance(c, dict):
            for k in ("quantization_config", "compression_config"):
                if isinstance(c.get(k), dict):
                    return c[k].get("quant_method")
    return None


def scan(path: str | os.PathLike[str]) -> Source:
    """Scan ``path`` (headers only) into a :class:`Source`; a missing or malformed input is a FormatError."""
    p = Path(path)
    if not p.exists():
        raise FormatError(f"{path}: no such file or directory")
    if p.is_file() and not p.name.endswith((".safetensors", ".json")):
        raise FormatError(f"{path}: expected a .safetensors file, a {INDEX_NAME} or a checkpoint directory")
    ckpt = Checkpoint(p)
    try:
        root = ckpt.root
        files = list(ckpt._files)
        sizes = {f: (root / f).stat().st_size for f in files}
        cfg = _read_config(root) if p.is_dir() or p.name == INDEX_NAME else None
        method = _quant_method(cfg)
        keys = ckpt.keys()
        owned: set[str] = set()
        entries: list[Entry] = []
        kind, quant = "plain", {}
        if method == "compressed-tensors":
            kind, quant = "compressed-tensors", _quant_config(root)
            entries += _ct_entries(ckpt, quant, root, owned)
        elif method == "fp8" or any(k + SCALE_SUFFIX in ckpt for k in keys):
            kind = "deepseek"
            q = (cfg or {}).get("quantization_config") or {}
            quant = q if isinstance(q, dict) else {}
            entries += _deepseek_entries(ckpt, quant, root, owned)
        breccia = _breccia_entries(ckpt, owned)
        if breccia and kind == "plain":
            kind = "breccia"
        entries += breccia
        for key in keys:
            if key not in owned:
                entries.append(Entry(key, ckpt.weight_map[key], ckpt.shape(key), ckpt.dtype(key), [key],
                                     _nbytes(ckpt, key)))  # fmt: skip
        entries.sort(key=lambda e: e.name)
        indexed = ((root / INDEX_NAME).is_file() and p.is_dir()) or p.name == INDEX_NAME
        return Source(p, root, kind, files, indexed, entries, cfg, quant, sizes)
    finally:
        ckpt.close()


def _nbytes(ckpt: Checkpoint, key: str) -> int:
    begin, end = ckpt.file_of(key).header[key]["data_offsets"]
    return int(end) - int(begin)


def _breccia_entries(ckpt: Checkpoint, owned: set[str]) -> list[Entry]:
    out = []
    for key in list(ckpt.weight_map):
        if not key.endswith(".data") or key in owned:
            continue
        name = key[: -len(".data")]
        cfg = ckpt.index_metadata.get(f"{name}.config")
        if not isinstance(cfg, str):
            cfg = ckpt.file_of(key).metadata.get(f"{name}.config")
        if cfg is None:
            continue
        recipe, layout, shape = parse_config(cfg, f"{ckpt.root}: tensor {name!r}")
        parts = [f"{name}.{p}" for p in PARTS if f"{name}.{p}" in ckpt]
        owned.update(parts)
        nbytes = sum(_nbytes(ckpt, k) for k in parts)
        out.append(Entry(name, ckpt.weight_map[key], shape, ckpt.dtype(key), parts, nbytes, "breccia", recipe, layout))
    return out


def _deepseek_entries(ckpt: Checkpoint, quant: dict[str, Any], root: Path, owned: set[str]) -> list[Entry]:
    block, scale_fmt, fmt = _block_from_config(quant, root)
    recipe = Float8BlockScaling(fp8_format=fmt, block_k=block, block_m=block, power_of_2_scales=scale_fmt == "ue8m0")
    out = []
    for key in list(ckpt.weight_map):
        if key + SCALE_SUFFIX not in ckpt:
            continue
        shape = ckpt.shape(key)
        if len(shape) != 2 or ckpt.dtype(key) not in ("F8_E4M3", "F8_E5M2", "U8"):
            raise FormatError(f"{root}: tensor {key!r} has a {SCALE_SUFFIX} but is {ckpt.dtype(key)} {shape}; "
                              f"DeepSeek-V3 stores 2-D F8 weights")  # fmt: skip
        keys = [key, key + SCALE_SUFFIX]
        owned.update(keys)
        layout = PerBlock2D(block, block)
        out.append(Entry(key, ckpt.weight_map[key], shape, ckpt.dtype(key), keys,
                         sum(_nbytes(ckpt, k) for k in keys), "deepseek", recipe, layout))  # fmt: skip
    return out


def _ct_entries(ckpt: Checkpoint, quant: dict[str, Any], root: Path, owned: set[str]) -> list[Entry]:
    out = []
    names = ckpt.keys()
    for module in sorted(k[: -len(".weight_scale")] for k in names if k.endswith(".weight_scale")):
        found = _scheme(module, quant, root)
        if found is None:
            continue
        gname, scheme = found
        args = _args(scheme.get("weights"), f"{root}: config_groups.{gname}.weights (module {module!r})")
        scale_dtype = np.dtype(_NP.get(ckpt.dtype(f"{module}.weight_scale"), np.uint8)).name
        recipe, layout = _recipe(args, scale_dtype, f"{root}: {module}")
        record = ckpt.file_of(f"{module}.weight_scale").metadata.get(f"{module}.breccia")
        if record is not None:
            try:
                mine = recipe_from_dict(json.loads(record)["recipe"])
                if _structure(mine) == _structure(recipe):
                    recipe = mine
            except (BrecciaError, KeyError, TypeError, ValueError):
                pass  # a foreign or damaged record: the config's reading stands (load_compressed_tensors refuses it)
        keys = [f"{module}.{k}" for k in _LOCAL if f"{module}.{k}" in ckpt]
        data = f"{module}.weight" if f"{module}.weight" in ckpt else f"{module}.weight_packed"
        if data not in ckpt:
            raise FormatError(f"{root}: module {module!r} has a weight_scale but no weight or weight_packed")
        rows, cols = (*ckpt.shape(data), 0, 0)[:2]
        if f"{module}.weight_shape" in ckpt:
            shape = tuple(int(n) for n in ckpt.read(f"{module}.weight_shape").reshape(-1))
        elif data.endswith("_packed"):
            shape = (rows, cols * 2 if recipe.element.bits == 4 else cols * 4 // 3)
        else:
            shape = (rows, cols)
        owned.update(keys)
        nbytes = sum(_nbytes(ckpt, k) for k in keys)
        out.append(Entry(f"{module}.weight", ckpt.weight_map[data], shape, ckpt.dtype(data), keys, nbytes,
                         "compressed-tensors", recipe, layout, module))  # fmt: skip
    return out
