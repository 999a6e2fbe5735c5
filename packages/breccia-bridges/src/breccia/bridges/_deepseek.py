"""DeepSeek-V3 / V3.1 FP8: raw ``(data, scale)`` buffers and whole checkpoint directories.

DeepSeek ships weights as ``<name>.weight`` (F8_E4M3, ``(out, in)``) plus ``<name>.weight_scale_inv`` (F32,
``(ceil(out/128), ceil(in/128))``): 128×128 blocks, dequant direction (``weight_dequant``: ``x · s[i//128, j//128]``).
Activations are 1×128 blocks (``act_quant``: scale shape ``(*x.shape[:-1], ceil(K/128))``). V3.1 declares
``"scale_fmt": "ue8m0"``: the same fp32 scales, constrained to powers of two. All of it is
``Float8BlockScaling(block_k=128, block_m=128 | 1)`` — the bridge recognises which from the scale's shape and passes the
buffers through untouched.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from breccia._errors import FormatError, LayoutError, RecipeError
from breccia._layouts import PerBlock2D, PerBlockK
from breccia._recipes import Float8BlockScaling
from breccia._tensor import ScaledTensor, array_framework, dtype_name

from ._arrays import FRAMEWORKS, host_numpy, move
from ._files import Checkpoint, atomic_path, parse_size, write_checkpoint

__all__ = ["from_deepseek_v3", "load_deepseek_v3", "save_deepseek_v3", "to_deepseek_v3"]

SCALE_SUFFIX = "_scale_inv"
_FP8 = {"E4M3": "float8_e4m3fn", "E5M2": "float8_e5m2"}


def _scale_f32(scale: Any) -> Any:
    """fp32 scales; E8M0 bytes (``2^(b−127)``, as DeepGEMM keeps UE8M0) widen exactly, 255 (NaN) is refused."""
    name = dtype_name(scale)
    if name == "float32":
        return scale
    if name in ("float8_e8m0fnu", "uint8"):
        fw = array_framework(scale)
        raw = host_numpy(scale).view(np.uint8)
        if (raw == 255).any():
            raise FormatError("from_deepseek_v3: scale holds the E8M0 NaN byte 255")
        out = np.ldexp(np.float32(1.0), raw.astype(np.int32) - 127).astype(np.float32)
        device = getattr(scale, "device", None) if fw == "torch" else None
        return move(out, fw, device)
    raise FormatError(f"from_deepseek_v3: scale must be float32 (or E8M0 bytes); got {name}")


def _is_pow2(scale: Any) -> bool:
    s = host_numpy(scale).astype(np.float32)
    mant = s.view(np.uint32) & 0x7FFFFF
    return bool(np.all((s > 0) & np.isfinite(s) & (mant == 0)))


def from_deepseek_v3(
    data: Any,
    scale: Any,
    block_k: int = 128,
    fp8_format: str | None = None,
    *,
    scale_fmt: str | None = None,
) -> ScaledTensor:
    """A ScaledTensor over DeepSeek-V3 FP8 buffers (no copy of ``data``).

    ``scale.shape == (ceil(out/B), ceil(in/B))`` on 2-D data is a B×B weight; ``(*data.shape[:-1], ceil(K/B))`` is
    a 1×B activation (a single-row tensor matches both; it reads as 1×B, the same values). ``scale_fmt="ue8m0"``
    (V3.1) checks that every scale is a power of two and records ``power_of_2_scales=True``. ``fp8_format``
    defaults to the data's dtype (``uint8`` bytes read as E4M3, DeepSeek's format).
    """
    if fp8_format is None:
        fp8_format = "E5M2" if dtype_name(data) == "float8_e5m2" else "E4M3"
    if fp8_format not in _FP8:
        raise RecipeError(f"from_deepseek_v3: fp8_format must be 'E4M3' or 'E5M2'; got {fp8_format!r}")
    if not isinstance(block_k, int) or block_k <= 0:
        raise LayoutError(f"from_deepseek_v3: block_k must be a positive int; got {block_k!r}")
    if scale_fmt not in (None, "ue8m0"):
        raise FormatError(f"from_deepseek_v3: scale_fmt must be None or 'ue8m0'; got {scale_fmt!r}")
    for arg, arr in (("data", data), ("scale", scale)):
        if not hasattr(arr, "shape") or not hasattr(arr, "dtype"):
            raise FormatError(f"from_deepseek_v3: {arg} must be an array; got {type(arr).__name__}")
    want = _FP8[fp8_format]
    if dtype_name(data) not in (want, "uint8"):
        raise FormatError(f"from_deepseek_v3: data must be {want} (or its uint8 bytes); got {dtype_name(data)}")
    data = move(data, array_framework(data), None, want)
    scale = _scale_f32(scale)
    shape = tuple(int(n) for n in data.shape)
    sshape = tuple(int(n) for n in scale.shape)
    if not shape:
        raise LayoutError("from_deepseek_v3: data must have at least one dimension")
    nk = math.ceil(shape[-1] / block_k)
    weight = (math.ceil(shape[0] / block_k), nk) if len(shape) == 2 else None
    layout: PerBlockK | PerBlock2D
    if sshape == (*shape[:-1], nk):
        block_m, layout = 1, PerBlockK(block_k)
    elif sshape == weight:
        block_m, layout = block_k, PerBlock2D(block_k, block_k)
    else:
        raise LayoutError(
            f"from_deepseek_v3: scale.shape {sshape} matches neither {block_k}×{block_k} weight blocks "
            f"{weight} nor 1×{block_k} activation blocks {(*shape[:-1], nk)} for data of shape {shape}"
        )
    pow2 = scale_fmt == "ue8m0"
    if pow2 and not _is_pow2(scale):
        raise FormatError("from_deepseek_v3: scale_fmt='ue8m0' but some scales are not powers of two")
    recipe = Float8BlockScaling(fp8_format=fp8_format, block_k=block_k, block_m=block_m, power_of_2_scales=pow2)
    return ScaledTensor(data, scale, recipe, layout, shape)


def to_deepseek_v3(st: ScaledTensor) -> tuple[Any, Any]:
    """``(data, scale)`` in DeepSeek-V3's convention: the buffers themselves (same framework, no copy)."""
    r = st.recipe
    ok = isinstance(r, Float8BlockScaling) and (
        (isinstance(st.layout, PerBlockK) and st.layout.axis == -1)
        or (isinstance(st.layout, PerBlock2D) and st.layout.axis == -1 and st.ndim == 2 and r.block_m == r.block_k)
    )
    if not ok:
        raise RecipeError(
            f"to_deepseek_v3 needs Float8BlockScaling with 1×B blocks or B×B blocks on a 2-D tensor along its last "
            f"axis; got {r!r} with {st.layout!r}. Convert first: breccia.requantize(st, Float8BlockScaling(...))"
        )
    return st.data, st.scale


# ----------------------------------------------------------------------------------------------- checkpoints
def _quant_config(path: Path) -> dict[str, Any]:
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        return {}
    try:
        cfg = json.loads(cfg_path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"{cfg_path}: not valid JSON ({e})") from None
    q = cfg.get("quantization_config", {}) if isinstance(cfg, dict) else None
    if not isinstance(q, dict):
        raise FormatError(f"{cfg_path}: quantization_config must be an object")
    return q


def _block_from_config(q: dict[str, Any], where: Path) -> tuple[int, str | None, str]:
    if not q:
        return 128, None, "E4M3"
    if q.get("quant_method") != "fp8":
        raise FormatError(f"{where}: quantization_config.quant_method is {q.get('quant_method')!r}; expected 'fp8'")
    wbs = q.get("weight_block_size", [128, 128])
    if not (isinstance(wbs, list) and len(wbs) == 2 and wbs[0] == wbs[1] and isinstance(wbs[0], int) and wbs[0] > 0):
        raise FormatError(f"{where}: weight_block_size must be [B, B] with B > 0; got {wbs!r}")
    fmt = {"e4m3": "E4M3", "e5m2": "E5M2"}.get(str(q.get("fmt", "e4m3")).lower())
    if fmt is None:
        raise FormatError(f"{where}: quantization_config.fmt must be 'e4m3' or 'e5m2'; got {q.get('fmt')!r}")
    scale_fmt = q.get("scale_fmt")
    if scale_fmt not in (None, "ue8m0"):
        raise FormatError(f"{where}: quantization_config.scale_fmt must be 'ue8m0' if present; got {scale_fmt!r}")
    return int(wbs[0]), scale_fmt, fmt


def load_deepseek_v3(
    path: str | os.PathLike[str], *, framework: str = "numpy", device: Any = None, names: Iterable[str] | None = None
) -> dict[str, ScaledTensor | Any]:
    """Load a DeepSeek-V3-format checkpoint directory: every ``X.weight`` with a ``X.weight_scale_inv`` becomes a
    ScaledTensor under the key ``X.weight``; everything else (norms, embeddings, gates) comes back as plain arrays."""
    if framework not in FRAMEWORKS:
        raise FormatError(f"framework must be one of {FRAMEWORKS}; got {framework!r}")
    root = Path(path)
    block, scale_fmt, fmt = _block_from_config(_quant_config(root if root.is_dir() else root.parent), root)
    ckpt = Checkpoint(path)
    keys = ckpt.keys()
    scaled = {k for k in keys if k + SCALE_SUFFIX in ckpt}
    wanted = [k for k in keys if not k.endswith(SCALE_SUFFIX) or k[: -len(SCALE_SUFFIX)] not in scaled]
    out: dict[str, ScaledTensor | Any] = {}
    for key in wanted if names is None else list(names):
        if key not in scaled:
            out[key] = ckpt.read(key, framework, device)
            continue
        code, scode = ckpt.dtype(key), ckpt.dtype(key + SCALE_SUFFIX)
        want = "F8_E4M3" if fmt == "E4M3" else "F8_E5M2"
        if code not in (want, "U8") or scode not in ("F32", "F8_E8M0"):
            raise FormatError(f"{root}: tensor {key!r} is {code} with {scode} scales; DeepSeek stores {want} + F32")
        shape, sshape = ckpt.shape(key), ckpt.shape(key + SCALE_SUFFIX)
        if len(shape) != 2 or sshape != tuple(math.ceil(n / block) for n in shape):
            raise FormatError(
                f"{root}: tensor {key!r} of shape {shape} needs {SCALE_SUFFIX} of shape "
                f"{tuple(math.ceil(n / block) for n in shape)} for {block}×{block} blocks; got {sshape}"
            )
        data = ckpt.read(key, framework, device)
        scale = ckpt.read(key + SCALE_SUFFIX, framework, device)
        try:
            out[key] = from_deepseek_v3(data, scale, block, fmt, scale_fmt=scale_fmt)
        except (LayoutError, RecipeError, FormatError) as e:
            raise FormatError(f"{root}: tensor {key!r}: {e}") from None
    ckpt.close()
    return out


def save_deepseek_v3(
    tensors: Mapping[str, ScaledTensor | Any],
    directory: str | os.PathLike[str],
    *,
    max_shard_size: int | str | None = "5GB",
    config: Mapping[str, Any] | None = None,
) -> None:
    """Write a DeepSeek-V3-format checkpoint: ``X.weight`` (F8) + ``X.weight_scale_inv`` (F32) for every 128×128
    ScaledTensor, plain arrays as they are, a sharded index, and ``config.json`` with its ``quantization_config``
    (merged into ``config`` or an existing ``config.json``). Every file is written atomically."""
    root = Path(directory)
    groups, blocks = tensor_groups(tensors)
    if len(blocks) > 1:
        raise RecipeError(f"save_deepseek_v3: one checkpoint holds one block size and format; got {sorted(blocks)}")
    cfg: dict[str, Any] = dict(config) if config is not None else {}
    if config is None and (root / "config.json").is_file():
        cfg = json.loads((root / "config.json").read_text())
    if blocks:
        cfg["quantization_config"] = quant_config(*blocks.pop())
    write_checkpoint(groups, root, parse_size(max_shard_size))
    with atomic_path(root / "config.json") as tmp:
        Path(tmp).write_text(json.dumps(cfg, indent=2, sort_keys=True))


def quant_config(block: int, fmt: str, pow2: bool) -> dict[str, Any]:
    """The ``quantization_config`` DeepSeek-V3 (V3.1 with ``pow2``) declares for ``block``×``block`` FP8 weights."""
    q: dict[str, Any] = {"quant_method": "fp8", "fmt": fmt.lower(), "weight_block_size": [block, block],
                         "activation_scheme": "dynamic"}  # fmt: skip
    if pow2:
        q["scale_fmt"] = "ue8m0"
    return q


def tensor_groups(
    tensors: Mapping[str, ScaledTensor | Any],
) -> tuple[list[tuple[dict[str, Any], dict[str, str]]], set[tuple[int, str, bool]]]:
    """Per tensor ``(arrays, {})`` in DeepSeek's naming, and the ``(block, fmt, pow2)`` set the weights use."""
    groups: list[tuple[dict[str, Any], dict[str, str]]] = []
    blocks: set[tuple[int, str, bool]] = set()
    for name, value in tensors.items():
        if isinstance(value, ScaledTensor):
            r = value.recipe
            if not (isinstance(value.layout, PerBlock2D) and isinstance(r, Float8BlockScaling)):
                raise RecipeError(
                    f"save_deepseek_v3: tensor {name!r} is {r!r} with {value.layout!r}; DeepSeek checkpoints hold "
                    f"Float8BlockScaling(block_m=block_k) weights. Convert with breccia.requantize first"
                )
            data, scale = to_deepseek_v3(value)
            blocks.add((r.block_k, r.fp8_format, r.power_of_2_scales))
            groups.append(({name: data, name + SCALE_SUFFIX: scale}, {}))
        else:
            groups.append(({name: value}, {}))
    return groups, blocks
