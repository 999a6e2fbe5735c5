"""Dispatch with the real torch: lazy loading of breccia.torch, and the pip hint when it is missing."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_py(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_torch_tensor_loads_the_addon_lazily() -> None:
    out = run_py("""
        import sys, torch, breccia
        print("breccia.torch" in sys.modules)
        st = breccia.cast(torch.ones(2, 32), breccia.MXFP8BlockScaling())
        print("breccia.torch" in sys.modules, type(st.data).__module__)
    """)
    assert out.splitlines() == ["False", "True torch"]


def test_missing_addon_names_the_pip_command() -> None:
    # real torch installed, breccia-torch made unimportable (as on a machine that has only breccia-core)
    out = run_py("""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "breccia.torch":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, Block())
        import torch, breccia
        try:
            breccia.cast(torch.ones(2, 32), breccia.MXFP8BlockScaling())
        except breccia.BackendNotInstalledError as e:
            print(type(e).__name__, "|", e)
    """)
    assert out == (
        "BackendNotInstalledError | breccia.cast got a torch.Tensor, but breccia-torch is not installed: "
        "pip install breccia-torch"
    )
