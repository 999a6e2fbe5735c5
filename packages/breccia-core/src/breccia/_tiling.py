"""Tiling plan for the numpy reference: bounded temporaries, cache-sized work units (DESIGN.md §6).

The reference processes a tensor in tiles of about ``TILE_ELEMS`` elements so that (a) a 1 GiB input never needs
more than a few MiB of temporaries beyond its output and (b) the ~15 elementwise passes of the recipe math run
in L2 cache instead of streaming through DRAM each time. Axes are first merged where the layout allows (adjacent
unblocked axes, adjacent single-block axes), so most tensors become 2-D or 3-D before tiling.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["TILE_ELEMS", "Plan", "Tile", "make_plan"]

TILE_ELEMS = 1 << 15


@dataclass(frozen=True)
class Tile:
    """One work unit in canonical coordinates."""

    data: tuple[slice, ...]  # element slices into the canonical tensor
    grid: tuple[slice, ...]  # slices into the canonical scale grid
    padded: tuple[int, ...]  # tile extent rounded up to whole local blocks
    split: tuple[int, ...]  # split shape: (g_i, b_i) per blocked axis, (n_i,) per unblocked axis
    red_axes: tuple[int, ...]  # positions of the b_i axes in ``split``
    keep: tuple[int, ...]  # keepdims shape of per-block statistics in split form
    grid_shape: tuple[int, ...]  # the same statistics as a grid slice


@dataclass(frozen=True)
class Plan:
    shape: tuple[int, ...]  # canonical tensor shape
    blocks: tuple[int, ...]  # canonical block shape
    grid: tuple[int, ...]  # canonical scale-grid shape
    tile: tuple[int, ...]  # tile lengths per canonical axis
    two_pass: bool  # a block spans several tiles: statistics first, then encode

    def tiles(self) -> Iterator[Tile]:
        ranges = [range(0, n, t) for n, t in zip(self.shape, self.tile)]
        for starts in itertools.product(*ranges):
            yield self._tile(starts)

    def _tile(self, starts: tuple[int, ...]) -> Tile:
        data, grid, padded, split, red, keep, gshape = [], [], [], [], [], [], []
        for s, t, n, b in zip(starts, self.tile, self.shape, self.blocks):
            length = min(t, n - s)
            data.append(slice(s, s + length))
            if b == 1:
                lb = 1
                grid.append(slice(s, s + length))
            elif b >= n:  # one block along this axis (possibly split across tiles)
                lb = length
                grid.append(slice(0, 1))
            else:
                lb = b
                grid.append(slice(s // b, s // b + -(-length // b)))
            g = -(-length // lb)
            padded.append(g * lb)
            if lb == 1:
                split.append(length)
                keep.append(length)
            else:
                split.extend((g, lb))
                red.append(len(split) - 1)
                keep.extend((g, 1))
            gshape.append(g)
        return Tile(tuple(data), tuple(grid), tuple(padded), tuple(split), tuple(red), tuple(keep), tuple(gshape))


def make_plan(
    shape: tuple[int, ...],
    blocks: tuple[int, ...],
    *,
    keep_last: bool,
    need_global: bool,
    tile_elems: int = TILE_ELEMS,
) -> Plan:
    """Canonicalise ``shape``/``blocks`` and choose tile lengths.

    ``keep_last``: never merge the last axis (packed 4-bit rows carry their own padding nibble) and keep tile
    boundaries on it even. ``need_global``: the recipe needs a tensor-wide statistic, so always two passes.
    """
    cs: list[int] = []
    cb: list[int] = []
    kinds: list[str] = []
    nd = len(shape)
    for i, (n, b) in enumerate(zip(shape, blocks)):
        kind = "one" if b == 1 else ("full" if b >= n else "blk")
        last = i == nd - 1
        if kinds and kind in ("one", "full") and kinds[-1] == kind and not (keep_last and last):
            cs[-1] *= n
            cb[-1] = 1 if kind == "one" else cs[-1]
        else:
            cs.append(n)
            cb.append(b if kind != "full" else n)
            kinds.append(kind)
    if not cs:  # a 0-d tensor
        cs, cb = [1], [1]
    grid = tuple(-(-n // b) for n, b in zip(cs, cb))
    tile = list(cs)
    inner = 1
    split_full = False
    for i in range(len(cs) - 1, -1, -1):
        n, b = cs[i], cb[i]
        unit = b if 1 < b < n else 1
        if keep_last and i == len(cs) - 1:
            unit = unit * 2 // math.gcd(unit, 2)
        if inner * n <= tile_elems:
            inner *= n
            continue
        t = max(unit, (tile_elems // max(inner, 1)) // unit * unit)
        tile[i] = min(t, n)
        if b >= n and tile[i] < n:
            split_full = True
        for j in range(i):
            nj, bj = cs[j], cb[j]
            tile[j] = bj if 1 < bj < nj else 1
            if bj >= nj > 1:
                split_full = True
        break
    return Plan(tuple(cs), tuple(cb), grid, tuple(max(t, 1) for t in tile), need_global or split_full)
