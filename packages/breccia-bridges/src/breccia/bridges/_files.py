"""safetensors files and sharded checkpoints, read defensively and written atomically.

Every on-disk bridge (breccia's own convention, DeepSeek-V3 directories, compressed-tensors) stands on this module:

- **reading**: ``safetensors.safe_open`` validates the header first (size bound, JSON, dtypes, offsets contiguous and
  inside the file, ``dtype × shape == byte length``), so nothing is allocated from a lying header. Tensors are then
  read one at a time, only when asked for: torch through safetensors itself, numpy straight from the validated
  offsets (safetensors' numpy loader has no float8/float4 dtypes).
- **writing**: ``safetensors.serialize_file`` from raw pointers (no copy of the tensors), into a temporary file in
  the target directory that is renamed over the target only once complete, so a crash never leaves half a file.
- **sharding**: ``model.safetensors.index.json`` (the Hugging Face layout); every shard name is checked to stay
  inside the checkpoint directory.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from breccia._errors import FormatError

from ._arrays import host_numpy, move, require

__all__ = [
    "INDEX_NAME",
    "Checkpoint",
    "atomic_path",
    "parse_size",
    "write_checkpoint",
    "write_file",
    "write_index",
]

INDEX_NAME = "model.safetensors.index.json"
_MAX_INDEX_BYTES = 64 << 20  # an index of a million tensors is ~60 MB; anything larger is not an index

# safetensors dtype code → numpy dtype of the *bytes as held* (F4 is packed two per byte)
_NP: dict[str, Any] = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_,
    "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2, "F8_E8M0": ml_dtypes.float8_e8m0fnu,
    "F8_E4M3FNUZ": ml_dtypes.float8_e4m3fnuz, "F8_E5M2FNUZ": ml_dtypes.float8_e5m2fnuz,
    "F4": np.uint8, "C64": np.complex64,
}  # fmt: skip
# numpy dtype name → the name ``safetensors.TensorSpec`` takes
_SPEC = {
    "float64": "float64", "float32": "float32", "float16": "float16", "bfloat16": "bfloat16",
    "int64": "int64", "int32": "int32", "int16": "int16", "int8": "int8",
    "uint64": "uint64", "uint32": "uint32", "uint16": "uint16", "uint8": "uint8", "bool": "bool",
    "float8_e4m3fn": "float8_e4m3fn", "float8_e5m2": "float8_e5m2", "float8_e8m0fnu": "float8_e8m0fnu",
    "float8_e4m3fnuz": "float8_e4m3fnuz", "float8_e5m2fnuz": "float8_e5m2fnuz", "complex64": "complex64",
}  # fmt: skip


def parse_size(size: int | str | None) -> int | None:
    """``5_000_000_000``, ``"5GB"`` or ``"500MiB"`` → bytes (``None`` stays ``None``)."""
    if size is None or isinstance(size, int):
        return size
    units = {"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "KB": 10**3, "MB": 10**6, "GB": 10**9, "B": 1}
    text = size.strip().upper()
    for unit, mult in units.items():
        if text.endswith(unit) and text[: -len(unit)].strip().replace(".", "", 1).isdigit():
            return int(float(text[: -len(unit)]) * mult)
    raise FormatError(f"max_shard_size must be bytes or a string like '5GB' / '500MiB'; got {size!r}")


# ------------------------------------------------------------------------------------------------ writing
@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the body completes."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_file(
    tensors: Mapping[str, Any], path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None
) -> None:
    """Write ``{name: array}`` (any framework; ``(array, "F4")`` for packed FP4) as one safetensors file, atomically.

    Buffers are handed to safetensors by pointer: a CPU torch tensor or numpy array is not copied.
    """
    from safetensors import TensorSpec, serialize_file

    keep: list[np.ndarray] = []
    specs = {}
    for name, value in tensors.items():
        arr, code = value if isinstance(value, tuple) else (value, None)
        host = host_numpy(arr)
        keep.append(host)
        dt = "float4_e2m1fn_x2" if code == "F4" else _SPEC.get(host.dtype.name)
        if dt is None:
            raise FormatError(f"tensor {name!r}: dtype {host.dtype.name} has no safetensors code")
        specs[name] = TensorSpec(dtype=dt, shape=list(host.shape), data_ptr=host.ctypes.data, data_len=host.nbytes)
    with atomic_path(path) as tmp:
        serialize_file(specs, tmp, metadata=dict(metadata) if metadata else None)
        if metadata and len(metadata) > 1:
            _sort_metadata(tmp)
    del keep


def _sort_metadata(path: str) -> None:
    """Rewrite the header's ``__metadata__`` with sorted keys, in place and at the same length.

    safetensors keeps metadata in a Rust HashMap, whose order changes from process to process; sorting makes the
    same tensors and metadata give the same file bytes (``breccia convert`` relies on it for resumable output).
    """
    with open(path, "r+b") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
        meta = header.pop("__metadata__", {})
        text = json.dumps({"__metadata__": dict(sorted(meta.items())), **header}, separators=(",", ":"),
                          ensure_ascii=False).encode()  # fmt: skip
        if len(text) <= n:  # equal in practice (same JSON, reordered); never grow the header
            fh.seek(8)
            fh.write(text + b" " * (n - len(text)))


def write_checkpoint(
    groups: list[tuple[dict[str, Any], dict[str, str]]],
    directory: str | os.PathLike[str],
    max_shard_size: int | None,
    index_metadata: Mapping[str, Any] | None = None,
    single_name: str = "model.safetensors",
) -> list[str]:
    """Write tensor groups (each kept whole in one shard, with its metadata) as one file or a sharded checkpoint.

    Returns the file names written. Shards are named ``model-00001-of-0000N.safetensors`` and indexed by
    ``model.safetensors.index.json``, which is written last so a reader never sees an index of missing shards.
    """
    directory = Path(directory)
    sizes = [sum(host_nbytes(v) for v in tensors.values()) for tensors, _ in groups]
    shards: list[list[int]] = [[]]
    used = 0
    for i, size in enumerate(sizes):
        if max_shard_size is not None and shards[-1] and used + size > max_shard_size:
            shards.append([])
            used = 0
        shards[-1].append(i)
        used += size
    if len(shards) == 1 and max_shard_size is None:
        names = [single_name]
    else:
        names = [f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors" for k in range(len(shards))]
    weight_map: dict[str, str] = {}
    for fname, members in zip(names, shards):
        tensors: dict[str, Any] = {}
        meta: dict[str, str] = {}
        for i in members:
            tensors.update(groups[i][0])
            meta.update(groups[i][1])
        if index_metadata and len(names) == 1:
            meta.update({k: str(v) for k, v in index_metadata.items()})
        write_file(tensors, directory / fname, meta)
        weight_map.update(dict.fromkeys(tensors, fname))
    if len(names) > 1 or max_shard_size is not None:
        per_tensor = {k: v for _, meta in groups for k, v in meta.items()}  # readers find configs without shards
        write_index(directory, weight_map, sum(sizes), {**(index_metadata or {}), **per_tensor})
    return names


def write_index(
    directory: str | os.PathLike[str], weight_map: Mapping[str, str], total_size: int, metadata: Mapping[str, Any]
) -> None:
    """Write ``model.safetensors.index.json`` atomically (sorted keys: the same checkpoint gives the same bytes)."""
    index = {"metadata": {"total_size": total_size, **metadata}, "weight_map": dict(weight_map)}
    with atomic_path(Path(directory) / INDEX_NAME) as tmp:
        Path(tmp).write_text(json.dumps(index, indent=2, sort_keys=True))


def host_nbytes(value: Any) -> int:
    arr = value[0] if isinstance(value, tuple) else value
    return int(arr.nbytes)


# ------------------------------------------------------------------------------------------------ reading
class _File:
    """One safetensors file: its validated header, opened lazily per framework."""

    def __init__(self, path: Path) -> None:
        from safetensors import safe_open

        self.path = path
        try:
            with safe_open(str(path), framework="numpy") as f:  # validates the whole header, reads no tensor
                self.metadata: dict[str, str] = dict(f.metadata() or {})
        except FileNotFoundError:
            raise FormatError(f"{path}: no such file") from None
        except Exception as e:  # SafetensorError, OSError: a truncated or malformed file
            raise FormatError(f"{path}: not a valid safetensors file ({e})") from None
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        self._start = 8 + n
        header.pop("__metadata__", None)
        self.header: dict[str, dict[str, Any]] = header
        self._torch: Any = None

    def dtype(self, name: str) -> str:
        return str(self.header[name]["dtype"])

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(n) for n in self.header[name]["shape"])

    def read(self, name: str, framework: str, device: Any = None) -> Any:
        """The tensor ``name`` in ``framework`` (F4 arrives as packed ``uint8`` bytes in every framework)."""
        code = self.dtype(name)
        if framework == "torch" and code in _NP:
            if self._torch is None:
                from safetensors import safe_open

                require("torch", "torch", "loading into torch")
                self._torch = safe_open(str(self.path), framework="pt")
            t = self._torch.get_tensor(name)
            if code == "F4":
                import torch

                t = t.view(torch.uint8)
            return t if device is None else t.to(device)
        return move(self._read_numpy(name), framework, device)

    def _read_numpy(self, name: str) -> np.ndarray:
        entry = self.header[name]
        code = entry["dtype"]
        if code not in _NP:
            raise FormatError(f"{self.path}: tensor {name!r} has dtype {code}, which breccia cannot read")
        begin, end = (int(v) for v in entry["data_offsets"])
        shape = list(self.shape(name))
        if code == "F4":
            if not shape or shape[-1] % 2:
                raise FormatError(f"{self.path}: tensor {name!r} is F4 with an odd last dimension {shape}")
            shape[-1] //= 2
        arr = np.fromfile(self.path, dtype=np.uint8, count=end - begin, offset=self._start + begin)
        if arr.size != end - begin:
            raise FormatError(f"{self.path}: tensor {name!r} is truncated ({arr.size} of {end - begin} bytes)")
        out: np.ndarray = arr.view(_NP[code]).reshape(shape)
        return out

    def close(self) -> None:
        self._torch = None


class Checkpoint:
    """A safetensors file, a directory holding one, or a sharded checkpoint (``model.safetensors.index.json``).

    Files are opened (header-validated) only when a tensor in them is first asked for.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        p = Path(path)
        self.index_metadata: dict[str, Any] = {}
        if p.is_dir():
            if (p / INDEX_NAME).is_file():
                p = p / INDEX_NAME
            else:
                found = sorted(p.glob("*.safetensors"))
                if not found:
                    raise FormatError(f"{path}: directory has no {INDEX_NAME} and no *.safetensors file")
                self._init_files(p, [f.name for f in found])
                return
        if p.name.endswith(".json"):
            self._init_index(p)
        else:
            self.root = p.parent
            self._files: dict[str, _File | None] = {p.name: _File(p)}
            self.weight_map = {k: p.name for k in self._file(p.name).header}

    def _init_files(self, root: Path, names: list[str]) -> None:
        self.root = root
        self._files = {n: _File(root / n) for n in names}
        self.weight_map = {}
        for n in names:
            for k in self._file(n).header:
                if k in self.weight_map:
                    raise FormatError(f"{root}: tensor {k!r} appears in both {self.weight_map[k]} and {n}")
                self.weight_map[k] = n

    def _init_index(self, index: Path) -> None:
        self.root = index.parent
        try:
            if index.stat().st_size > _MAX_INDEX_BYTES:
                raise FormatError(f"{index}: {index.stat().st_size} bytes is too large for a checkpoint index")
            doc = json.loads(index.read_text())
        except FileNotFoundError:
            raise FormatError(f"{index}: no such file") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise FormatError(f"{index}: not valid JSON ({e})") from None
        wm = doc.get("weight_map") if isinstance(doc, dict) else None
        if not isinstance(wm, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in wm.items()):
            raise FormatError(f"{index}: needs a 'weight_map' object of tensor name → file name")
        root = self.root.resolve()
        for key, fname in wm.items():
            target = (self.root / fname).resolve()
            if Path(fname).is_absolute() or target.parent != root or not fname.endswith(".safetensors"):
                raise FormatError(
                    f"{index}: tensor {key!r} points to {fname!r}, which is not a .safetensors file inside "
                    f"{self.root}; refusing to read outside the checkpoint directory"
                )
        meta = doc.get("metadata", {})
        self.index_metadata = meta if isinstance(meta, dict) else {}
        self.weight_map = dict(wm)
        self._files = dict.fromkeys(sorted(set(wm.values())))

    def _file(self, fname: str) -> _File:
        f = self._files[fname]
        if f is None:
            f = self._files[fname] = _File(self.root / fname)
        return f

    def files(self) -> list[_File]:
        return [self._file(n) for n in self._files]

    def keys(self) -> list[str]:
        return list(self.weight_map)

    def __contains__(self, key: object) -> bool:
        return key in self.weight_map

    def file_of(self, key: str) -> _File:
        if key not in self.weight_map:
            raise FormatError(f"{self.root}: checkpoint has no tensor {key!r}")
        f = self._file(self.weight_map[key])
        if key not in f.header:
            raise FormatError(f"{f.path}: the index puts tensor {key!r} in this file, but it is not there")
        return f

    def dtype(self, key: str) -> str:
        return self.file_of(key).dtype(key)

    def shape(self, key: str) -> tuple[int, ...]:
        return self.file_of(key).shape(key)

    def read(self, key: str, framework: str = "numpy", device: Any = None) -> Any:
        return self.file_of(key).read(key, framework, device)

    def metadata(self) -> dict[str, str]:
        """Every file's ``__metadata__`` merged (breccia keeps one ``name.config`` per tensor, so keys don't clash)."""
        out: dict[str, str] = {}
        for f in self.files():
            out.update(f.metadata)
        return out

    def close(self) -> None:
        for f in self._files.values():
            if f is not None:
                f.close()
