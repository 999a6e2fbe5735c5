"""``breccia convert``: recipe names, the tensor selection rule and the validated plan.

Everything a conversion can get wrong on input is checked here, *before* anything is created on disk: the source
scans, the recipe name resolves, the target format can hold the recipe, the globs match, DST is free.

Selection rule (documented in docs/cli.md): a logical tensor is a *candidate* when it is real-valued (F16, BF16,
F32, F64, or already quantized) and 2-D. By default a candidate is quantized when its name ends in ``.weight`` and
no dotted component of the name contains ``embed`` or ``norm`` (``model.embed_tokens.weight``, ``LayerNorm.weight``
stay as they are). ``--include GLOB`` (fnmatch, repeatable) replaces that name rule: a candidate is quantized when it
matches any include glob. ``--exclude GLOB`` then removes every match. Everything not selected is copied unchanged.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from breccia._errors import FormatError, RecipeError
from breccia._layouts import Layout, PerBlock2D, PerBlockK, PerChannel, layout_from_dict
from breccia._recipes import (
    _RECIPES,
    Float8BlockScaling,
    Float8CurrentScaling,
    INT4Scaling,
    INT8Scaling,
    MXFP4BlockScaling,
    MXFP6BlockScaling,
    MXFP8BlockScaling,
    NVFP4BlockScaling,
    Recipe,
    recipe_from_dict,
)

from ._inspect import Entry, Source, scan

__all__ = ["ALIASES", "FORMATS", "Plan", "make_plan", "resolve_recipe", "selected"]

FORMATS = ("breccia", "compressed-tensors", "deepseek")

#: friendly name → (recipe, layout or None for the recipe's default), and what it means
ALIASES: dict[str, tuple[Recipe, Layout | None, str]] = {
    "fp8": (Float8CurrentScaling(), None, "FP8 E4M3, one fp32 scale per tensor"),
    "fp8-tensor": (Float8CurrentScaling(), None, "same as fp8"),
    "fp8-row": (Float8CurrentScaling(), PerChannel(-1), "FP8 E4M3, one fp32 scale per row"),
    "fp8-block": (Float8BlockScaling(block_m=128), None, "FP8 E4M3, 128×128 blocks, as DeepSeek-V3 weights"),
    "fp8-1x128": (Float8BlockScaling(), None, "FP8 E4M3, 1×128 blocks"),
    "mxfp8": (MXFP8BlockScaling(), None, "OCP MXFP8 E4M3, E8M0 scale per 32"),
    "mxfp6": (MXFP6BlockScaling(), None, "OCP MXFP6 E2M3, E8M0 scale per 32"),
    "mxfp4": (MXFP4BlockScaling(), None, "OCP MXFP4, E8M0 scale per 32"),
    "nvfp4": (NVFP4BlockScaling(), None, "NVFP4, E4M3 scale per 16 + fp32 per-tensor scale"),
    "int8": (INT8Scaling(), None, "INT8, one fp32 scale per row"),
    "int4": (INT4Scaling(), None, "INT4, one fp16 scale per 128"),
}


def valid_names() -> list[str]:
    return [*ALIASES, *sorted(_RECIPES)]


def resolve_recipe(name: str) -> tuple[Recipe, Layout | None]:
    """An alias (case-insensitive) or a recipe class name with its default arguments."""
    key = name.strip()
    if key.lower() in ALIASES:
        recipe, layout, _ = ALIASES[key.lower()]
        return recipe, layout
    by_lower = {n.lower(): n for n in _RECIPES}
    if key.lower() in by_lower:
        return _RECIPES[by_lower[key.lower()]](), None
    raise RecipeError(f"--recipe {name!r} is not a recipe name; use one of: {', '.join(valid_names())}")


def default_rule(name: str) -> bool:
    parts = name.lower().split(".")
    return name.endswith(".weight") and not any("embed" in p or "norm" in p for p in parts)


def selected(entry: Entry, include: list[str], exclude: list[str]) -> bool:
    """The selection rule of the module docstring."""
    if not entry.floating or len(entry.shape) != 2:
        return False
    hit = any(fnmatch.fnmatchcase(entry.name, g) for g in include) if include else default_rule(entry.name)
    return hit and not any(fnmatch.fnmatchcase(entry.name, g) for g in exclude)


@dataclass(frozen=True)
class Plan:
    """A validated conversion: what to read, what to write, and the arguments the journal must match."""

    src: Source
    dst: Path
    staging: Path
    recipe: Recipe
    layout: Layout | None
    fmt: str
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    selected: frozenset[str]

    def journal_args(self) -> dict[str, Any]:
        """What decides the output bytes (not --workers, --ray or --no-progress: those never change them)."""
        return {
            "src": str(self.src.path.resolve()), "recipe": self.recipe.to_dict(),
            "layout": self.layout.to_dict() if self.layout else None, "format": self.fmt,
            "include": list(self.include), "exclude": list(self.exclude),
        }  # fmt: skip

    @staticmethod
    def target_from(args: dict[str, Any]) -> tuple[Recipe, Layout | None]:
        layout = args.get("layout")
        return recipe_from_dict(args["recipe"]), layout_from_dict(layout) if layout else None


def _check_glob(flag: str, glob: str, names: list[str]) -> None:
    if not glob.strip():
        raise FormatError(f"{flag} got an empty glob; give a pattern such as 'model.layers.*.mlp.*'")
    if glob.count("[") != glob.count("]"):
        raise FormatError(f"{flag} {glob!r} has an unbalanced '[' … ']' character class; escape brackets as [[]")
    if not any(fnmatch.fnmatchcase(n, glob) for n in names):
        sample = ", ".join(names[:3])
        raise FormatError(f"{flag} {glob!r} matches no tensor of the source (its names look like {sample}); "
                          f"globs match whole names, e.g. '*.mlp.*'")  # fmt: skip


def _check_format(fmt: str, recipe: Recipe, layout: Layout | None, chosen: list[Entry]) -> None:
    """The target format must hold the recipe on every selected tensor (compressed-tensors: probe its encoder)."""
    if fmt not in FORMATS:
        raise FormatError(f"--format {fmt!r} is not a format; use one of: {', '.join(FORMATS)}")
    lay = layout or recipe.default_layout(-1)
    if fmt == "deepseek" and not (
        isinstance(recipe, Float8BlockScaling) and isinstance(lay, PerBlock2D) and recipe.block_m == recipe.block_k
    ):
        raise RecipeError(f"--format deepseek holds Float8BlockScaling with B×B blocks (--recipe fp8-block); "
                          f"got {recipe!r}")  # fmt: skip
    if fmt != "compressed-tensors":
        return
    from breccia._api import cast

    from ._compressed_tensors_formats import encode

    probe = cast(np.ones((2, 128), np.float32), recipe, layout=layout)
    encode(probe, "--recipe")  # a RecipeError naming what compressed-tensors can hold
    group = lay.block_k if isinstance(lay, PerBlockK) else None
    for e in chosen:
        if not e.name.endswith(".weight"):
            raise FormatError(f"--format compressed-tensors quantizes modules' '<module>.weight' tensors; "
                              f"{e.name!r} is selected. Narrow --include or add --exclude")  # fmt: skip
        if group and e.shape[1] % group:
            raise RecipeError(f"--format compressed-tensors needs in_features divisible by the group size {group}; "
                              f"{e.name!r} has shape {e.shape}. --exclude it or pick another recipe")  # fmt: skip


def make_plan(
    src: str, dst: str, recipe_name: str, fmt: str, include: list[str], exclude: list[str], workers: int
) -> Plan:
    """Validate every argument (raising a BrecciaError that names it) and return the plan; creates nothing."""
    recipe, layout = resolve_recipe(recipe_name)
    if fmt not in FORMATS:
        raise FormatError(f"--format {fmt!r} is not a format; use one of: {', '.join(FORMATS)}")
    if workers < 1:
        raise FormatError(f"--workers must be >= 1; got {workers}")
    source = scan(src)
    out = Path(dst)
    if out.exists():
        raise FormatError(f"DST {dst!r} already exists; breccia convert never overwrites, remove it or pick another")
    if not out.resolve().parent.is_dir():
        raise FormatError(f"DST {dst!r}: its parent directory does not exist")
    names = [e.name for e in source.entries]
    for flag, globs in (("--include", include), ("--exclude", exclude)):
        for g in globs:
            _check_glob(flag, g, names)
    chosen = [e for e in source.entries if selected(e, include, exclude)]
    _check_format(fmt, recipe, layout, chosen)
    staging = out.with_name(out.name + ".partial")
    return Plan(source, out, staging, recipe, layout, fmt, tuple(include), tuple(exclude),
                frozenset(e.name for e in chosen))  # fmt: skip
