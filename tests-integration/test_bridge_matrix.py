"""The bridge × recipe matrix: every supported cell round-trips bit-exactly, every refusal is a BrecciaError, and
the table in docs/bridges.md is what the bridges actually do (so the documented support can't drift)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bridge_matrix import BRIDGES, Bridge, cell, label

import breccia
from breccia._testing import RECIPES

DOCS = Path(__file__).parents[1] / "docs" / "bridges.md"


def documented() -> dict[tuple[str, str], str]:
    """``(recipe label, bridge) → mark`` from the table between the bridge-matrix markers in docs/bridges.md."""
    text = DOCS.read_text()
    table = text.split("<!-- bridge-matrix -->")[1].split("<!-- /bridge-matrix -->")[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.strip().splitlines()]
    head, body = rows[0], rows[2:]
    return {(r[0].strip("`"), head[i]): r[i] for r in body for i in range(1, len(head))}


DOC = documented()


@pytest.mark.parametrize("bridge", [pytest.param(b, id=b.name) for b in BRIDGES])
@pytest.mark.parametrize("recipe", [pytest.param(r, id=label(r)) for r in RECIPES])
def test_cell(bridge: Bridge, recipe: breccia.Recipe) -> None:
    if not bridge.available():
        pytest.skip(f"{bridge.name} needs {bridge.needs}")
    mark, why = cell(bridge, recipe)  # raises if any round trip changed a value
    assert DOC[label(recipe), bridge.name] == mark, f"docs/bridges.md says {DOC[label(recipe), bridge.name]}: {why}"
    if mark == "✗":
        assert why, "a refusal must explain itself"


def test_docs_table_covers_the_catalogue() -> None:
    assert {lab for lab, _ in DOC} == {label(r) for r in RECIPES}
    assert {name for _, name in DOC} == {b.name for b in BRIDGES}
    assert all(re.fullmatch(r"✅¹?|≈|✗", mark) for mark in DOC.values())
