"""In-clip consensus with unknown association (spec §3.5): denoise a keyframe's segmentation
by voting among the segmentations of a short clip, all aligned to the keyframe.

Pure functions: the alignment (which needs a propagator) happens before, in the tracker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from deva.fusion.merge import overlap_counts
from deva.types import Segmentation, SegmentInfo


@dataclass(frozen=True)
class Consensus:
    """The keyframe segmentation chosen by the clip, and the meta of every segment that voted.

    segmentation: ids are consensus ids; segments in ascending id (frame order, then list order).
    votes: consensus id -> infos of the segment and all segments matched with it (its own first),
        so categories and scores of the whole clip reach the object registry.
    """

    segmentation: Segmentation
    votes: dict[int, tuple[SegmentInfo, ...]]


@dataclass(frozen=True)
class ClipSegment:
    """One segment of the clip after relabelling: which frame, its info, its aligned mask id."""

    frame: int
    info: SegmentInfo


def relabel(frames: Sequence[Segmentation]) -> tuple[list[np.ndarray], list[ClipSegment]]:
    """Give every segment of the clip a unique id 1..M (frame order, then list order).

    Returns the relabelled id maps and, at position id-1, each segment's origin.
    """
    maps, segments = [], []
    for frame_index, frame in enumerate(frames):
        lut_size = max([s.id for s in frame.segments], default=0) + 1
        lut = np.zeros(max(lut_size, int(frame.ids.max(initial=0)) + 1), dtype=np.int32)
        for info in frame.segments:
            segments.append(ClipSegment(frame_index, info))
            lut[info.id] = len(segments)
        maps.append(lut[frame.ids])
    return maps, segments


def match_segments(
    maps: Sequence[np.ndarray],
    segments: Sequence[ClipSegment],
    *,
    iou_threshold: float = 0.5,
) -> np.ndarray:
    """(M, M) symmetric IoU of matched pairs (0 elsewhere): segments of different frames, same
    isthing group, IoU > threshold. Within one id map a segment overlaps at most one other by
    more than half, so the matches are unique and need no assignment solver."""
    count = len(segments)
    iou = np.zeros((count, count))
    by_frame: dict[int, list[int]] = {}
    for position, segment in enumerate(segments, start=1):
        by_frame.setdefault(segment.frame, []).append(position)
    frames = sorted(by_frame)
    groups = np.asarray([_group_code(s.info.is_thing) for s in segments])
    for a_pos, i in enumerate(frames):
        for j in frames[a_pos + 1 :]:
            a_ids, b_ids = np.asarray(by_frame[i]), np.asarray(by_frame[j])
            inter, a_area, b_area = overlap_counts(maps[i], a_ids, maps[j], b_ids)
            union = a_area[:, None] + b_area[None, :] - inter
            pair_iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
            eligible = (pair_iou > iou_threshold) & (
                groups[a_ids - 1][:, None] == groups[b_ids - 1][None, :]
            )
            for row, column in _first_unique_matches(eligible):
                a, b = a_ids[row] - 1, b_ids[column] - 1
                iou[a, b] = iou[b, a] = pair_iou[row, column]
    return iou


def select(iou: np.ndarray) -> np.ndarray:
    """Exact maximum of Σ x_a (2·S_a − 1) s.t. x_a + x_b ≤ 1 for matched (conflicting) pairs,
    S_a = Σ_b IoU_ab; a max-weight independent set, solved by HiGHS through scipy's ``milp``.

    A segment nobody matched has weight −1 and is never chosen; of mutually matched segments at
    most one survives, the best supported. Returns the boolean choice per segment.
    """
    weight = 2.0 * iou.sum(axis=1) - 1.0
    chosen = np.zeros(len(weight), dtype=bool)
    candidates = np.flatnonzero(weight > 0)
    if len(candidates) == 0:
        return chosen
    sub = iou[np.ix_(candidates, candidates)] > 0
    rows, cols = np.nonzero(np.triu(sub, k=1))
    if len(rows) == 0:
        chosen[candidates] = True
        return chosen
    edges = np.arange(len(rows))
    matrix = coo_matrix(
        (np.ones(2 * len(rows)), (np.concatenate([edges, edges]), np.concatenate([rows, cols]))),
        shape=(len(rows), len(candidates)),
    )
    result = milp(
        c=-weight[candidates],
        constraints=LinearConstraint(matrix.tocsr(), -np.inf, 1.0),
        integrality=np.ones(len(candidates)),
        bounds=Bounds(0, 1),
    )
    if result.x is None:  # HiGHS always solves these small feasible programs; be explicit
        raise RuntimeError(f"consensus integer program failed: {result.message}")
    chosen[candidates] = result.x > 0.5
    return chosen


def consensus(aligned: Sequence[Segmentation], *, iou_threshold: float = 0.5) -> Consensus:
    """The consensus of a clip whose segmentations were all aligned to the keyframe.

    Selected segments are painted in descending area (smaller ones win overlaps); each carries
    the meta of the segments matched with it.
    """
    if not aligned:
        raise ValueError("consensus needs at least one frame")
    maps, segments = relabel(aligned)
    height, width = aligned[0].shape
    if not segments:
        return Consensus(Segmentation.empty(height, width), {})
    iou = match_segments(maps, segments, iou_threshold=iou_threshold)
    chosen = select(iou)
    canvas = paint_selected(maps, segments, chosen)
    present = set(np.unique(canvas).tolist())
    infos, votes = [], {}
    for k in np.flatnonzero(chosen):
        if k + 1 not in present:
            continue
        own = segments[k].info
        infos.append(SegmentInfo(int(k + 1), own.category_id, own.score, own.is_thing))
        partners = [segments[b].info for b in np.flatnonzero(iou[k] > 0)]
        votes[int(k + 1)] = (own, *partners)
    return Consensus(Segmentation(canvas, tuple(infos)), votes)


def paint_selected(
    maps: Sequence[np.ndarray], segments: Sequence[ClipSegment], chosen: np.ndarray
) -> np.ndarray:
    """Paint the chosen segments in descending area, so smaller ones win overlaps (equal
    areas: the later segment wins). Each pixel takes its highest-ranked covering segment,
    which is what painting in that order leaves, in one pass per frame."""
    count = len(segments)
    areas = np.zeros(count + 1, dtype=np.int64)
    for frame_map in maps:
        areas += np.bincount(frame_map.ravel(), minlength=count + 1)[: count + 1]
    picked = np.flatnonzero(chosen) + 1
    order = picked[np.argsort(-areas[picked], kind="stable")]
    rank = np.zeros(count + 1, dtype=np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    best_rank = np.zeros(maps[0].shape, dtype=np.int64)
    canvas = np.zeros(maps[0].shape, dtype=np.int32)
    for frame_map in maps:
        frame_rank = rank[frame_map]
        wins = frame_rank > best_rank
        best_rank[wins] = frame_rank[wins]
        canvas[wins] = frame_map[wins]
    return canvas


def _first_unique_matches(eligible: np.ndarray) -> list[tuple[int, int]]:
    """Per row (list order), the first column not taken by an earlier row (spec §3.5 step 3)."""
    rows, cols = np.nonzero(eligible)
    if len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols):
        return list(zip(rows.tolist(), cols.tolist(), strict=True))  # IoU > 0.5: always unique
    taken: set[int] = set()
    matches = []
    for row in range(eligible.shape[0]):
        for column in np.flatnonzero(eligible[row]):
            if int(column) not in taken:
                matches.append((row, int(column)))
                taken.add(int(column))
                break
    return matches


def _group_code(is_thing: bool | None) -> int:
    return {None: 0, False: 1, True: 2}[is_thing]
