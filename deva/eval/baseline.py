"""The plain tracking-by-detection baseline: the quality floor decoupled propagation must beat."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from scipy.optimize import linear_sum_assignment

from deva.errors import DevaError
from deva.types import Segmentation

__all__ = ["track_by_detection"]

# Ids below this are compacted by counting (a table of this many entries), others by sorting.
_MAX_COUNTED_ID = 1 << 20


def track_by_detection(
    detections: Iterable[Segmentation], *, iou_threshold: float = 0.5
) -> Iterator[np.ndarray]:
    """Link per-frame detections into objects by IoU with the previous output frame only.

    Each detected segment is matched one-to-one (Hungarian, maximising the summed IoU) to an
    object of the previous output frame with IoU > ``iou_threshold`` and keeps that object's id;
    every other non-empty segment starts a new object with an id never used before. There is no
    propagation and no memory beyond one frame, so a single miss or split ends a track: this is
    the floor that propagation and in-clip consensus are measured against.

    Yields one (H, W) int32 object-id map per detection, 0 = background.
    """
    if not 0.0 <= iou_threshold < 1.0:
        raise DevaError(f"iou_threshold must be in [0, 1), got {iou_threshold}")
    previous: np.ndarray | None = None
    next_id = 1
    for frame_index, detection in enumerate(detections):
        segment_ids, segment_index = _compact(detection.ids)
        if previous is not None and previous.shape != detection.ids.shape:
            raise DevaError(
                f"detection {frame_index} has shape {detection.ids.shape}, "
                f"the previous one {previous.shape}; all frames must have one size"
            )
        matches = _match(previous, segment_ids, segment_index, iou_threshold)
        lookup = np.zeros(len(segment_ids), dtype=np.int32)
        for position, segment_id in enumerate(segment_ids):
            if segment_id == 0:
                continue
            if position in matches:
                lookup[position] = matches[position]
            else:
                lookup[position] = next_id
                next_id += 1
        previous = lookup[segment_index]
        yield previous


def _match(
    previous: np.ndarray | None,
    segment_ids: np.ndarray,
    segment_index: np.ndarray,
    iou_threshold: float,
) -> dict[int, int]:
    """{position in segment_ids: previous object id} for the one-to-one matches above threshold."""
    if previous is None:
        return {}
    object_ids, object_index = _compact(previous)
    num_objects, num_segments = len(object_ids), len(segment_ids)
    joint = np.bincount(
        (object_index * num_segments + segment_index).ravel(),
        minlength=num_objects * num_segments,
    ).reshape(num_objects, num_segments)
    object_area, segment_area = joint.sum(axis=1), joint.sum(axis=0)
    union = object_area[:, None] + segment_area[None, :] - joint
    iou = np.where(union > 0, joint / np.maximum(union, 1), 0.0)
    # Background (id 0) on either side never takes part in a match.
    iou[object_ids == 0, :] = 0.0
    iou[:, segment_ids == 0] = 0.0
    iou[iou <= iou_threshold] = 0.0
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return {int(c): int(object_ids[r]) for r, c in zip(rows, cols, strict=True) if iou[r, c] > 0}


def _compact(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct ids, (H, W) index of each pixel's id in them): ``np.unique`` with
    ``return_inverse``, by counting when ids are small, since sorting every frame is slow."""
    if ids.size and int(ids.min()) >= 0 and int(ids.max()) < _MAX_COUNTED_ID:
        present = np.flatnonzero(np.bincount(ids.ravel()))
        rank = np.zeros(int(present[-1]) + 1, dtype=np.intp)
        rank[present] = np.arange(len(present))
        return present, rank[ids]
    values, index = np.unique(ids, return_inverse=True)
    return values, index.reshape(ids.shape)
