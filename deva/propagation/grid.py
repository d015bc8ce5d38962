"""Between image pixels and a coarse grid of cells: pool masks or id maps down, read labels up.

The appearance propagator reads objects on its key grid (1/8 of the feature image); these pure
functions move masks onto that grid and the result back to the image. The id-map versions never
build a (K, H, W) stack: pooling counts (object, cell) pairs, and ``upsample_argmax`` gives the
label of each pixel of the bilinearly upsampled probabilities by looking only at the labels of
its four source cells, so both cost O(pixels + objects x cells).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["pool_ids", "pool_masks", "upsample", "upsample_argmax"]


def _windows(length: int, cells: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adaptive average pooling's windows along one axis: cell j averages the positions
    [floor(j·length/cells), ceil((j+1)·length/cells)), so neighbouring windows may share one.
    Returns every (position, cell) pair and each cell's window size."""
    j = torch.arange(cells)
    start = j * length // cells
    size = -(-(j + 1) * length // cells) - start
    first = torch.repeat_interleave(torch.cumsum(size, 0) - size, size)
    position = torch.repeat_interleave(start, size) + torch.arange(int(size.sum())) - first
    return position, torch.repeat_interleave(j, size), size


def pool_masks(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(K, H, W) soft masks -> (K, h, w): each cell's mean over its window (adaptive average
    pooling, whose overlapping windows track better than a partition: breakdance IoU over 30
    frames 0.715 against 0.685, blackswan 0.913 against 0.905)."""
    if masks.shape[0] == 0:
        return masks.new_zeros((0, *grid), dtype=torch.float32)
    return F.adaptive_avg_pool2d(masks[None].float(), tuple(grid))[0]


def pool_ids(index: np.ndarray, count: int, grid: tuple[int, int]) -> torch.Tensor:
    """(H, W) map of object indices (0 = none, k = object k - 1) -> (count, h, w): what
    ``pool_masks`` of the one-hot stack gives, by counting (object, cell) pairs instead."""
    rows, cols = grid
    if count == 0:
        return torch.zeros((0, rows, cols))
    y, row, row_size = _windows(index.shape[0], rows)
    x, col, col_size = _windows(index.shape[1], cols)
    labels = torch.from_numpy(np.ascontiguousarray(index, dtype=np.int64))[y][:, x]
    cell = row[:, None] * cols + col[None, :]
    # Background pairs are counted too (row 0, dropped): cheaper than selecting the labelled.
    sums = torch.bincount(
        (labels * (rows * cols) + cell).flatten(), minlength=(count + 1) * rows * cols
    )
    area = (row_size[:, None] * col_size[None, :]).flatten().float()
    return (sums[rows * cols :].float().reshape(count, rows * cols) / area).reshape(
        count, rows, cols
    )


def upsample(probs: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(C, h, w) -> (C, H, W), bilinear (pixel centres aligned, as ``F.interpolate``)."""
    return F.interpolate(probs[None], size=shape, mode="bilinear", align_corners=False)[0]


def _source(length: int, cells: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each of ``length`` output positions: the two source cells and the weight of the
    second, with ``F.interpolate``'s bilinear, ``align_corners=False`` convention."""
    position = ((torch.arange(length) + 0.5) * cells / length - 0.5).clamp_min(0)
    low = position.floor().long().clamp_max(cells - 1)
    high = (low + 1).clamp_max(cells - 1)
    return low, high, position - low


def upsample_argmax(probs: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(H, W) channel index of the largest of ``upsample(probs, shape)``, in O(pixels) memory.

    A pixel whose four source cells share their largest channel keeps it: the upsampled value
    is a convex combination of the four, so that channel stays the largest. Elsewhere (near
    label boundaries) the four cells' largest channels are compared at the pixel; a channel that
    is largest at none of the four cells is never chosen (it can win only in a near tie).
    """
    best = probs.argmax(0)
    h, w = best.shape
    y0, y1, wy = (t.to(probs.device) for t in _source(shape[0], h))
    x0, x1, wx = (t.to(probs.device) for t in _source(shape[1], w))
    down = torch.arange(1, h + 1, device=best.device).clamp_max(h - 1)
    across = torch.arange(1, w + 1, device=best.device).clamp_max(w - 1)
    # Whether the four cells a pixel reads from agree, decided once per cell on the grid.
    agree = (best == best[:, across]) & (best == best[down]) & (best == best[down][:, across])
    cell = (y0[:, None] * w + x0[None, :]).flatten()
    out = best.flatten()[cell].reshape(shape)
    rows, cols = (~agree.flatten()[cell]).reshape(shape).nonzero(as_tuple=True)
    if len(rows) == 0:
        return out
    corners = [best[y[rows], x[cols]] for y in (y0, y1) for x in (x0, x1)]
    ry, cx = wy[rows].to(probs.dtype), wx[cols].to(probs.dtype)
    weights = ((1 - ry) * (1 - cx), (1 - ry) * cx, ry * (1 - cx), ry * cx)
    top, bottom, left, right = y0[rows] * w, y1[rows] * w, x0[cols], x1[cols]
    sources = (top + left, top + right, bottom + left, bottom + right)
    flat = probs.flatten()
    winner, best_value = None, None
    for channel in corners:
        # Linear indices into the flat (C, h, w) probabilities: one gather per corner.
        value = sum(
            wt * flat[channel * (h * w) + src] for wt, src in zip(weights, sources, strict=True)
        )
        if winner is None:
            winner, best_value = channel, value
            continue
        better = value > best_value
        winner = torch.where(better, channel, winner)
        best_value = torch.where(better, value, best_value)
    out[rows, cols] = winner
    return out
