"""Bad and hostile files: every defect is a FormatError naming the tensor (or the file), never another exception,
and nothing is allocated in proportion to a size the file declares."""

from __future__ import annotations

import json
import struct
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import cast_np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import breccia
from breccia.bridges import load_safetensors, open_safetensors, save_safetensors


def _split(raw: bytes) -> tuple[dict[str, Any], bytes]:
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _join(header: dict[str, Any], body: bytes) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("good") / "good.safetensors"
    save_safetensors(
        {"w": cast_np(breccia.NVFP4BlockScaling(), (4, 48)), "b": np.arange(3, dtype=np.float32)},
        path,
    )
    return path.read_bytes()


def _load(tmp_path: Path, raw: bytes) -> dict[str, Any]:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(raw)
    return load_safetensors(path)


def _with_config(good: bytes, change: Any) -> bytes:
    header, body = _split(good)
    cfg = json.loads(header["__metadata__"]["w.config"])
    header["__metadata__"]["w.config"] = change(cfg)
    return _join(header, body)


def test_truncated_files(tmp_path: Path, good: bytes) -> None:
    for cut in (0, 3, 8, 20, len(good) // 2, len(good) - 1):
        with pytest.raises(breccia.FormatError, match=r"bad\.safetensors"):
            _load(tmp_path, good[:cut])


def test_lying_header_length_allocates_nothing(tmp_path: Path, good: bytes) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(breccia.FormatError):
            _load(tmp_path, struct.pack("<Q", 1 << 60) + good[8:])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: "{not json", "not JSON"),
        (lambda c: "[1, 2]", "JSON object"),
        (lambda c: json.dumps({k: v for k, v in c.items() if k != "layout"}), "misses"),
        (lambda c: json.dumps(dict(c, recipe={"recipe": "FancyFP3"})), "unknown recipe"),
        (lambda c: json.dumps(dict(c, recipe=dict(c["recipe"], block_size=-3))), "'w'"),
        (lambda c: json.dumps(dict(c, layout={"layout": "Spiral"})), "unknown layout"),
        (lambda c: json.dumps(dict(c, shape=[4, 50])), "shape"),
        (lambda c: json.dumps(dict(c, shape=[4, "48"])), "non-negative ints"),
        (lambda c: json.dumps(dict(c, shape=[1 << 40, 1 << 40])), "shape"),
        (lambda c: json.dumps(dict(c, recipe={"recipe": "NVFP4BlockScaling", "per_tensor_scale": False})), "global"),
    ],
)
def test_bad_configs(tmp_path: Path, good: bytes, change: Any, message: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(breccia.FormatError, match=message) as err:
            _load(tmp_path, _with_config(good, change))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "'w'" in str(err.value)
    assert peak < 1 << 20  # a declared 2^80-element tensor is refused before anything is allocated


def test_wrong_dtype_and_missing_parts(tmp_path: Path, good: bytes) -> None:
    header, body = _split(good)
    header["w.scale"]["dtype"] = "U8"
    header["w.data"]["dtype"] = "I8"
    header["w.data"]["shape"] = [4, 24]
    with pytest.raises(breccia.FormatError, match=r"'w'.*I8"):
        _load(tmp_path, _join(header, body))
    header, body = _split(good)
    del header["w.global_scale"]
    with pytest.raises(breccia.FormatError):  # the file's offsets no longer tile the buffer
        _load(tmp_path, _join(header, body))


def test_index_pointing_outside_its_directory(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    save_safetensors({"w": cast_np(breccia.MXFP8BlockScaling())}, ckpt, max_shard_size=1 << 20)
    index_path = ckpt / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    (tmp_path / "outside.safetensors").write_bytes((ckpt / "model-00001-of-00001.safetensors").read_bytes())
    for bad in ("../outside.safetensors", str(tmp_path / "outside.safetensors"), "sub/../../outside.safetensors",
                "/etc/passwd", "model.safetensors.index.json"):  # fmt: skip
        index["weight_map"]["w.data"] = bad
        index_path.write_text(json.dumps(index))
        with pytest.raises(breccia.FormatError, match=r"'w\.data'.*outside|not a \.safetensors"):
            load_safetensors(ckpt)
    for text in ("{", json.dumps({"weight_map": [1]}), json.dumps({"weight_map": {"w.data": 3}})):
        index_path.write_text(text)
        with pytest.raises(breccia.FormatError, match=r"index\.json"):
            load_safetensors(ckpt)


def test_index_naming_a_missing_shard(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    save_safetensors({"w": cast_np(breccia.MXFP8BlockScaling())}, ckpt, max_shard_size=1 << 20)
    (ckpt / "model-00001-of-00001.safetensors").unlink()
    with pytest.raises(breccia.FormatError, match="no such file"):
        load_safetensors(ckpt)


# ----------------------------------------------------------------------------------------------- fuzzing
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_FIELDS = ["format", "version", "recipe", "layout", "shape"]


@st.composite
def mutated_files(draw: st.DrawFn, good: bytes) -> bytes:
    header, body = _split(good)
    kind = draw(st.sampled_from(["config", "entry", "bytes", "metadata"]))
    if kind == "config":
        cfg = json.loads(header["__metadata__"]["w.config"])
        target = draw(st.sampled_from([*_FIELDS, "recipe.field", "layout.field"]))
        if "." in target:
            sub = cfg[target.split(".")[0]]
            sub[draw(st.sampled_from(sorted(sub)))] = draw(_json_values)
        elif draw(st.booleans()):
            cfg[target] = draw(_json_values)
        else:
            cfg.pop(target, None)
        header["__metadata__"]["w.config"] = json.dumps(cfg)
    elif kind == "entry":
        key = draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
        field = draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
        header[key][field] = draw(
            st.sampled_from(["F8_E4M3", "F4", "U8", "F32", "I64", "Q9"]) if field == "dtype" else
            st.lists(st.integers(-5, 2**66), max_size=3)
        )  # fmt: skip
    elif kind == "metadata":
        header["__metadata__"]["w.config"] = draw(st.text(max_size=40))
    raw = bytearray(_join(header, body))
    if kind == "bytes":
        for _ in range(draw(st.integers(1, 4))):
            pos = draw(st.integers(0, len(raw) - 1))
            raw[pos] = draw(st.integers(0, 255))
    return bytes(raw)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_headers_raise_only_format_error(tmp_path: Path, good: bytes, data: st.DataObject) -> None:
    raw = data.draw(mutated_files(good))
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(raw)
    try:
        with open_safetensors(path) as reader:
            for name in reader:
                reader[name]
    except breccia.FormatError:
        pass
