"""Windowed top-k readout: each query cell reads values from its best-matching memory cells.

Pure tensor functions behind ``AppearancePropagator``. A query map is cut into tiles of
``tile`` x ``tile`` cells; each tile is matched against the memory cells within ``radius`` of it
(one batched matrix product per memory frame), so time and memory grow with the pixels, not
with their square as a global affinity would. A memory frame's windows are cut once, when it is
remembered, and read by every later frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

__all__ = ["OBJECT_CHUNK", "Windows", "cut_windows", "read", "tile_queries"]

# Padded memory cells get this similarity, so no top-k ever picks them.
_OUTSIDE = -1.0e4


@dataclass(frozen=True)
class Windows:
    """A memory frame's keys, one window per query tile: (L, N, C + 1), the cells within
    ``radius`` of the tile taken every ``step`` cells (S = ceil((tile + 2·radius) / step) per
    side), less those within ``hole`` of the tile (a denser window set of the same frame reads
    them): N of the S² positions. The extra channel holds 0 inside the frame and ``_OUTSIDE``
    on the padding."""

    keys: torch.Tensor
    radius: int
    tile: int
    grid: tuple[int, int]
    step: int = 1
    hole: int | None = None

    @property
    def side(self) -> int:
        return -(-(self.tile + 2 * self.radius) // self.step)

    @property
    def padding(self) -> tuple[int, int, int, int]:
        """``F.pad`` padding (left, right, top, bottom) of the frame's grid."""
        h, w = self.grid
        r, t = self.radius, self.tile
        return (r, r + (-w) % t, r, r + (-h) % t)

    @property
    def padded_grid(self) -> tuple[int, int]:
        left, right, top, bottom = self.padding
        return (self.grid[0] + top + bottom, self.grid[1] + left + right)

    @property
    def cells(self) -> torch.Tensor:
        """(L, N) index of each window position in the padded grid, flattened; it depends on
        the geometry alone, so every frame of a video shares one (``_window_cells``)."""
        return _window_cells(
            self.padded_grid, self.radius, self.tile, self.step, self.hole, self.keys.device
        )

    def pad(self, values: torch.Tensor) -> torch.Tensor:
        """(K, h, w) values on the frame's grid -> (K, padded cells), 0 on the padding."""
        return F.pad(values, self.padding).flatten(1)

    def nbytes(self) -> int:
        return self.keys.numel() * self.keys.element_size()


@lru_cache(maxsize=16)
def _window_cells(
    padded_grid: tuple[int, int],
    radius: int,
    tile: int,
    step: int,
    hole: int | None,
    device: torch.device,
) -> torch.Tensor:
    rows, cols = padded_grid
    span = tile + 2 * radius
    side = -(-span // step)
    tiles_y = torch.arange(0, rows - span + 1, tile, device=device)
    tiles_x = torch.arange(0, cols - span + 1, tile, device=device)
    offset = torch.arange(side, device=device) * step
    ys = (tiles_y[:, None] + offset[None])[:, None, :, None]  # (Ty, 1, S, 1)
    xs = (tiles_x[:, None] + offset[None])[None, :, None, :]  # (1, Tx, 1, S)
    cells = (ys * cols + xs).reshape(len(tiles_y) * len(tiles_x), side**2)
    if hole is None:
        return cells
    near = (offset - radius >= -hole) & (offset - radius < tile + hole)
    return cells[:, ~(near[:, None] & near[None, :]).flatten()]


def cut_windows(
    keys: torch.Tensor, radius: int, tile: int, step: int = 1, hole: int | None = None
) -> Windows:
    """(C, h, w) memory keys -> their ``Windows``; with ``hole``, the cells within ``hole`` of
    the tile are left out (a denser window set of the same frame reads them)."""
    c, h, w = keys.shape
    frame = Windows(keys, radius, tile, (h, w), step, hole)
    inside = torch.zeros_like(keys[:1])
    padded = F.pad(torch.cat([keys, inside]), frame.padding, value=0.0)
    padded[c] = _OUTSIDE
    padded[c, radius : radius + h, radius : radius + w] = 0.0
    # Gathering rows of the cell-major keys is ~10x faster than F.unfold (bfloat16, CPU).
    cut = padded.flatten(1).T.contiguous()[frame.cells]
    return Windows(cut, radius, tile, (h, w), step, hole)


def tile_queries(query: torch.Tensor, tile: int) -> torch.Tensor:
    """(C, h, w) query keys -> (L, T², C + 1) with a constant 1 channel (meets the memory's
    inside/outside channel)."""
    c, h, w = query.shape
    padded = F.pad(torch.cat([query, torch.ones_like(query[:1])]), (0, (-w) % tile, 0, (-h) % tile))
    rows, cols = padded.shape[1] // tile, padded.shape[2] // tile
    tiles = padded.reshape(c + 1, rows, tile, cols, tile).permute(1, 3, 2, 4, 0)
    return tiles.reshape(rows * cols, tile * tile, c + 1)


#: Objects read together: the gathered values cost (objects x tiles x T² x k), so objects go in
#: chunks of this many to bound memory whatever their number.
OBJECT_CHUNK = 16


def read(
    query: torch.Tensor,
    memories: Sequence[tuple[Windows, torch.Tensor, torch.Tensor]],
    *,
    top_k: int,
    temperature: float,
    first_share: torch.Tensor | None = None,
    first_memories: int = 1,
    stacked: torch.Tensor | None = None,
) -> torch.Tensor:
    """(K, h, w) values for ``query`` keys (C, h, w) from ``memories``, each
    ``(windows, values (K, h, w), valid (K,) bool or (K, h, w) weights)``, all cut with the
    same tile.

    Each query cell softmaxes its ``top_k`` highest cosine affinities over all frames' windows
    (temperature ``temperature``) and averages the values there; an object averages only over
    frames where it is ``valid`` (it was known in that frame), and reads 0 where none is.
    ``first_share`` (K,) mixes into each object's value that share of the average over those of
    its top-k cells that lie in the first ``first_memories`` memories (one frame's window sets),
    where there are any: the first frame keeps its say however many later frames outvote it.
    Values are looked up by cell index, never cut into windows, so the cost in objects is that
    of the output. ``stacked``: the memories' window keys already concatenated (L, N, C + 1).
    """
    h, w = query.shape[1:]
    num_objects = memories[0][1].shape[0]
    tile = memories[0][0].tile
    queries = tile_queries(query, tile).to(memories[0][0].keys.dtype)
    if stacked is None:
        stacked = torch.cat([win.keys for win, _, _ in memories], dim=1)
    sim = torch.bmm(queries, stacked.transpose(1, 2))
    top, index = sim.topk(min(top_k, sim.shape[2]), dim=2)  # (L, T², k)
    del sim
    weight = torch.softmax(top.float() / temperature, dim=2).flatten(1)  # (L, T²·k)
    cells, offset = [], 0
    for windows, _, _ in memories:
        cells.append(windows.cells + offset)
        offset += windows.padded_grid[0] * windows.padded_grid[1]
    picked_cells = torch.cat(cells, dim=1).gather(1, index.flatten(1))  # (L, T²·k)
    first_cells = sum(win.keys.shape[1] for win, _, _ in memories[:first_memories])
    in_first = (index < first_cells).unflatten(0, (1, -1))  # (1, L, T², k)
    rows, cols = -(-h // tile), -(-w // tile)
    out = weight.new_empty((num_objects, rows * tile, cols * tile))
    for start in range(0, num_objects, OBJECT_CHUNK):
        chunk = slice(start, min(start + OBJECT_CHUNK, num_objects))
        values = torch.cat([win.pad(v[chunk]) for win, v, _ in memories], dim=1)
        known = torch.cat([win.pad(_weights(ok[chunk], win.grid)) for win, _, ok in memories], 1)
        mixed = (weight * known[:, picked_cells]).unflatten(2, top.shape[1:])  # (k', L, T², k)
        picked = values[:, picked_cells].unflatten(2, top.shape[1:])
        part = _average(mixed, picked)  # (k', L, T²)
        if first_share is not None:
            first = mixed * in_first
            share = first_share[chunk, None, None] * (first.sum(-1) > _EMPTY)
            part = (1 - share) * part + share * _average(first, picked)
        count = chunk.stop - chunk.start
        part = part.reshape(count, rows, cols, tile, tile).permute(0, 1, 3, 2, 4)
        out[chunk] = part.reshape(count, rows * tile, cols * tile)
    return out[:, :h, :w]


_EMPTY = 1e-6


def _average(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Weighted mean over the last axis; 0 where the weights are all 0."""
    return (weights * values).sum(-1) / weights.sum(-1).clamp_min(_EMPTY)


def _weights(valid: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(K,) bool or (K, h, w) weights -> (K, h, w) float weights."""
    if valid.dim() == 3:
        return valid.float()
    return valid.float()[:, None, None].expand(-1, *grid)
