"""In-clip consensus with unknown association (spec §3.5): denoise a keyframe's segmentation
by voting among the segmentations of a short clip, all aligned to the keyframe.

Pure functions: the alignment (which needs a propagator) happens before, in the tracker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix, csr_array

from deva.fusion.merge import overlaps
from deva.idmap import index_map
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
        offset = len(segments)
        segments.extend(ClipSegment(frame_index, info) for info in frame.segments)
        index = index_map(frame.ids, [info.id for info in frame.segments])
        maps.append(np.where(index > 0, index + offset, 0).astype(np.int32))
    return maps, segments


def match_segments(
    maps: Sequence[np.ndarray],
    segments: Sequence[ClipSegment],
    *,
    iou_threshold: float = 0.5,
) -> csr_array:
    """(M, M) symmetric sparse IoU of matched pairs: segments of different frames, same
    isthing group, IoU > threshold. Within one id map a segment overlaps at most one other by
    more than half, so the matches are unique and need no assignment solver."""
    count = len(segments)
    by_frame: dict[int, list[int]] = {}
    for position, segment in enumerate(segments, start=1):
        by_frame.setdefault(segment.frame, []).append(position)
    frames = sorted(by_frame)
    groups = np.asarray([_group_code(s.info.is_thing) for s in segments])
    first: list[np.ndarray] = []
    second: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for a_pos, i in enumerate(frames):
        for j in frames[a_pos + 1 :]:
            a_ids, b_ids = np.asarray(by_frame[i]), np.asarray(by_frame[j])
            found = overlaps(maps[i], a_ids, maps[j], b_ids)
            pair_iou = found.iou()
            eligible = (pair_iou > iou_threshold) & (
                groups[a_ids[found.rows] - 1] == groups[b_ids[found.cols] - 1]
            )
            rows, cols = found.rows[eligible], found.cols[eligible]
            picked = _first_unique_matches(rows, cols)
            first.append(a_ids[rows[picked]] - 1)
            second.append(b_ids[cols[picked]] - 1)
            values.append(pair_iou[eligible][picked])
    a = np.concatenate([np.zeros(0, np.int64), *first, *second])
    b = np.concatenate([np.zeros(0, np.int64), *second, *first])
    data = np.concatenate([np.zeros(0), *values, *values])
    iou = csr_array((data, (a, b)), shape=(count, count))
    iou.sort_indices()
    return iou


def select(iou: np.ndarray | csr_array) -> np.ndarray:
    """Exact maximum of Σ x_a (2·S_a − 1) s.t. x_a + x_b ≤ 1 for matched (conflicting) pairs,
    S_a = Σ_b IoU_ab; a max-weight independent set, solved by HiGHS through scipy's ``milp``.

    A segment nobody matched has weight −1 and is never chosen; of mutually matched segments at
    most one survives, the best supported. Returns the boolean choice per segment.
    """
    iou = csr_array(iou)
    weight = 2.0 * np.asarray(iou.sum(axis=1)).ravel() - 1.0
    chosen = np.zeros(len(weight), dtype=bool)
    candidates = np.flatnonzero(weight > 0)
    if len(candidates) == 0:
        return chosen
    position = np.full(len(weight), -1)
    position[candidates] = np.arange(len(candidates))
    edges = iou.tocoo()
    a, b = position[edges.row], position[edges.col]
    keep = (a >= 0) & (b >= 0) & (a < b) & (edges.data > 0)
    order = np.lexsort((b[keep], a[keep]))  # row-major, as numpy lists a dense matrix's edges
    rows, cols = a[keep][order], b[keep][order]
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
        row = iou.indices[iou.indptr[k] : iou.indptr[k + 1]]
        partners = [segments[b].info for b in row]
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


def _first_unique_matches(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Positions, in the eligible (row, col) pairs sorted by row then col, of each row's (list
    order) first column not taken by an earlier row (spec §3.5 step 3)."""
    if len(np.unique(rows)) == len(rows) and len(np.unique(cols)) == len(cols):
        return np.arange(len(rows))  # IoU > 0.5: always unique
    taken: set[int] = set()
    done: set[int] = set()
    picked = []
    for position, (row, column) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
        if row not in done and column not in taken:
            picked.append(position)
            taken.add(column)
            done.add(row)
    return np.asarray(picked, dtype=np.int64)


def _group_code(is_thing: bool | None) -> int:
    return {None: 0, False: 1, True: 2}[is_thing]
