"""compressed-tensors checkpoints (the format vLLM and Hugging Face ``transformers`` load) ↔ ScaledTensors.

A checkpoint is a directory of safetensors files plus ``config.json`` whose ``quantization_config`` names
``quant_method: "compressed-tensors"``, a storage ``format`` and ``config_groups`` of schemes (``targets`` + ``weights``
QuantizationArgs). Each quantized Linear ``M`` stores ``M.weight`` / ``M.weight_packed``, ``M.weight_scale`` and, by
format, ``M.weight_shape``, ``M.weight_zero_point``, ``M.weight_global_scale``. The bit conversions live in
:mod:`._compressed_tensors_formats`.

Names: both functions speak *state-dict* names — a ScaledTensor is keyed by its full weight name
(``"model.layers.0.mlp.down_proj.weight"``), exactly like the plain arrays beside it (norms, embeddings), so a load
returns a dict a model's ``load_state_dict`` understands once dequantized. The writer lists module names as the
scheme ``targets`` (no model is needed to resolve them); the reader also accepts class-name targets (``"Linear"``)
when only one scheme could apply. compressed-tensors has no field for some breccia recipe options (MX scale rounding,
INT ``symmetric_range``, power-of-two FP8 scales, NVFP4 rounding options) nor for NVFP4's exact global scale: the
writer keeps them in the shard metadata (``"<module>.breccia"``), used by the reader only where they agree with the
config and the stored tensors. compressed-tensors itself never reads them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from breccia._errors import BrecciaError, FormatError
from breccia._recipes import NVFP4BlockScaling, Recipe, recipe_from_dict, scale_kind
from breccia._tensor import ScaledTensor

from ._arrays import FRAMEWORKS, convert
from ._compressed_tensors_formats import FORMATS, Args, Parts, decode, encode
from ._files import Checkpoint, atomic_path, parse_size, write_checkpoint

__all__ = ["load_compressed_tensors", "save_compressed_tensors"]

_LOCAL = ("weight", "weight_packed", "weight_scale", "weight_shape", "weight_zero_point", "weight_global_scale")
_STRATEGIES = ("tensor", "channel", "group", "block", "tensor_group")


def save_compressed_tensors(
    weights: Mapping[str, ScaledTensor | Any],
    directory: str | os.PathLike[str],
    *,
    max_shard_size: int | str | None = None,
    extra_config: Mapping[str, Any] | None = None,
) -> None:
    """Write a compressed-tensors checkpoint directory: safetensors (sharded past ``max_shard_size``) + ``config.json``.

    ``weights`` maps state-dict names to ScaledTensors (keys ending in ``.weight``; any framework) or plain arrays
    (written unchanged). ``extra_config`` holds the rest of ``config.json`` (``architectures``, sizes …); the
    ``quantization_config`` is breccia's to write. ``config.json`` is replaced, not merged. Files are written
    atomically, ``config.json`` last, so a reader never sees a config whose tensors are missing.
    """
    if not isinstance(weights, Mapping):
        raise FormatError(f"save_compressed_tensors needs a dict of name → ScaledTensor or array; got {type(weights)}")
    if extra_config is not None and (not isinstance(extra_config, Mapping) or "quantization_config" in extra_config):
        raise FormatError("save_compressed_tensors: extra_config must be a dict without 'quantization_config' "
                          "(the bridge writes that from the tensors)")  # fmt: skip
    groups, schemes = tensor_groups(weights)
    cfg = dict(extra_config or {})
    if schemes:
        cfg["quantization_config"] = quantization_config(list(schemes.values()))
    root = Path(directory)
    write_checkpoint(groups, root, parse_size(max_shard_size))
    with atomic_path(root / "config.json") as tmp:
        Path(tmp).write_text(json.dumps(cfg, indent=2, sort_keys=True))


def tensor_groups(
    weights: Mapping[str, ScaledTensor | Any],
) -> tuple[list[tuple[dict[str, Any], dict[str, str]]], dict[str, tuple[str, Args, list[str]]]]:
    """Per tensor ``(arrays, metadata)`` in compressed-tensors' naming, and the schemes seen (key → format, args,
    modules) in first-seen order. Shared by :func:`save_compressed_tensors` and ``breccia convert`` (per shard)."""
    groups: list[tuple[dict[str, Any], dict[str, str]]] = []
    schemes: dict[str, tuple[str, Args, list[str]]] = {}
    written: set[str] = set()
    for name, value in weights.items():
        if not isinstance(name, str) or not name:
            raise FormatError(f"save_compressed_tensors needs non-empty string names; got {name!r}")
        if isinstance(value, ScaledTensor):
            if not name.endswith(".weight"):
                raise FormatError(f"save_compressed_tensors: ScaledTensor {name!r} needs a weight name ending in "
                                  f"'.weight' (e.g. 'model.layers.0.mlp.down_proj.weight'); compressed-tensors "
                                  f"stores '<module>.weight_scale' beside it")  # fmt: skip
            module = name[: -len(".weight")]
            fmt, args, tensors, record = encode(value, name)
            key = json.dumps([fmt, args.to_json()], sort_keys=True)
            schemes.setdefault(key, (fmt, args, []))[2].append(module)
            record = {"recipe": value.recipe.to_dict(), **record}
            group = ({f"{module}.{k}": v for k, v in tensors.items()}, {f"{module}.breccia": json.dumps(record)})
        elif hasattr(value, "shape") and hasattr(value, "dtype"):
            group = ({name: value}, {})
        else:
            raise FormatError(f"save_compressed_tensors: {name!r} is {type(value).__name__}; expected an array")
        clash = written.intersection(group[0])
        if clash:
            raise FormatError(f"save_compressed_tensors: tensor name {sorted(clash)[0]!r} would be written twice")
        written.update(group[0])
        groups.append(group)
    return groups, schemes


def quantization_config(schemes: list[tuple[str, Args, list[str]]]) -> dict[str, Any]:
    """The ``quantization_config`` of ``config.json`` for these ``(format, weights args, modules)`` schemes."""
    formats = {fmt for fmt, _, _ in schemes}
    config_groups = {
        f"group_{i}": {
            "targets": sorted(mods),
            "weights": args.to_json(),
            "input_activations": None,
            "output_activations": None,
            "format": fmt,
        }
        for i, (fmt, args, mods) in enumerate(schemes)
    }
    return {
        "quant_method": "compressed-tensors", "format": formats.pop() if len(formats) == 1 else "mixed-precision",
        "quantization_status": "compressed", "config_groups": config_groups, "ignore": [],
        "kv_cache_scheme": None, "global_compression_ratio": None, "sparsity_config": {}, "transform_config": {},
    }  # fmt: skip


# ------------------------------------------------------------------------------------------------ reading
def _quant_config(root: Path) -> dict[str, Any]:
    path = root / "config.json"
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file; a compressed-tensors checkpoint keeps its config there") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"{path}: not valid JSON ({e})") from None
    text = cfg.get("text_config") if isinstance(cfg, dict) else None
    q = next((c[k] for c in (cfg, text) if isinstance(c, dict) for k in ("quantization_config", "compression_config")
              if k in c), None)  # fmt: skip
    if not isinstance(q, dict):
        raise FormatError(f"{path}: needs a 'quantization_config' object (compressed-tensors); got {q!r}")
    if q.get("quant_method") != "compressed-tensors":
        raise FormatError(f"{path}: quantization_config.quant_method is {q.get('quant_method')!r}; "
                          f"expected 'compressed-tensors'")  # fmt: skip
    if not isinstance(q.get("config_groups"), dict) or not isinstance(q.get("ignore", []) or [], list):
        raise FormatError(f"{path}: quantization_config needs 'config_groups' (an object) and 'ignore' (a list)")
    return q


def _int(raw: dict[str, Any], key: str, where: str, default: Any = ...) -> Any:
    v = raw.get(key, default)
    if v is ...:
        raise FormatError(f"{where}.{key} is missing")
    if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
        raise FormatError(f"{where}.{key} must be an int; got {v!r}")
    return v


def _args(raw: Any, where: str) -> Args:
    """Parse a ``weights`` QuantizationArgs object the way compressed-tensors does, refusing what it would refuse."""
    if not isinstance(raw, dict):
        raise FormatError(f"{where} must be an object; got {raw!r}")
    bits, group = _int(raw, "num_bits", where), _int(raw, "group_size", where, None)
    typ = raw.get("type", ...)
    typ = typ.lower() if isinstance(typ, str) else typ
    if typ not in ("int", "float"):
        raise FormatError(f"{where}.type must be 'int' or 'float'; got {'missing' if typ is ... else repr(typ)}")
    strategy = raw.get("strategy") or ("tensor" if group is None else "channel" if group == -1 else "group")
    strategy = strategy.lower() if isinstance(strategy, str) else strategy
    block = raw.get("block_structure")
    if isinstance(block, str) and re.fullmatch(r"\d+x\d+", block):
        block = [int(v) for v in block.split("x")]
    ok = isinstance(block, list) and len(block) == 2 and all(type(v) is int and v > 0 for v in block)
    if block is not None and not ok:
        raise FormatError(f"{where}.block_structure must be [rows, cols] of positive ints; got {block!r}")
    sym, dyn, sd = raw.get("symmetric", True), raw.get("dynamic", False), raw.get("scale_dtype")
    if strategy not in _STRATEGIES or not isinstance(sym, bool) or dyn is not False:
        raise FormatError(f"{where}: strategy {strategy!r}, symmetric {sym!r}, dynamic {dyn!r} — stored weights need "
                          f"strategy in {_STRATEGIES}, symmetric true/false and dynamic false")  # fmt: skip
    if sd is not None and not isinstance(sd, str):
        raise FormatError(f"{where}.scale_dtype must be a torch dtype name; got {sd!r}")
    return Args(bits, typ, strategy, None if group == -1 else group, tuple(block) if block else None, sym,
                sd.removeprefix("torch.") if sd else None)  # fmt: skip


def _match(name: str, target: Any) -> bool:
    if not isinstance(target, str):
        return False
    return re.match(target[3:], name) is not None if target.startswith("re:") else target == name


def _scheme(module: str, q: dict[str, Any], where: Path) -> tuple[str, dict[str, Any]] | None:
    """The config group that applies to ``module`` (by name or regex; a class-name target if only one could)."""
    if any(_match(module, t) for t in q.get("ignore") or []):
        return None
    groups: list[tuple[str, dict[str, Any], list[Any]]] = [
        (g, s, s["targets"] if isinstance(s.get("targets"), list) else [])
        for g, s in q["config_groups"].items()
        if isinstance(s, dict) and s.get("weights") is not None
    ]
    named = [(g, s) for g, s, targets in groups if any(_match(module, t) for t in targets)]
    if named:
        return named[0]
    # class names ("Linear") need the model to resolve; without it a class target is usable only if it is the only one
    loose = [(g, s) for g, s, targets in groups if any(isinstance(t, str) and t[:1].isupper() for t in targets)]
    if len(loose) == 1:
        return loose[0]
    raise FormatError(
        f"{where}: no config group names module {module!r} and {len(loose)} groups target classes "
        f"({[g for g, _ in loose]}); breccia matches names and regexes, and a class target only when it is the only one"
    )


def _structure(r: Recipe) -> tuple[Any, ...]:
    return type(r), r.element, scale_kind(r), r.has_global_scale, r.has_zero_point, r.default_layout(-1)


def _overlay(parts: Parts, record: dict[str, Any], gs: Any, where: str) -> Parts:
    """Apply breccia's own record (recipe options, exact NVFP4 global scale) where it matches what the file holds."""
    try:
        mine: Recipe = recipe_from_dict(record["recipe"])
        exact = record.get("global_scale")
        g = None if exact is None else np.asarray(float.fromhex(exact), np.float32)
    except (BrecciaError, KeyError, TypeError, ValueError) as e:
        raise FormatError(f"{where}.breccia metadata is not a breccia record ({e})") from None
    if (
        parts.global_scale is not None
        and g is not None
        and record.get("weight_global_scale") == float(gs.flat[0]).hex()
    ):
        parts.global_scale = g
    one_level = isinstance(mine, NVFP4BlockScaling) and not mine.per_tensor_scale
    if one_level and isinstance(parts.recipe, NVFP4BlockScaling) and parts.global_scale == 1:
        parts.recipe, parts.global_scale = NVFP4BlockScaling(per_tensor_scale=False), None  # written with g = 1
    if _structure(mine) == _structure(parts.recipe):
        parts.recipe = mine
    return parts


def load_compressed_tensors(
    directory: str | os.PathLike[str], *, framework: str = "numpy", device: Any = None
) -> dict[str, Any]:
    """Read a compressed-tensors checkpoint directory into ``{state-dict name: ScaledTensor | array}``.

    Each quantized module ``M`` comes back as one ScaledTensor under ``"M.weight"`` (in ``framework``: numpy, torch,
    jax or mlx; on ``device`` for torch and jax); every other tensor (norms, embeddings, activation scales) comes back
    unchanged under its own name. Foreign tensors are converted on the host, then moved.
    """
    if framework not in FRAMEWORKS:
        raise FormatError(f"framework must be one of {FRAMEWORKS}; got {framework!r}")
    root = Path(directory)
    q = _quant_config(root)
    ckpt = Checkpoint(root)
    try:
        return _load(ckpt, q, root, framework, device)
    finally:
        ckpt.close()


def _load(ckpt: Checkpoint, q: dict[str, Any], root: Path, framework: str, device: Any) -> dict[str, Any]:
    meta = ckpt.metadata()
    out: dict[str, Any] = {}
    used: set[str] = set()
    names = ckpt.keys()
    for module in sorted(k[: -len(".weight_scale")] for k in names if k.endswith(".weight_scale")):
        got = load_module(ckpt, q, root, module, meta)
        if got is None:
            continue
        st, keys = got
        out[f"{module}.weight"] = convert(st, framework, device)
        used.update(keys)
    for key in names:
        if key not in used:
            out[key] = ckpt.read(key, framework, device)
    return out


def load_module(
    ckpt: Checkpoint, q: dict[str, Any], root: Path, module: str, meta: Mapping[str, str]
) -> tuple[ScaledTensor, list[str]] | None:
    """Module ``module`` as a host-numpy ScaledTensor and the tensor keys it used (``None``: the config ignores it).

    Reads only that module's tensors, so ``breccia convert`` can stream a checkpoint shard by shard."""
    found = _scheme(module, q, root)
    if found is None:
        return None
    gname, scheme = found
    where = f"{root}: module {module!r}"
    fmt = scheme.get("format") or q.get("format")
    if fmt not in FORMATS:
        raise FormatError(f"{where}: config group {gname!r} has format {fmt!r}; breccia reads {FORMATS}")
    if f"{module}.weight_g_idx" in ckpt:
        raise FormatError(f"{where}: activation reordering (weight_g_idx) is not supported")
    args = _args(scheme["weights"], f"{root}: config_groups.{gname}.weights (module {module!r})")
    keys = [f"{module}.{k}" for k in _LOCAL if f"{module}.{k}" in ckpt]
    tensors = {k[len(module) + 1 :]: ckpt.read(k) for k in keys}
    parts = decode(fmt, args, tensors, f"{root}: {module}")
    if f"{module}.breccia" in meta:
        try:
            record = json.loads(meta[f"{module}.breccia"])
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise FormatError(f"{where}: metadata '{module}.breccia' is not a JSON object")
        parts = _overlay(parts, record, tensors.get("weight_global_scale"), f"{root}: {module}")
    try:
        st = ScaledTensor(parts.data, parts.scale, parts.recipe, parts.layout, parts.shape,
                          parts.global_scale, parts.zero_point)  # fmt: skip
    except BrecciaError as e:
        raise FormatError(f"{where}: {module}.weight_* do not form a {parts.recipe.name} tensor: {e}") from None
    return st, keys
