"""Identity stability of a tracked object, the thing the online/semi-online fusion is for."""

from __future__ import annotations

import numpy as np


def dominant_ids(pred: np.ndarray, gt_mask: np.ndarray) -> list[int]:
    """Per frame, the predicted id covering most of the object (0 when nothing covers it).

    pred: (T, H, W) predicted ids; gt_mask: (T, H, W) bool, the object in the ground truth.
    """
    dominant = []
    for frame_ids, mask in zip(pred, gt_mask, strict=True):
        covered = frame_ids[mask]
        covered = covered[covered > 0]
        dominant.append(int(np.bincount(covered).argmax()) if covered.size else 0)
    return dominant


def count_id_switches(pred: np.ndarray, gt_mask: np.ndarray) -> int:
    """How often the object's dominant predicted id changes to another non-zero id (frames
    where it is not covered at all are skipped, so a miss followed by the same id is no switch)."""
    seen = [i for i in dominant_ids(pred, gt_mask) if i]
    return sum(a != b for a, b in zip(seen, seen[1:], strict=False))
