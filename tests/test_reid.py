"""Re-identification: an object that leaves the view and comes back keeps its id."""

from __future__ import annotations

import numpy as np
import pytest
from propagator_contract import texture

from deva.config import TrackerConfig
from deva.errors import DevaError
from deva.fusion.dormant import DormantStore
from deva.fusion.registry import TrackedObject
from deva.propagation.appearance import AppearancePropagator
from deva.propagation.flow import FlowPropagator
from deva.tracker import Tracker
from deva.types import Frame, Segmentation

HEIGHT, WIDTH, SIDE = 96, 160, 32
LEAVES, RETURNS, FRAMES = 18, 38, 60


def mover_x(t: int) -> int:
    """Left edge of the mover: right at 8 px/frame, out of view from LEAVES, back from RETURNS."""
    return 20 + 8 * t if t < LEAVES else WIDTH + 8 * (RETURNS - t)


def make_clip() -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W, 3) images and (T, H, W) truth ids: 1 = the mover, 2 = a still object."""
    background = texture(HEIGHT, WIDTH, seed=1)
    mover = texture(SIDE, SIDE, seed=2, low=120, amplitude=120)
    still = texture(24, 24, seed=5, low=0, amplitude=90)
    images, truth = [], []
    for t in range(FRAMES):
        image, ids = background.copy(), np.zeros((HEIGHT, WIDTH), np.int32)
        image[60:84, 10:34], ids[60:84, 10:34] = still, 2
        x0 = mover_x(t)
        lo, hi = max(x0, 0), min(x0 + SIDE, WIDTH)
        if lo < hi:
            image[20:52, lo:hi] = mover[:, lo - x0 : hi - x0]
            ids[20:52, lo:hi] = 1
        images.append(image)
        truth.append(ids)
    return np.stack(images), np.stack(truth)


class TruthSegmenter:
    """Detections = the truth with its ids shuffled every frame, as a detector would give."""

    def __init__(self, truth: np.ndarray) -> None:
        self.truth = truth

    def segment(self, image: np.ndarray, *, frame_index: int, unsegmented=None) -> Segmentation:
        ids = self.truth[frame_index]
        shuffled = np.where(ids > 0, 10 + (ids + frame_index) % 2, 0).astype(np.int32)
        return Segmentation.from_ids(shuffled)


def track(propagator, reid: bool) -> np.ndarray:
    images, truth = make_clip()
    config = TrackerConfig(mode="online", detect_every=5, max_missed=1, size=-1, reid=reid)
    tracker = Tracker(TruthSegmenter(truth), propagator, config)
    frames = (Frame(t, f"{t:05d}", image) for t, image in enumerate(images))
    return np.stack([result.ids for result in tracker.run(frames)])


def ids_of(ids: np.ndarray, truth: np.ndarray, frame: int, label: int) -> int:
    values, counts = np.unique(ids[frame][truth[frame] == label], return_counts=True)
    return int(values[np.argmax(counts)])


@pytest.fixture(scope="module")
def clip() -> tuple[np.ndarray, np.ndarray]:
    return make_clip()


def test_a_returning_object_keeps_its_id(clip) -> None:
    _, truth = clip
    ids = track(AppearancePropagator(), reid=True)
    before = ids_of(ids, truth, 10, 1)
    still = ids_of(ids, truth, 10, 2)
    assert not (ids[LEAVES + 12] == before).any()  # it was deleted while away
    for frame in (RETURNS + 8, FRAMES - 1):
        assert ids_of(ids, truth, frame, 1) == before
        assert ids_of(ids, truth, frame, 2) == still


def test_without_reid_it_comes_back_as_a_new_object(clip) -> None:
    _, truth = clip
    ids = track(AppearancePropagator(), reid=False)
    before = ids_of(ids, truth, 10, 1)
    after = ids_of(ids, truth, FRAMES - 1, 1)
    assert after not in (0, before)


def test_propagators_without_appearance_just_track(clip) -> None:
    _, truth = clip
    ids = track(FlowPropagator(), reid=True)
    assert ids_of(ids, truth, FRAMES - 1, 1) not in (0, ids_of(ids, truth, 10, 1))


def test_store_is_bounded_and_matches_each_object_once() -> None:
    store = DormantStore(capacity=2, threshold=0.9, max_age=10)
    basis = np.eye(3, dtype=np.float32)
    for index in range(3):
        store.add(TrackedObject(id=index + 1, is_thing=True), basis[index], frame_index=0)
    assert [e.obj.id for e in store.entries] == [2, 3]  # the oldest went
    matched = store.match(np.stack([basis[2], basis[2], basis[0], basis[1] * 0.5]))
    assert [None if m is None else m.id for m in matched] == [3, None, None, 2]
    assert len(store) == 0
    store.add(TrackedObject(id=7, is_thing=True), basis[0], frame_index=0)
    store.expire(11)
    assert len(store) == 0


def test_bad_threshold_names_the_flag() -> None:
    with pytest.raises(DevaError, match="reid.threshold"):
        TrackerConfig(reid_threshold=2.0)
