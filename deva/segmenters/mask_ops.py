"""Pure mask helpers shared by the learned segmenters: the SAM point grid, the mask filters,
box NMS and overlap resolution (spec §5.1, §5.2). numpy in, numpy out; no model, no file."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "box_nms",
    "grid_points",
    "mask_boxes",
    "points_in_unsegmented",
    "resolve_overlaps",
    "stability_scores",
    "suppress_small",
]

UNSEGMENTED_DOWNSCALE = 16
"""The tracked foreground is blurred by a ×1/16 area resize before sampling at grid points."""
UNSEGMENTED_MAX = 0.01
"""A grid point is prompted only where the blurred tracked foreground is below this (§5.1)."""


def grid_points(points_per_side: int, height: int, width: int) -> np.ndarray:
    """(n², 2) float32 (x, y) pixel positions at normalised (k + 0.5) / n, row by row."""
    if points_per_side < 1:
        raise ValueError(f"points_per_side must be >= 1, got {points_per_side}")
    steps = (np.arange(points_per_side, dtype=np.float32) + 0.5) / points_per_side
    ys, xs = np.meshgrid(steps * height, steps * width, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def points_in_unsegmented(points: np.ndarray, unsegmented: np.ndarray | None) -> np.ndarray:
    """The points (x, y) that fall clearly outside every tracked object.

    unsegmented: (H, W) bool, True where nothing is tracked; None keeps every point. The tracked
    foreground is blurred (area resize to 1/16) so points near an object's edge are dropped too.
    """
    if unsegmented is None or len(points) == 0:
        return points
    height, width = unsegmented.shape
    foreground = (~unsegmented.astype(bool)).astype(np.float32)
    small_w = max(1, round(width / UNSEGMENTED_DOWNSCALE))
    small_h = max(1, round(height / UNSEGMENTED_DOWNSCALE))
    blurred = cv2.resize(foreground, (small_w, small_h), interpolation=cv2.INTER_AREA)
    cols = np.clip((points[:, 0] * small_w / width).astype(int), 0, small_w - 1)
    rows = np.clip((points[:, 1] * small_h / height).astype(int), 0, small_h - 1)
    return points[blurred[rows, cols] < UNSEGMENTED_MAX]


def stability_scores(logits: np.ndarray, threshold: float = 0.0, offset: float = 1.0) -> np.ndarray:
    """(N,) IoU of each mask thresholded at ``threshold + offset`` vs ``threshold - offset``.

    logits: (N, H, W). A mask whose outline barely moves when the threshold shifts is stable.
    """
    flat = logits.reshape(len(logits), -1)
    inner = (flat > threshold + offset).sum(axis=1)
    outer = (flat > threshold - offset).sum(axis=1)
    return np.where(outer > 0, inner / np.maximum(outer, 1), 0.0).astype(np.float32)


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """(N, 4) float32 boxes (x0, y0, x1, y1), inclusive pixel bounds; empty masks give zeros."""
    boxes = np.zeros((len(masks), 4), np.float32)
    for index, mask in enumerate(masks):
        rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
        if rows.any():
            y = np.flatnonzero(rows)
            x = np.flatnonzero(cols)
            boxes[index] = (x[0], y[0], x[-1], y[-1])
    return boxes


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first.

    A box is dropped when its IoU with an already kept box is above ``iou_threshold``.
    boxes: (N, 4) (x0, y0, x1, y1); scores: (N,).
    """
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    boxes = np.asarray(boxes, np.float64)
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    keep: list[int] = []
    suppressed = np.zeros(len(boxes), bool)
    for index in order:
        if suppressed[index]:
            continue
        keep.append(int(index))
        x0 = np.maximum(boxes[index, 0], boxes[:, 0])
        y0 = np.maximum(boxes[index, 1], boxes[:, 1])
        x1 = np.minimum(boxes[index, 2], boxes[:, 2])
        y1 = np.minimum(boxes[index, 3], boxes[:, 3])
        inter = np.maximum(x1 - x0, 0) * np.maximum(y1 - y0, 0)
        union = areas[index] + areas - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        suppressed |= iou > iou_threshold
    return np.asarray(keep, dtype=np.int64)


def resolve_overlaps(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping id map where **smaller masks win** (painted in descending area order).

    masks: (N, H, W) bool. Returns (ids, kept): an (H, W) int32 map with ids 1..K and the (K,)
    indices into ``masks`` of the masks that kept at least one pixel, in id order (id k is
    ``masks[kept[k - 1]]``). Among equal areas the later mask wins.
    """
    count, height, width = masks.shape
    canvas = np.full((height, width), -1, np.int64)
    areas = masks.reshape(count, -1).sum(axis=1)
    for index in np.argsort(-areas, kind="stable"):
        canvas[masks[index]] = index
    return _renumber(canvas, count)


def suppress_small(
    masks: np.ndarray, overlap_threshold: float = 0.8
) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping id map where **larger masks win**; a mask is kept only if it wins at least
    ``overlap_threshold`` of its own pixels (spec ``suppress_small_objects``). Same return as
    ``resolve_overlaps``; pixels of dropped masks become 0."""
    count, height, width = masks.shape
    canvas = np.full((height, width), -1, np.int64)
    areas = masks.reshape(count, -1).sum(axis=1)
    for index in np.argsort(areas, kind="stable"):
        canvas[masks[index]] = index
    won = np.bincount(canvas[canvas >= 0], minlength=count)
    dropped = won < overlap_threshold * areas
    canvas[(canvas >= 0) & dropped[np.maximum(canvas, 0)]] = -1
    return _renumber(canvas, count)


def _renumber(canvas: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Canvas of mask indices (-1 = none) -> (ids 1..K in index order, kept indices)."""
    present = np.zeros(count, bool)
    present[np.unique(canvas[canvas >= 0])] = True
    kept = np.flatnonzero(present)
    lookup = np.zeros(count + 1, np.int32)
    lookup[kept + 1] = np.arange(1, len(kept) + 1, dtype=np.int32)
    return lookup[canvas + 1], kept
