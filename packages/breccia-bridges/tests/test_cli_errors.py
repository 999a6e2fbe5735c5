"""Bad input to ``breccia convert`` / ``inspect``: one clear line on stderr, exit status 2, no traceback, and nothing
created at DST (neither DST nor its staging directory) — checked through ``python -m breccia`` as users run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from breccia.bridges import save_safetensors


def cli(*argv: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "breccia", *map(str, argv)], capture_output=True, text=True,
                          check=False)  # fmt: skip


@pytest.fixture
def src(tmp_path: Path) -> Path:
    x = np.random.default_rng(0).standard_normal((8, 256)).astype(np.float32)
    save_safetensors({"a.weight": x, "a.bias": x[0], "odd.weight": x[:, :100]}, tmp_path / "src", max_shard_size=9000)
    return tmp_path / "src"


def bad(res: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


CASES = [
    (["convert", "{tmp}/missing", "{tmp}/out", "--recipe", "fp8"], ["missing", "no such file"]),
    (["convert", "{tmp}/junk.safetensors", "{tmp}/out", "--recipe", "fp8"], ["not a valid safetensors"]),
    (["convert", "{tmp}/notes.txt", "{tmp}/out", "--recipe", "fp8"], ["expected a .safetensors"]),
    (["convert", "{src}", "{tmp}/out", "--recipe", "fp7"], ["fp7", "mxfp4", "NVFP4BlockScaling"]),
    (["convert", "{src}", "{tmp}/exists", "--recipe", "fp8"], ["already exists"]),
    (["convert", "{src}", "{tmp}/out", "--recipe", "fp8", "--include", "nothing.*"], ["matches no tensor"]),
    (["convert", "{src}", "{tmp}/out", "--recipe", "fp8", "--exclude", "a.[weight"], ["unbalanced"]),
    (["convert", "{src}", "{tmp}/out", "--recipe", "fp8", "--include", ""], ["empty glob"]),
    (["convert", "{src}", "{tmp}/out", "--recipe", "mxfp8", "--format", "deepseek"], ["fp8-block"]),
    (["convert", "{src}", "{tmp}/out", "--recipe", "fp8", "--format", "onnx"], ["--format", "onnx"]),
    (["convert", "{src}", "{tmp}/out", "--recipe", "DelayedScaling", "--format", "compressed-tensors"],
     ["compressed-tensors holds"]),
    (["convert", "{src}", "{tmp}/out", "--recipe", "mxfp4", "--format", "compressed-tensors"], ["odd.weight"]),
    (["convert", "{src}", "{tmp}/out", "--recipe", "fp8", "--workers", "0"], ["--workers"]),
    (["convert", "{src}", "{tmp}/out"], ["--recipe"]),
    (["inspect", "{tmp}/missing"], ["no such file"]),
    (["inspect", "{tmp}/junk.safetensors"], ["not a valid safetensors"]),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "needles"), CASES, ids=[" ".join(c[0][3:]) or c[0][0] for c in CASES])
def test_bad_input(src: Path, tmp_path: Path, argv: list[str], needles: list[str]):
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "exists").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    bad(cli(*(a.format(tmp=tmp_path, src=src) for a in argv)), *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no DST, no DST.partial
