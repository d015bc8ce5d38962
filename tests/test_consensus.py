"""In-clip consensus (spec §3.5): the exact solver against brute force, and clips worked by hand."""

import itertools

import numpy as np
import pytest

from deva.fusion.consensus import consensus, match_segments, relabel, select
from deva.types import Segmentation, SegmentInfo


def objective(iou: np.ndarray, chosen: np.ndarray) -> float:
    weight = 2 * iou.sum(axis=1) - 1
    return float(weight[chosen].sum())


def feasible(iou: np.ndarray, chosen: np.ndarray) -> bool:
    picked = np.flatnonzero(chosen)
    return not any(iou[a, b] > 0 for a, b in itertools.combinations(picked, 2))


def brute_force(iou: np.ndarray) -> float:
    best = 0.0
    for bits in itertools.product([False, True], repeat=len(iou)):
        chosen = np.array(bits)
        if feasible(iou, chosen):
            best = max(best, objective(iou, chosen))
    return best


def random_instance(rng: np.random.Generator) -> np.ndarray:
    """A random matching graph like a real clip's: segments of n frames, each matched to at most
    one segment of every other frame, IoU in (0.5, 1]."""
    frames = rng.integers(2, 5)
    per_frame = [int(rng.integers(1, 4)) for _ in range(frames)]
    owner = np.repeat(np.arange(frames), per_frame)
    count = len(owner)
    iou = np.zeros((count, count))
    for i, j in itertools.combinations(range(frames), 2):
        a_list = list(np.flatnonzero(owner == i))
        b_list = list(rng.permutation(np.flatnonzero(owner == j)))
        for a in a_list:
            if b_list and rng.random() < 0.6:
                b = b_list.pop()
                iou[a, b] = iou[b, a] = rng.uniform(0.51, 1.0)
    return iou


def test_exact_solver_matches_brute_force_on_random_instances():
    rng = np.random.default_rng(0)
    for _ in range(300):
        iou = random_instance(rng)
        chosen = select(iou)
        assert feasible(iou, chosen)
        assert objective(iou, chosen) == pytest.approx(brute_force(iou), abs=1e-9)


def test_solver_on_dense_conflicts_matches_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(100):
        count = int(rng.integers(3, 11))
        upper = np.triu(rng.random((count, count)) < 0.4, 1)
        iou = np.where(upper | upper.T, rng.uniform(0.51, 1.0, (count, count)), 0.0)
        iou = np.triu(iou, 1) + np.triu(iou, 1).T
        chosen = select(iou)
        assert feasible(iou, chosen)
        assert objective(iou, chosen) == pytest.approx(brute_force(iou), abs=1e-9)


def box(shape, rows, cols, value=1) -> np.ndarray:
    ids = np.zeros(shape, np.int32)
    ids[rows, cols] = value
    return ids


def frame(*parts: tuple[np.ndarray, SegmentInfo]) -> Segmentation:
    ids = np.zeros(parts[0][0].shape, np.int32) if parts else np.zeros((8, 8), np.int32)
    for mask, info in parts:
        ids[mask > 0] = info.id
    return Segmentation(ids, tuple(info for _, info in parts))


SHAPE = (8, 8)
A = box(SHAPE, slice(0, 4), slice(0, 4))
B = box(SHAPE, slice(5, 8), slice(5, 8))


def test_segment_seen_in_one_of_three_frames_is_dropped_two_of_three_survives():
    clip = [
        frame((A, SegmentInfo(1)), (B, SegmentInfo(2))),
        frame((A, SegmentInfo(7))),
        frame(),
    ]
    result = consensus(clip)
    # A: frames 0 and 1 (support 1, weight 1 each; only one of the pair is chosen). B: alone.
    chosen = result.segmentation
    assert len(chosen.segments) == 1
    np.testing.assert_array_equal(chosen.ids > 0, A > 0)


def test_split_segment_loses_to_the_whole_one_with_more_support():
    left = box(SHAPE, slice(0, 4), slice(0, 3))  # 12 of A's 16 pixels: IoU 0.75 with A
    right = box(SHAPE, slice(0, 4), slice(3, 4))  # 4 pixels: IoU 0.25, matches nothing
    clip = [
        frame((A, SegmentInfo(1, category_id=5))),
        frame((A, SegmentInfo(1, category_id=5))),
        frame((left, SegmentInfo(1, category_id=9)), (right, SegmentInfo(2))),
    ]
    result = consensus(clip)
    # Supports: A0 = A1 = 1 + 0.75, left = 1.5; all three conflict; a whole A wins.
    assert len(result.segmentation.segments) == 1
    np.testing.assert_array_equal(result.segmentation.ids > 0, A > 0)
    winner = result.segmentation.segments[0].id
    assert sorted(v.category_id for v in result.votes[winner]) == [5, 5, 9]


def test_segments_of_different_isthing_groups_never_match():
    clip = [
        frame((A, SegmentInfo(1, is_thing=True))),
        frame((A, SegmentInfo(1, is_thing=False))),
    ]
    assert consensus(clip).segmentation.segments == ()


def test_smaller_selected_segments_win_overlaps():
    big = box(SHAPE, slice(0, 8), slice(0, 8))
    small = box(SHAPE, slice(2, 4), slice(2, 4))
    # Each frame has one segment; frames cannot hold overlapping segments, so the overlap comes
    # from two frames' selections: the big one seen in 0,1 and the small one in 2,3.
    clip = [
        frame((big, SegmentInfo(1))),
        frame((big, SegmentInfo(1))),
        frame((small, SegmentInfo(1))),
        frame((small, SegmentInfo(1))),
    ]
    ids = consensus(clip).segmentation.ids
    assert len(np.unique(ids)) == 2 and ids.min() > 0  # the big one covers everything else
    assert (ids == ids[3, 3]).sum() == 4 and ids[3, 3] != ids[0, 0]


def test_relabel_and_matching_are_per_frame_pairs():
    clip = [frame((A, SegmentInfo(4)), (B, SegmentInfo(9))), frame((A, SegmentInfo(4)))]
    maps, segments = relabel(clip)
    assert [s.frame for s in segments] == [0, 0, 1]
    assert [s.info.id for s in segments] == [4, 9, 4]
    iou = match_segments(maps, segments)
    assert iou[0, 2] == iou[2, 0] == 1.0 and iou[1].sum() == 0


def test_empty_clip_gives_an_empty_consensus():
    result = consensus([frame(), frame()])
    assert result.segmentation.segments == () and not result.segmentation.ids.any()
