"""The semi-online schedule (spec §3.3, with the official defects fixed): clips, lag, keyframes,
the end of the video, and consensus beating noise that online mode lets through."""

from __future__ import annotations

import numpy as np
import pytest

from deva.config import TrackerConfig
from deva.demo import render_demo
from deva.io.frames import open_frames
from deva.propagation.flow import FlowPropagator
from deva.tracker import Tracker, TrackerState
from deva.types import Segmentation, SegmentInfo

CLIP = render_demo(num_frames=24, height=180, width=320)


class TruthSegmenter:
    """The true masks (ids shuffled per call), plus a transient false positive on listed frames."""

    def __init__(self, masks, *, false_positive_frames=(), seed=0):
        self.masks = masks
        self.false_positive_frames = set(false_positive_frames)
        self.calls: list[int] = []
        self.rng = np.random.default_rng(seed)

    def segment(self, image, *, frame_index, unsegmented=None):
        self.calls.append(frame_index)
        truth = self.masks[frame_index]
        present = [int(i) for i in np.unique(truth) if i]
        ids = np.zeros_like(truth)
        new = self.rng.permutation(len(present)) + 1
        for true_id, new_id in zip(present, new, strict=True):
            ids[truth == true_id] = new_id
        infos = [SegmentInfo(int(i)) for i in new]
        if frame_index in self.false_positive_frames:
            ids[150:170, 10:40] = 99  # background corner no object visits
            infos.append(SegmentInfo(99))
        return Segmentation(ids, tuple(infos))


def track(segmenter, config, frames=CLIP.frames):
    tracker = Tracker(segmenter, FlowPropagator(), config)
    return list(tracker.run(open_frames(list(frames))))


@pytest.mark.parametrize("length", [1, 2, 3, 4])
@pytest.mark.parametrize("mode", ["semionline", "online"])
def test_short_videos_produce_every_frame(length, mode):
    results = track(TruthSegmenter(CLIP.masks), TrackerConfig(mode=mode), CLIP.frames[:length])
    assert [r.frame_index for r in results] == list(range(length))
    # Even a one-frame video gets its objects (a partial clip falls back to what it has).
    assert len(results[0].objects) == 2


def test_outputs_lag_by_clip_size_minus_one_and_segmenter_runs_on_clip_frames():
    segmenter = TruthSegmenter(CLIP.masks)
    tracker = Tracker(segmenter, FlowPropagator(), TrackerConfig(detect_every=5, clip_size=3))
    state = TrackerState()
    released = []
    for frame in open_frames(list(CLIP.frames[:12])):
        released.append([r.frame_index for r in tracker.step(state, frame)])
    assert released == [[], [], [0, 1, 2], [3], [4], [], [], [5, 6, 7], [8], [9], [], []]
    assert [r.frame_index for r in tracker.finish(state)] == [10, 11]
    assert segmenter.calls == [0, 1, 2, 5, 6, 7, 10, 11]


def test_clip_is_capped_at_detect_every():
    segmenter = TruthSegmenter(CLIP.masks)
    results = track(segmenter, TrackerConfig(detect_every=2, clip_size=3), CLIP.frames[:8])
    assert len(results) == 8
    assert segmenter.calls == list(range(8))  # clips {0,1}, {2,3}, ... keyframes every 2


@pytest.mark.parametrize(("keyframe", "offset"), [("first", 0), ("middle", 1)])
def test_keyframe_choice(keyframe, offset):
    config = TrackerConfig(keyframe=keyframe)
    assert config.keyframe_offset == offset
    # Objects are created at the keyframe: before it, nothing is tracked yet.
    results = track(TruthSegmenter(CLIP.masks), config, CLIP.frames[:5])
    assert [len(r.objects) for r in results[: offset + 1]] == [0] * offset + [2]


def test_transient_false_positive_is_voted_out_in_semionline_but_not_online():
    fp_frames = [0, 5, 10, 15, 20]  # only ever on a clip's first frame
    online = track(
        TruthSegmenter(CLIP.masks, false_positive_frames=fp_frames), TrackerConfig(mode="online")
    )
    semi = track(TruthSegmenter(CLIP.masks, false_positive_frames=fp_frames), TrackerConfig())
    corner = (slice(150, 170), slice(10, 40))
    assert (online[0].ids[corner] > 0).mean() > 0.9
    assert max(len(r.objects) for r in online) == 3
    assert all(not (r.ids[corner] > 0).any() for r in semi)
    assert max(len(r.objects) for r in semi) == 2


def test_semionline_ids_are_consistent_with_shuffled_detections():
    results = track(TruthSegmenter(CLIP.masks), TrackerConfig())
    for true_id in (1, 2):
        ids = {
            int(np.bincount(r.ids[CLIP.masks[r.frame_index] == true_id]).argmax()) for r in results
        }
        assert len(ids) == 1 and 0 not in ids


def test_live_stream_of_unknown_length_flushes():
    def live():
        yield from CLIP.frames[:7]

    results = list(Tracker(TruthSegmenter(CLIP.masks), FlowPropagator()).run(open_frames(live())))
    assert [r.frame_index for r in results] == list(range(7))
