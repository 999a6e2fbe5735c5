"""Import hygiene and dispatch (DESIGN.md §1), each in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def run_py(code: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_pulls_no_framework() -> None:
    out = run_py("""
        import sys, breccia
        heavy = ("torch", "jax", "jaxlib", "mlx", "triton", "safetensors", "tensorflow")
        print([m for m in heavy if m in sys.modules])
        breccia.cast([1.0, 2.0], breccia.MXFP8BlockScaling())  # using it still imports no framework
        print([m for m in heavy if m in sys.modules])
    """)
    assert out.splitlines() == ["[]", "[]"]


def test_public_names_resolve_and_all_is_complete() -> None:
    out = run_py("""
        import breccia
        missing = [n for n in breccia.__all__ if getattr(breccia, n, None) is None]
        print(missing, sorted(set(breccia.__all__)) == sorted(breccia.__all__), "cast" in dir(breccia))
    """)
    assert out == "[] True True"


def test_namespace_is_extendable() -> None:
    import breccia

    assert breccia.__file__.endswith(os.path.join("breccia", "__init__.py"))
    assert isinstance(breccia.__path__, list)  # extend_path keeps a list other distributions can join


def test_third_party_backend_via_entry_point(tmp_path: Path) -> None:
    # A real (if tiny) installed distribution: a dist-info with an entry point in the breccia.backends group.
    (tmp_path / "mybackend.py").write_text(
        textwrap.dedent("""
        import numpy as np
        class Box:
            def __init__(self, a): self.a = np.asarray(a, np.float32); self.shape = self.a.shape
        class _B:
            name = "box"
            def matches(self, x): return isinstance(x, Box)
            def cast(self, x, recipe, layout, *, nonfinite, history):
                from breccia._reference import cast_numpy
                return cast_numpy(x.a, recipe, layout, nonfinite=nonfinite, history=history)
        BACKEND = _B()
    """)
    )
    dist = tmp_path / "mybackend-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mybackend\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[breccia.backends]\nbox = mybackend:BACKEND\n")
    out = run_py(
        """
        import breccia, mybackend
        st = breccia.cast(mybackend.Box([[1.0, 2.0]]), breccia.Float8CurrentScaling())
        print(type(st).__name__, st.shape)
    """,
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert out == "ScaledTensor (1, 2)"


@pytest.mark.parametrize("args", [["demo"], ["info"], ["--version"]])
def test_cli_commands(args: list[str]) -> None:
    out = subprocess.run([sys.executable, "-m", "breccia", *args], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    if args == ["demo"]:
        lines = out.stdout.splitlines()
        assert any("MXFP8 E4M3 (rceil)" in ln for ln in lines) and "17 recipes in" in lines[-1]
    if args == ["info"]:
        assert "breccia-core" in out.stdout and "recipes:" in out.stdout


def test_cli_bridges_commands_without_bridges() -> None:
    import importlib.util

    if importlib.util.find_spec("breccia.bridges") is not None:
        pytest.skip("breccia-bridges is installed in this environment")
    out = subprocess.run(
        [sys.executable, "-m", "breccia", "inspect", "x.safetensors"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == "breccia inspect needs breccia-bridges: pip install breccia-bridges"
