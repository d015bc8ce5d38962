"""Association and painting on hand-drawn id maps (spec §3.6); expected values worked by hand."""

import numpy as np
import pytest

from deva.fusion.merge import associate, drop_empty_segments, keep_segments, overlap_counts, paint
from deva.types import Segmentation, SegmentInfo


def grid(rows: list[str]) -> np.ndarray:
    """'.' = 0, digits = ids; one string per row."""
    return np.array([[0 if c == "." else int(c) for c in row] for row in rows], dtype=np.int32)


def seg(ids: np.ndarray, *infos: SegmentInfo) -> Segmentation:
    return Segmentation(
        ids=ids, segments=infos or tuple(SegmentInfo(int(i)) for i in np.unique(ids) if i)
    )


PROPAGATED = grid(
    [
        "11..",
        "11..",
        "..22",
        "..22",
    ]
)


def test_overlap_counts_by_hand():
    det = grid(
        [
            "1...",
            "1...",
            "....",
            "...2",
        ]
    )
    inter, a_area, b_area = overlap_counts(PROPAGATED, [1, 2], det, [1, 2])
    assert inter.tolist() == [[2, 0], [0, 1]]
    assert a_area.tolist() == [4, 4] and b_area.tolist() == [2, 1]


def test_associate_matches_above_half_iou_only():
    # segment 5 covers object 1 plus one pixel: IoU 4/5 -> match.
    # segment 6 covers 2 of object 2's 4 pixels: IoU 2/4 = 0.5, not > 0.5 -> no match.
    det = grid(
        [
            "555.",
            "55..",
            "..6.",
            "..6.",
        ]
    )
    assert associate(PROPAGATED, {1: None, 2: None}, seg(det)) == [(1, 5)]


def test_associate_respects_isthing_groups():
    det = grid(
        [
            "55..",
            "55..",
            "....",
            "....",
        ]
    )
    stuff = seg(det, SegmentInfo(5, is_thing=False))
    assert associate(PROPAGATED, {1: True, 2: True}, stuff) == []
    assert associate(PROPAGATED, {1: False, 2: True}, stuff) == [(1, 5)]


def test_associate_is_one_to_one_in_list_order():
    # Objects 1 and 3 occupy the same pixels (IoU 1 with segment 7), which cannot happen in an
    # id map, so use two tracked ids of which only one is on the map: the first in order wins.
    det = grid(
        [
            "77..",
            "77..",
            "....",
            "....",
        ]
    )
    assert associate(PROPAGATED, {1: None, 2: None}, seg(det)) == [(1, 7)]
    assert associate(PROPAGATED, {}, seg(det)) == []


def test_paint_union_for_matches_new_objects_and_missed_ones_keep_pixels():
    det = grid(
        [
            "555.",
            "55..",
            "....",
            "9...",
        ]
    )
    detection = seg(det)
    pairs = associate(PROPAGATED, {1: None, 2: None}, detection)
    assert pairs == [(1, 5)]
    canvas = paint(PROPAGATED, {1: None, 2: None}, detection, pairs, {9: 3})
    expected = grid(
        [
            "111.",
            "11..",
            "..22",
            "3.22",
        ]
    )
    np.testing.assert_array_equal(canvas, expected)


def test_paint_smaller_wins_overlaps():
    # Object 1 (propagated, 9 px) and new segment 4 (2 px) overlap: the smaller is painted last.
    propagated = grid(
        [
            "111",
            "111",
            "111",
        ]
    )
    det = grid(
        [
            "...",
            ".44",
            "...",
        ]
    )
    canvas = paint(propagated, {1: None}, seg(det), [], {4: 2})
    np.testing.assert_array_equal(canvas, grid(["111", "122", "111"]))


def test_paint_detections_beat_a_smaller_unconfirmed_object():
    # A stale object 1 (3 px, not re-detected) lies on a detected new segment 4 (6 px): the
    # segment, backed by this frame's detection, keeps all its pixels; object 1 keeps the rest.
    propagated = grid(
        [
            "1..",
            "11.",
            "...",
        ]
    )
    det = grid(
        [
            "444",
            "444",
            "...",
        ]
    )
    canvas = paint(propagated, {1: None}, seg(det), [], {4: 2})
    np.testing.assert_array_equal(canvas, grid(["222", "222", "..."]))


def test_paint_things_beat_stuff_whatever_the_area():
    # A big thing (9 px) overlaps a small stuff segment (2 px): things are painted after stuff.
    propagated = grid(
        [
            "111",
            "111",
            "111",
        ]
    )
    det = grid(
        [
            "...",
            ".44",
            "...",
        ]
    )
    detection = seg(det, SegmentInfo(4, is_thing=False))
    canvas = paint(propagated, {1: True}, detection, [], {4: 2})
    np.testing.assert_array_equal(canvas, propagated)


def test_empty_and_kept_segments():
    det = grid(["11", ".."])
    with_ghost = Segmentation(det, (SegmentInfo(1), SegmentInfo(2)))
    assert [s.id for s in drop_empty_segments(with_ghost).segments] == [1]
    two = grid(["12", ".."])
    kept = keep_segments(seg(two), [2])
    np.testing.assert_array_equal(kept.ids, grid([".2", ".."]))
    assert [s.id for s in kept.segments] == [2]


@pytest.mark.parametrize("big", [300, 70000, 5_000_000])
def test_large_ids_are_counted_like_small_ones(big):
    a = np.array([[big, big], [0, 1]], np.int64)
    b = np.array([[3, 0], [0, 3]], np.int64)
    inter, a_area, b_area = overlap_counts(a, [big, 1], b, [3])
    assert inter.tolist() == [[1], [1]] and a_area.tolist() == [2, 1] and b_area.tolist() == [2]
