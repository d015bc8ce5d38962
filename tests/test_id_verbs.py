"""Id maps instead of (K, H, W) stacks: the flow propagator's id-map verbs give what its stack
verbs give, the fallbacks for stack-only propagators batch and cap, and the helpers under them
(channel argmax, masks, sparse overlaps, RLE from a box) match their dense definitions."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pytest
from propagator_contract import make_scene, texture

from deva.config import TrackerConfig
from deva.fusion.merge import overlaps
from deva.idmap import masks_from_ids, strongest_channel
from deva.propagation import base
from deva.propagation.flow import FlowPropagator
from deva.tracker import Tracker
from deva.types import Frame, Segmentation

SHAPE = (96, 128)


def cells(shape: tuple[int, int], rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """(H, W) map of rows x cols rectangular cells under shuffled large ids, a few left 0."""
    height, width = shape
    cell = (np.arange(height)[:, None] * rows // height) * cols + np.arange(width) * cols // width
    ids = np.random.default_rng(seed).permutation(rows * cols) * 97 + 300
    ids[::7] = 0
    return ids[cell].astype(np.int32)


class StackOnly:
    """A propagator with the protocol's stack verbs only (like the network)."""

    def __init__(self, inner: FlowPropagator) -> None:
        self.inner = inner

    @property
    def object_ids(self) -> list[int]:
        return self.inner.object_ids

    def reset(self) -> None:
        self.inner.reset()

    def propagate(self, image: np.ndarray) -> np.ndarray:
        return self.inner.propagate(image)

    def memorize(self, image: np.ndarray, masks: np.ndarray, object_ids: Sequence[int]) -> None:
        self.inner.memorize(image, masks, object_ids)

    def align(self, src: np.ndarray, masks: np.ndarray, dst: np.ndarray) -> np.ndarray:
        return self.inner.align(src, masks, dst)

    def forget(self, object_ids: Sequence[int]) -> None:
        self.inner.forget(object_ids)


@pytest.mark.parametrize(
    "options",
    [{}, {"fill_unknown": True}, {"min_fragment": 0.3}, {"occlusion_threshold": None}],
)
def test_flow_id_verbs_equal_the_argmax_of_the_stack_verbs(options: dict) -> None:
    background = texture(SHAPE[0], SHAPE[1] + 4 * 6, seed=3)
    scene = make_scene(6, step=4, pan=4, shape=SHAPE, side=30, background=background)
    ids = cells(SHAPE, 6, 8)
    object_ids = [int(i) for i in np.unique(ids) if i][::-1]
    stacks, maps = FlowPropagator(**options), FlowPropagator(**options)
    stacks.memorize(scene.images[0], masks_from_ids(ids, object_ids), object_ids)
    maps.memorize_ids(scene.images[0], ids, object_ids)
    lut = np.asarray([0, *object_ids])
    for frame in range(1, 6):
        expected = lut[np.argmax(stacks.propagate(scene.images[frame]), axis=0)]
        np.testing.assert_array_equal(maps.propagate_ids(scene.images[frame]), expected)
    masks = masks_from_ids(ids, object_ids)
    aligned = lut[np.argmax(stacks.align(scene.images[0], masks, scene.images[3]), axis=0)]
    got = maps.align_ids(scene.images[0], ids, object_ids, scene.images[3])
    np.testing.assert_array_equal(got, aligned)


def test_stack_fallback_aligns_in_batches_like_one_call(monkeypatch) -> None:
    scene = make_scene(4, shape=SHAPE, side=30)
    ids = cells(SHAPE, 10, 12)
    segment_ids = [int(i) for i in np.unique(ids) if i]
    whole = FlowPropagator().align_ids(scene.images[0], ids, segment_ids, scene.images[2])
    monkeypatch.setattr(base, "STACK_LIMIT", 16)  # 103 segments: 7 batches
    stack_only = StackOnly(FlowPropagator())
    batched = base.align_ids(stack_only, scene.images[0], ids, segment_ids, scene.images[2])
    assert np.mean(batched == whole) > 0.999
    assert set(np.unique(batched).tolist()) == set(np.unique(whole).tolist())


def test_stack_only_propagators_track_a_bounded_number_of_objects(monkeypatch, caplog) -> None:
    monkeypatch.setattr(base, "STACK_LIMIT", 5)
    ids = cells((40, 60), 3, 4)  # 10 segments (two of 12 cells left 0)

    class Grid:
        def segment(self, image, *, frame_index, unsegmented=None):
            return Segmentation.from_ids(ids)

    image = np.zeros((40, 60, 3), np.uint8)
    config = TrackerConfig(mode="online", size=-1)
    for propagator, expected in ((StackOnly(FlowPropagator()), 5), (FlowPropagator(), 10)):
        with caplog.at_level(logging.WARNING):
            results = list(Tracker(Grid(), propagator, config).run([Frame(0, "0", image)]))
        assert len(results[0].objects) == expected
    assert "tracks at most 5" in caplog.text
    explicit = TrackerConfig(mode="online", size=-1, max_objects=7)
    assert base.object_limit(StackOnly(FlowPropagator()), explicit.max_objects) == 7
    assert base.object_limit(FlowPropagator(), 0) == 0


def test_strongest_channel_is_argmax_with_first_wins_ties() -> None:
    rng = np.random.default_rng(0)
    for channels in (1, 2, 17, 40):
        probs = rng.integers(0, 4, (channels, 9, 11)).astype(np.float32)  # many ties
        index, value = strongest_channel(probs)
        np.testing.assert_array_equal(index, np.argmax(probs, axis=0))
        np.testing.assert_array_equal(value, probs.max(axis=0))


def test_masks_from_ids_is_the_broadcast_comparison() -> None:
    ids = cells((20, 30), 4, 5)
    wanted = [int(i) for i in np.unique(ids)][::-1] + [12345]
    expected = ids[None] == np.asarray(wanted).reshape(-1, 1, 1)
    np.testing.assert_array_equal(masks_from_ids(ids, wanted), expected)


def test_masks_from_ids_of_no_objects_is_an_empty_stack() -> None:
    """A merge that leaves nothing tracked memorizes no objects (a SAM-family propagator
    then resets); the empty stack must not fail."""
    ids = cells((20, 30), 4, 5)
    assert masks_from_ids(ids, []).shape == (0, 20, 30)


def test_sparse_overlaps_count_like_brute_force() -> None:
    a, b = cells((30, 40), 15, 20, seed=1), cells((30, 40), 12, 25, seed=2)
    a_ids = [int(i) for i in np.unique(a) if i]
    b_ids = [int(i) for i in np.unique(b) if i][::-1]
    assert (len(a_ids) + 1) * (len(b_ids) + 1) > a.size  # the sparse path
    found = overlaps(a, a_ids, b, b_ids)
    counted = {
        (r, c): n
        for r, c, n in zip(
            found.rows.tolist(), found.cols.tolist(), found.counts.tolist(), strict=True
        )
    }
    for row, x in enumerate(a_ids):
        assert found.a_area[row] == (a == x).sum()
        for col, y in enumerate(b_ids):
            assert counted.get((row, col), 0) == ((a == x) & (b == y)).sum()


def test_rle_of_a_box_equals_rle_of_the_frame() -> None:
    pytest.importorskip("pycocotools")
    from deva.io import rle

    rng = np.random.default_rng(0)
    for _ in range(300):
        height, width = (int(v) for v in rng.integers(1, 25, 2))
        y, x = int(rng.integers(0, height)), int(rng.integers(0, width))
        h, w = int(rng.integers(1, height - y + 1)), int(rng.integers(1, width - x + 1))
        crop = rng.random((h, w)) < rng.random()
        frame = np.zeros((height, width), bool)
        frame[y : y + h, x : x + w] = crop
        assert rle.encode_crop(crop, x, y, height, width) == rle.encode(frame)


def test_the_appearance_propagator_keeps_the_default_cap() -> None:
    """Its id-map verbs avoid (K, H, W) stacks, but each remembered frame still holds a value
    per object and key cell, so it declares the stack propagators' cap."""
    from deva.propagation.appearance import AppearancePropagator

    assert base.object_limit(AppearancePropagator(), 0) == base.STACK_LIMIT
    assert base.object_limit(AppearancePropagator(), 1000) == 1000
