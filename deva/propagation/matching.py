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

import torch
import torch.nn.functional as F

__all__ = ["Windows", "cut_windows", "read", "tile_queries", "window_values"]

# Padded memory cells get this similarity, so no top-k ever picks them.
_OUTSIDE = -1.0e4


@dataclass(frozen=True)
class Windows:
    """A memory frame's keys, one window per query tile: (L, C + 1, S²) with S = tile + 2·radius;
    the extra channel holds 0 inside the frame and ``_OUTSIDE`` on the padding."""

    keys: torch.Tensor
    radius: int
    tile: int
    grid: tuple[int, int]

    @property
    def side(self) -> int:
        return self.tile + 2 * self.radius

    def nbytes(self) -> int:
        return self.keys.numel() * self.keys.element_size()


def _padding(grid: tuple[int, int], tile: int, radius: int) -> tuple[int, int, int, int]:
    h, w = grid
    return (radius, radius + (-w) % tile, radius, radius + (-h) % tile)


def cut_windows(keys: torch.Tensor, radius: int, tile: int) -> Windows:
    """(C, h, w) memory keys -> their ``Windows``."""
    c, h, w = keys.shape
    inside = torch.zeros_like(keys[:1])
    padded = F.pad(torch.cat([keys, inside]), _padding((h, w), tile, radius), value=0.0)
    padded[c] = _OUTSIDE
    padded[c, radius : radius + h, radius : radius + w] = 0.0
    side = tile + 2 * radius
    cut = F.unfold(padded[None], side, stride=tile)[0]  # ((C + 1)·S², L)
    cut = cut.reshape(c + 1, side * side, -1).permute(2, 0, 1).contiguous()
    return Windows(cut, radius, tile, (h, w))


def window_values(values: torch.Tensor, windows: Windows) -> torch.Tensor:
    """(K, h, w) memory values -> (L, K, S²), cut like ``windows``."""
    k = values.shape[0]
    padded = F.pad(values, _padding(windows.grid, windows.tile, windows.radius))
    cut = F.unfold(padded[None], windows.side, stride=windows.tile)[0]
    return cut.reshape(k, windows.side**2, -1).permute(2, 0, 1)


def tile_queries(query: torch.Tensor, tile: int) -> torch.Tensor:
    """(C, h, w) query keys -> (L, T², C + 1) with a constant 1 channel (meets the memory's
    inside/outside channel)."""
    c, h, w = query.shape
    padded = F.pad(torch.cat([query, torch.ones_like(query[:1])]), (0, (-w) % tile, 0, (-h) % tile))
    rows, cols = padded.shape[1] // tile, padded.shape[2] // tile
    tiles = padded.reshape(c + 1, rows, tile, cols, tile).permute(1, 3, 2, 4, 0)
    return tiles.reshape(rows * cols, tile * tile, c + 1)


def read(
    query: torch.Tensor,
    memories: Sequence[tuple[Windows, torch.Tensor, torch.Tensor]],
    *,
    top_k: int,
    temperature: float,
) -> torch.Tensor:
    """(K, h, w) values for ``query`` keys (C, h, w) from ``memories``, each
    ``(windows, values (K, h, w), valid (K,) bool or (K, h, w) weights)``, all cut with the
    same tile.

    Each query cell softmaxes its ``top_k`` highest cosine affinities over all frames' windows
    (temperature ``temperature``) and averages the values there; an object averages only over
    frames where it is ``valid`` (it was known in that frame), and reads 0 where none is.
    """
    c, h, w = query.shape
    num_objects = memories[0][1].shape[0]
    tile = memories[0][0].tile
    queries = tile_queries(query, tile)
    sims, values, valid = [], [], []
    for windows, frame_values, frame_valid in memories:
        sims.append(torch.bmm(queries, windows.keys))  # (L, T², S²)
        cut = window_values(frame_values, windows)
        values.append(cut)
        if frame_valid.dim() == 3:  # per-cell weights
            valid.append(window_values(frame_valid.to(cut.dtype), windows))
        else:
            known = frame_valid.to(cut.dtype)[None, :, None]
            valid.append(known.expand(cut.shape[0], -1, cut.shape[2]))
    sim = torch.cat(sims, dim=2) if len(sims) > 1 else sims[0]
    top, index = sim.topk(min(top_k, sim.shape[2]), dim=2)  # (L, T², k)
    weight = torch.softmax(top / temperature, dim=2)
    index = index.flatten(1)[:, None].expand(-1, num_objects, -1)  # (L, K, T²·k)
    picked = torch.cat(values, dim=2).gather(2, index).unflatten(2, top.shape[1:])
    known = torch.cat(valid, dim=2).gather(2, index).unflatten(2, top.shape[1:])
    weight = weight[:, None] * known
    out = (weight * picked).sum(-1) / weight.sum(-1).clamp_min(1e-6)  # (L, K, T²)
    rows, cols = -(-h // tile), -(-w // tile)
    out = out.reshape(rows, cols, num_objects, tile, tile).permute(2, 0, 3, 1, 4)
    return out.reshape(num_objects, rows * tile, cols * tile)[:, :h, :w]
