"""Every bridge as an exporter/importer pair, for the bridge × recipe matrix and the pairwise conversion tests.

``python tests-integration/bridge_matrix.py`` prints the matrix (✅ round trip bit-exact, ✗ with the bridge's own
error message as the reason) for the recipe catalogue in ``breccia._testing.RECIPES``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import breccia
from breccia._testing import RECIPES
from breccia.bridges import (
    from_deepseek_v3,
    from_dlpack,
    load_compressed_tensors,
    load_deepseek_v3,
    load_safetensors,
    save_compressed_tensors,
    save_deepseek_v3,
    save_safetensors,
    to_deepseek_v3,
)
from breccia.bridges._arrays import host_numpy

SHAPES = [(256, 512), (40, 300)]  # aligned to every block; then K and M aligned to none


# one directory for every file the adapters write, removed when the interpreter exits (loaders may read lazily)
_ROOT = tempfile.TemporaryDirectory(prefix="breccia-bridge-matrix-")


def _tmp() -> Path:
    return Path(tempfile.mkdtemp(dir=_ROOT.name))


@dataclass(frozen=True)
class Bridge:
    """``export(st) -> foreign`` and ``load(foreign) -> ScaledTensor``; ``needs`` names the modules it requires."""

    name: str
    export: Callable[[breccia.ScaledTensor], Any]
    load: Callable[[Any], breccia.ScaledTensor]
    needs: tuple[str, ...] = ()

    def available(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.needs)

    def round_trip(self, st: breccia.ScaledTensor) -> breccia.ScaledTensor:
        return self.load(self.export(st))


def _st_file(st: breccia.ScaledTensor) -> Path:
    path = _tmp() / "m.safetensors"
    save_safetensors({"w": st}, path)
    return path


def _ds_dir(st: breccia.ScaledTensor) -> Path:
    root = _tmp()
    save_deepseek_v3({"w.weight": st}, root)
    return root


def _ct_dir(st: breccia.ScaledTensor) -> Path:
    root = _tmp()
    save_compressed_tensors({"layer.weight": st}, root)
    return root


def _torch(st: breccia.ScaledTensor) -> breccia.ScaledTensor:
    return from_dlpack(st, framework="torch")


def _torchao_export(st: breccia.ScaledTensor) -> Any:
    from breccia.bridges import to_torchao

    return to_torchao(_torch(st))


def _torchao_load(t: Any) -> breccia.ScaledTensor:
    from breccia.bridges import from_torchao

    return from_torchao(t)


_TE_CLASS = {
    "DelayedScaling": "Float8Tensor",
    "Float8CurrentScaling": "Float8Tensor",
    "Float8BlockScaling": "Float8BlockwiseQTensor",
    "MXFP8BlockScaling": "MXFP8Tensor",
    "NVFP4BlockScaling": "NVFP4Tensor",
}


def _te_export(st: breccia.ScaledTensor) -> Any:
    """An object carrying exactly TE's attributes (TE itself does not install here): ``te_buffers`` plus the
    dtype enums and flags TE keeps beside them."""
    from breccia.bridges import te_buffers

    bufs = te_buffers(_torch(st))
    r = st.recipe
    obj = type(_TE_CLASS[r.name], (), {})()
    attrs: dict[str, Any] = {f"_{u}_{b}": None for u in ("rowwise", "columnwise") for b in ("data", "scale_inv")}
    attrs.update(_data=None, _transpose=None, _amax_rowwise=None, _amax_columnwise=None, _quantizer=None)
    attrs.update(_with_gemm_swizzled_scales=False, _row_scaled_nvfp4=False, _nvfp4_e4m3_max=448)
    attrs.update(_is_2D_scaled=isinstance(st.layout, breccia.PerBlock2D))
    if r.name == "NVFP4BlockScaling":
        attrs["_fp4_dtype"] = "kFloat4E2M1"
    else:
        attrs["_fp8_dtype"] = f"kFloat8{r.element.name}"
    attrs.update(bufs)
    for k, v in attrs.items():
        setattr(obj, k, v)
    return obj


def _te_load(t: Any) -> breccia.ScaledTensor:
    from breccia.bridges import from_transformer_engine

    return from_transformer_engine(t)


BRIDGES = [
    Bridge("safetensors", _st_file, lambda p: load_safetensors(p)["w"]),
    Bridge("dlpack→torch", _torch, lambda t: from_dlpack(t, framework="numpy"), ("torch",)),
    Bridge(
        "dlpack→jax", lambda st: from_dlpack(st, framework="jax"), lambda t: from_dlpack(t, framework="numpy"), ("jax",)
    ),
    Bridge(
        "dlpack→mlx", lambda st: from_dlpack(st, framework="mlx"), lambda t: from_dlpack(t, framework="numpy"), ("mlx",)
    ),
    Bridge(
        "deepseek-v3 (buffers)",
        lambda st: (*to_deepseek_v3(st), st.recipe.block_k),  # type: ignore[attr-defined]
        lambda t: from_deepseek_v3(t[0], t[1], block_k=t[2]),
    ),
    Bridge("deepseek-v3 (checkpoint)", _ds_dir, lambda p: load_deepseek_v3(p)["w.weight"]),
    Bridge("torchao", _torchao_export, _torchao_load, ("torch", "torchao")),
    Bridge("transformer-engine", _te_export, _te_load, ("torch",)),
    Bridge(
        "compressed-tensors",
        _ct_dir,
        lambda p: load_compressed_tensors(p)["layer.weight"],
        ("torch", "compressed_tensors"),
    ),
]


def label(recipe: breccia.Recipe) -> str:
    """A compact name: the class and its non-default fields (``MXFP8BlockScaling(scale_rounding='floor')``)."""
    default = type(recipe)()
    diff = [
        f"{f.name}={getattr(recipe, f.name)!r}"
        for f in dataclasses.fields(recipe)
        if getattr(recipe, f.name) != getattr(default, f.name)
    ]
    return f"{type(recipe).__name__}({', '.join(diff)})"


def matrix(bridges: list[Bridge]) -> dict[tuple[str, str], tuple[str, str]]:
    """``(recipe label, bridge name) → (mark, reason)`` for every recipe of the catalogue."""
    return {(label(r), b.name): cell(b, r) for r in RECIPES for b in bridges}


def sample(recipe: breccia.Recipe, shape: tuple[int, int]) -> breccia.ScaledTensor:
    x = np.random.default_rng(7).standard_normal(shape).astype(np.float32)
    x[3, :64] = 0.0  # a zero block
    return breccia.cast(x, recipe)


def same_bits(a: breccia.ScaledTensor, b: breccia.ScaledTensor) -> bool:
    if (a.recipe, a.shape, a.layout) != (b.recipe, b.shape, b.layout):
        return False
    for part in ("data", "scale", "global_scale", "zero_point"):
        x, y = getattr(a, part), getattr(b, part)
        if (x is None) != (y is None):
            return False
        if x is not None and host_numpy(x).tobytes() != host_numpy(y).tobytes():
            return False
    return True


def same_values(a: breccia.ScaledTensor, b: breccia.ScaledTensor) -> bool:
    x, y = (host_numpy(breccia.dequantize(from_dlpack(t, framework="numpy"))) for t in (a, b))
    return x.tobytes() == y.tobytes()


def outcome(bridge: Bridge, recipe: breccia.Recipe, shape: tuple[int, int]) -> tuple[str, str]:
    """``("ok" | "values" | "no", reason)``. ``ok``: the round trip is bit-exact (recipe, layout, every buffer).
    ``values``: the foreign format cannot say which recipe it held, the round trip relabels it, and the dequantized
    values are bit-identical. ``no``: the bridge raised a :class:`breccia.BrecciaError` (its message is the reason).
    Anything else — changed values, another exception — fails."""
    st = sample(recipe, shape)
    try:
        foreign = bridge.export(st)
    except breccia.BrecciaError as e:
        return "no", str(e).split("\n")[0]
    back = bridge.load(foreign)
    if same_bits(st, back):
        return "ok", ""
    if same_values(st, back):
        return "values", f"reads back as {back.recipe!r} with {back.layout!r}"
    raise AssertionError(f"{bridge.name} changed the values of {recipe!r} at shape {shape}")


def cell(bridge: Bridge, recipe: breccia.Recipe) -> tuple[str, str]:
    """The matrix cell: ✅ (every shape), ✅¹ (block-aligned shapes only), ≈ (values kept, recipe relabelled), ✗."""
    (full, why_full), (odd, why_odd) = (outcome(bridge, recipe, s) for s in SHAPES)
    if full == odd == "ok":
        return "✅", ""
    if full == "ok":
        return "✅¹", why_odd
    if "values" in (full, odd):
        return "≈", why_full or why_odd
    return "✗", why_full


def main() -> None:
    bridges = [b for b in BRIDGES if b.available()]
    cells = matrix(bridges)
    print("| recipe | " + " | ".join(b.name for b in bridges) + " |")
    print("|---" * (len(bridges) + 1) + "|")
    for r in RECIPES:
        print(f"| `{label(r)}` | " + " | ".join(cells[label(r), b.name][0] for b in bridges) + " |")
    print("\n✅ every shape · ✅¹ block-aligned shapes only · ≈ values bit-identical, recipe relabelled · ✗ refused")
    for b in bridges:
        lines = [f"{mark} {lab}: {why}" for (lab, name), (mark, why) in cells.items() if name == b.name and why]
        if lines:
            print(f"\n{b.name}:")
            for line in lines:
                print(f"  - {line[:240]}")


if __name__ == "__main__":
    main()
