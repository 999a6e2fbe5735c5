"""breccia's safetensors convention: ``name.data`` / ``name.scale`` (+ ``name.global_scale``, ``name.zero_point``)
tensors, and ``name.config`` metadata holding the recipe, the layout and the logical shape as JSON.

Data is stored under its real safetensors dtype (``F8_E4M3``, ``F8_E5M2``, ``F4`` for packed E2M1, ``F8_E8M0`` and
``F8_E4M3`` scales), so a plain ``safetensors.torch.load_file`` of a breccia file returns ``torch.float8_e4m3fn``
tensors and other readers see ordinary tensors. Plain (unquantized) arrays in the same dict are stored as they are
and come back from :func:`load_safetensors` unchanged, so a load → save keeps the whole file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from breccia._errors import BrecciaError, FormatError
from breccia._layouts import layout_from_dict
from breccia._recipes import Recipe, recipe_from_dict, scale_kind
from breccia._tensor import ScaledTensor

from ._arrays import FRAMEWORKS, move
from ._files import Checkpoint, parse_size, write_checkpoint

__all__ = ["SafetensorsReader", "load_safetensors", "open_safetensors", "save_safetensors"]

PARTS = ("data", "scale", "global_scale", "zero_point")
_MAX_NDIM = 64
_SCALE_CODE = {"fp32": "F32", "fp16": "F16", "bf16": "BF16", "e8m0": "F8_E8M0", "e4m3": "F8_E4M3"}


def data_code(recipe: Recipe) -> str:
    """The safetensors dtype code breccia writes for ``recipe``'s data."""
    fmt = recipe.element
    if fmt.storage == "fp8":
        return "F8_E4M3" if fmt.name == "E4M3" else "F8_E5M2"
    if fmt.name == "E2M1":
        return "F4"
    return "I8" if fmt.storage == "int8" else "U8"


def _parts(st: ScaledTensor) -> dict[str, Any]:
    return {p: getattr(st, p) for p in PARTS if getattr(st, p) is not None}


def config_of(st: ScaledTensor) -> str:
    return json.dumps(
        {"format": "breccia", "version": 1, "recipe": st.recipe.to_dict(), "layout": st.layout.to_dict(),
         "shape": list(st.shape)},
        sort_keys=True,
    )  # fmt: skip


def save_safetensors(
    tensors: Mapping[str, ScaledTensor | Any],
    path: str | os.PathLike[str],
    extra_metadata: Mapping[str, str] | None = None,
    *,
    max_shard_size: int | str | None = None,
) -> None:
    """Save ScaledTensors (and plain arrays) of any framework to a safetensors file, atomically.

    With ``max_shard_size`` (bytes or ``"5GB"``), ``path`` is a directory and the result is a Hugging Face sharded
    checkpoint (``model-0000k-of-0000n.safetensors`` + ``model.safetensors.index.json``); each ScaledTensor's
    buffers stay together in one shard.
    """
    groups = tensor_groups(tensors)
    meta = {str(k): str(v) for k, v in (extra_metadata or {}).items()}
    for key in meta:
        if key.endswith(".config") and key[: -len(".config")] in tensors:
            raise FormatError(f"extra_metadata key {key!r} would overwrite the breccia config of that tensor")
    size = parse_size(max_shard_size)
    if size is None:
        dirname, fname = os.path.split(os.fspath(path))
        write_checkpoint(groups, dirname or ".", None, meta, single_name=fname)
    else:
        write_checkpoint(groups, path, size, meta)


def tensor_groups(tensors: Mapping[str, ScaledTensor | Any]) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """``(safetensors arrays, metadata)`` per tensor: a ScaledTensor's buffers and ``name.config`` stay together.

    Shared by :func:`save_safetensors` and ``breccia convert``, which writes one shard at a time.
    """
    if not isinstance(tensors, Mapping):
        raise FormatError(
            f"save_safetensors needs a dict of name → ScaledTensor or array; got {type(tensors).__name__}"
        )
    groups: list[tuple[dict[str, Any], dict[str, str]]] = []
    taken: dict[str, str] = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not name:
            raise FormatError(f"save_safetensors needs non-empty string names; got {name!r}")
        if isinstance(value, ScaledTensor):
            arrays: dict[str, Any] = {}
            for part, arr in _parts(value).items():
                code = "F4" if part == "data" and data_code(value.recipe) == "F4" else None
                arrays[f"{name}.{part}"] = (arr, code) if code else arr
            group = (arrays, {f"{name}.config": config_of(value)})
        elif hasattr(value, "shape") and hasattr(value, "dtype"):
            group = ({name: value}, {})
        else:
            raise FormatError(f"tensor {name!r}: expected a ScaledTensor or an array; got {type(value).__name__}")
        for key in group[0]:
            if key in taken:
                raise FormatError(f"tensor {name!r}: key {key!r} is already used by {taken[key]!r}; rename one")
            taken[key] = name
        groups.append(group)
    return groups


class SafetensorsReader:
    """Lazy access to a breccia (or any) safetensors file or sharded checkpoint: tensors are read when indexed.

    ``reader.keys()`` lists ScaledTensor names (those with a ``name.config``) and plain tensor names;
    ``reader[name]`` reads just that tensor's buffers.
    """

    def __init__(self, path: str | os.PathLike[str], *, framework: str = "numpy", device: Any = None) -> None:
        if framework not in FRAMEWORKS:
            raise FormatError(f"framework must be one of {FRAMEWORKS}; got {framework!r}")
        self.framework = framework
        self.device = device
        self._ckpt = Checkpoint(path)
        self._configs: dict[str, str] = {}
        keys = self._ckpt.keys()
        owned: set[str] = set()
        index = self._ckpt.index_metadata  # a breccia index lists every config: no shard is opened here
        for key in keys:
            if key.endswith(".data"):
                name = key[: -len(".data")]
                cfg = index.get(f"{name}.config")
                if not isinstance(cfg, str):
                    cfg = self._ckpt.file_of(key).metadata.get(f"{name}.config")
                if cfg is not None:
                    self._configs[name] = cfg
                    owned.update(f"{name}.{p}" for p in PARTS)
        self._plain = [k for k in keys if k not in owned]

    @property
    def metadata(self) -> dict[str, str]:
        """The user metadata (``extra_metadata``), without breccia's per-tensor configs."""
        index = {str(k): str(v) for k, v in self._ckpt.index_metadata.items()}
        meta = index if index else self._ckpt.metadata()
        meta.pop("total_size", None)
        return {k: v for k, v in meta.items() if not (k.endswith(".config") and k[: -len(".config")] in self._configs)}

    def keys(self) -> list[str]:
        return [*self._configs, *self._plain]

    def scaled_keys(self) -> list[str]:
        return list(self._configs)

    def __contains__(self, name: object) -> bool:
        return name in self._configs or name in self._plain

    def __iter__(self) -> Any:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._configs) + len(self._plain)

    def __getitem__(self, name: str) -> ScaledTensor | Any:
        if name in self._configs:
            return self._load_scaled(name)
        if name in self._plain:
            return self._ckpt.read(name, self.framework, self.device)
        raise FormatError(f"{self._ckpt.root}: no tensor {name!r}; it holds {self.keys()[:8]}…")

    def _load_scaled(self, name: str) -> ScaledTensor:
        where = f"{self._ckpt.root}: tensor {name!r}"
        recipe, layout, shape = parse_config(self._configs[name], where)
        want = expected_parts(recipe, layout, shape)
        for part, (code, dims) in want.items():
            key = f"{name}.{part}"
            if key not in self._ckpt:
                raise FormatError(f"{where}: {recipe.name} needs {key!r}, which the file lacks")
            got_code, got_dims = self._ckpt.dtype(key), self._ckpt.shape(key)
            if got_code not in (code, "U8" if code.startswith("F8") else code):
                raise FormatError(f"{where}: {key} has dtype {got_code}; {recipe.name} stores {code}")
            if got_dims != dims:
                raise FormatError(f"{where}: {key} has shape {got_dims}; the config's shape {shape} needs {dims}")
        extra = [f"{name}.{p}" for p in PARTS if p not in want and f"{name}.{p}" in self._ckpt]
        if extra:
            raise FormatError(f"{where}: the file holds {extra}, which {recipe!r} does not have; the config is wrong")
        bufs = {p: self._ckpt.read(f"{name}.{p}", self.framework, self.device) for p in want}
        bufs = _relabel(bufs, recipe, self.framework)
        try:
            return ScaledTensor(bufs["data"], bufs["scale"], recipe, layout, shape,
                                global_scale=bufs.get("global_scale"), zero_point=bufs.get("zero_point"))  # fmt: skip
        except BrecciaError as e:
            raise FormatError(f"{where}: {e}") from None

    def close(self) -> None:
        self._ckpt.close()

    def __enter__(self) -> SafetensorsReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _relabel(bufs: dict[str, Any], recipe: Recipe, framework: str) -> dict[str, Any]:
    """U8-stored float8 (other writers) → the framework's float8 dtype, by moving in place."""
    fmt = recipe.element
    want = {"data": fmt.native if fmt.storage == "fp8" else None,
            "scale": {"e8m0": "float8_e8m0fnu", "e4m3": "float8_e4m3fn"}.get(scale_kind(recipe))}  # fmt: skip
    return {p: move(b, framework, None, want.get(p)) for p, b in bufs.items()}


def parse_config(text: str, where: str) -> tuple[Recipe, Any, tuple[int, ...]]:
    """Recipe, layout and logical shape from a ``name.config`` string; every problem is a FormatError."""
    try:
        cfg = json.loads(text)
    except ValueError as e:
        raise FormatError(f"{where}: its .config metadata is not JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise FormatError(f"{where}: its .config metadata must be a JSON object; got {type(cfg).__name__}")
    missing = [k for k in ("recipe", "layout", "shape") if k not in cfg]
    if missing:
        raise FormatError(f"{where}: its .config metadata misses {missing}")
    shape = cfg["shape"]
    if (
        not isinstance(shape, list)
        or len(shape) > _MAX_NDIM
        or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 1 << 62 for n in shape)
    ):
        raise FormatError(f"{where}: shape must be a list of non-negative ints; got {shape!r}")
    try:
        recipe = recipe_from_dict(cfg["recipe"])
        layout = layout_from_dict(cfg["layout"])
        recipe.check_layout(layout)
        layout.validate_shape(tuple(shape))
    except (BrecciaError, TypeError, ValueError) as e:
        raise FormatError(f"{where}: {e}") from None
    return recipe, layout, tuple(shape)


def expected_parts(recipe: Recipe, layout: Any, shape: tuple[int, ...]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``part → (safetensors dtype, header shape)`` that a valid file must hold for this config."""
    fmt = recipe.element
    code = data_code(recipe)
    if fmt.storage == "packed4":
        if not shape:
            raise FormatError("packed 4-bit data needs at least one dimension")
        packed = (*shape[:-1], (shape[-1] + 1) // 2)
        dims = (*packed[:-1], packed[-1] * 2) if code == "F4" else packed  # F4 headers count elements
    else:
        dims = shape
    out = {"data": (code, dims), "scale": (_SCALE_CODE[scale_kind(recipe)], layout.scale_shape(shape))}
    if recipe.has_global_scale:
        out["global_scale"] = ("F32", ())
    if recipe.has_zero_point:
        zcode = "I8" if fmt.signed else "U8"
        if getattr(recipe, "float_zero_point", False):  # MLX affine: the zero point is a float of the scale dtype
            zcode = _SCALE_CODE[scale_kind(recipe)]
        out["zero_point"] = (zcode, layout.scale_shape(shape))
    return out


def open_safetensors(
    path: str | os.PathLike[str], *, framework: str = "numpy", device: Any = None
) -> SafetensorsReader:
    """Open a breccia safetensors file or sharded checkpoint lazily (only the tensors you index are read)."""
    return SafetensorsReader(path, framework=framework, device=device)


def load_safetensors(
    path: str | os.PathLike[str],
    *,
    framework: str = "numpy",
    device: Any = None,
    names: Iterable[str] | None = None,
) -> dict[str, ScaledTensor | Any]:
    """Load ScaledTensors (recipe, layout and shape rebuilt from metadata) and plain tensors.

    ``framework`` is ``"numpy" | "torch" | "jax" | "mlx"``; ``names`` restricts loading to those tensors.
    ``path`` may be a file, a directory or a ``model.safetensors.index.json``.
    """
    with SafetensorsReader(path, framework=framework, device=device) as reader:
        wanted = reader.keys() if names is None else list(names)
        return {n: reader[n] for n in wanted}
