"""Every ```python block in README.md and docs/*.md runs as written (docs are part of the work)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OPTIONAL = ("torch", "jax", "mlx", "triton", "safetensors", "torchao", "compressed_tensors", "transformer_engine")


def blocks() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        for i, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S)):
            out.append((f"{page.relative_to(ROOT)}#{i}", code))
    return out


@pytest.mark.parametrize(("where", "code"), blocks(), ids=[w for w, _ in blocks()])
def test_doc_snippet_runs(where: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for mod in OPTIONAL:
        if (
            re.search(rf"^\s*(import|from)\s+{mod}\b|breccia\.{mod}\b", code, re.M)
            and importlib.util.find_spec(mod) is None
        ):
            pytest.skip(f"{where} needs {mod}, not installed in this session")
    if "breccia.bridges" in code and importlib.util.find_spec("breccia.bridges") is None:
        pytest.skip(f"{where} needs breccia-bridges")
    monkeypatch.chdir(tmp_path)
    if "sys.modules" in code:  # a claim about what importing loads needs a fresh interpreter
        subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
        return
    exec(compile(code, where, "exec"), {"__name__": "__doc_snippet__"})


def test_there_are_snippets() -> None:
    assert len(blocks()) >= 10
