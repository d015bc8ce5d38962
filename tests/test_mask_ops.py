"""The pure mask helpers of the learned segmenters, on hand-made masks."""

from __future__ import annotations

import numpy as np
import pytest

from deva.segmenters.mask_ops import (
    box_nms,
    grid_points,
    mask_boxes,
    points_in_unsegmented,
    resolve_overlaps,
    stability_scores,
    suppress_small,
)


def box_mask(shape: tuple[int, int], y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_grid_points_are_cell_centres():
    points = grid_points(2, height=10, width=20)
    # (k + 0.5) / 2 of each side, row by row, as (x, y)
    np.testing.assert_allclose(points, [[5, 2.5], [15, 2.5], [5, 7.5], [15, 7.5]])
    assert grid_points(64, 480, 854).shape == (4096, 2)


def test_points_on_tracked_pixels_are_dropped():
    height, width = 160, 320
    grid = grid_points(8, height, width)
    unsegmented = np.ones((height, width), bool)
    unsegmented[:, : width // 2] = False  # the left half is tracked
    kept = points_in_unsegmented(grid, unsegmented)
    assert np.all(kept[:, 0] > width / 2)
    # half the grid lies right; the blur may drop the column next to the tracked edge
    assert 24 <= len(kept) <= 32
    assert len(points_in_unsegmented(grid, None)) == 64
    assert len(points_in_unsegmented(grid, np.zeros((height, width), bool))) == 0


def test_small_tracked_speck_drops_nearby_points_only():
    height, width = 64, 64
    grid = grid_points(4, height, width)  # centres at 8, 24, 40, 56
    unsegmented = np.ones((height, width), bool)
    unsegmented[6:10, 6:10] = False  # a 4x4 object under the point (8, 8)
    kept = points_in_unsegmented(grid, unsegmented)
    assert len(kept) == 15
    assert not np.any(np.all(kept == [8, 8], axis=1))


def test_stability_scores():
    stable = np.full((1, 4, 4), -10.0)
    stable[0, :2, :2] = 10.0  # far from the threshold: the mask never changes
    shaky = np.full((1, 4, 4), -10.0)
    shaky[0, :2, :2] = 10.0
    shaky[0, 2:, 2:] = 0.5  # 4 pixels inside only at the lower threshold
    scores = stability_scores(np.concatenate([stable, shaky]), threshold=0.0, offset=1.0)
    np.testing.assert_allclose(scores, [1.0, 4 / 8])
    assert stability_scores(np.full((1, 2, 2), -5.0))[0] == 0.0  # empty mask


def test_mask_boxes():
    masks = np.stack([box_mask((8, 8), 1, 2, 4, 7), np.zeros((8, 8), bool)])
    np.testing.assert_array_equal(mask_boxes(masks), [[2, 1, 6, 3], [0, 0, 0, 0]])


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (0.8, [0, 2]),  # box 1 overlaps box 0 with IoU 0.81 > 0.8: dropped
        (0.85, [0, 1, 2]),  # below the threshold: kept
    ],
)
def test_box_nms(threshold, expected):
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 8.1], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.9, 0.8, 0.7])
    assert sorted(box_nms(boxes, scores, threshold).tolist()) == expected


def test_box_nms_keeps_the_better_box():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    assert box_nms(boxes, np.array([0.2, 0.9]), 0.5).tolist() == [1]


def test_resolve_overlaps_small_wins_and_empty_masks_drop():
    shape = (6, 6)
    big = box_mask(shape, 0, 0, 6, 6)
    small = box_mask(shape, 1, 1, 3, 3)
    hidden = box_mask(shape, 1, 1, 2, 2) & False  # empty
    ids, kept = resolve_overlaps(np.stack([big, small, hidden]))
    assert kept.tolist() == [0, 1]
    assert np.all(ids[small] == 2)
    assert np.all(ids[big & ~small] == 1)


def test_resolve_overlaps_drops_a_mask_covered_by_smaller_ones():
    shape = (4, 4)
    left, right = box_mask(shape, 0, 0, 4, 2), box_mask(shape, 0, 2, 4, 4)
    whole = box_mask(shape, 0, 0, 4, 4)
    ids, kept = resolve_overlaps(np.stack([whole, left, right]))
    assert kept.tolist() == [1, 2]  # "whole" wins no pixel and is renumbered away
    assert set(np.unique(ids).tolist()) == {1, 2}


def test_suppress_small_keeps_large_and_drops_masks_that_lose_too_much():
    shape = (10, 10)
    large = box_mask(shape, 0, 0, 10, 10)
    inside = box_mask(shape, 2, 2, 5, 5)  # loses all its pixels to the large mask
    ids, kept = suppress_small(np.stack([inside, large]), overlap_threshold=0.8)
    assert kept.tolist() == [1]
    assert np.all(ids == 1)


def test_suppress_small_overlap_threshold():
    shape = (10, 10)
    a = box_mask(shape, 0, 0, 10, 6)  # 60 px
    b = box_mask(shape, 0, 5, 10, 10)  # 50 px, 10 of them lost to a: keeps 80 %
    ids, kept = suppress_small(np.stack([a, b]), overlap_threshold=0.8)
    assert kept.tolist() == [0, 1]
    ids, kept = suppress_small(np.stack([a, b]), overlap_threshold=0.85)
    assert kept.tolist() == [0]
    assert np.all(ids[:, 6:] == 0)  # the dropped mask's pixels are background
