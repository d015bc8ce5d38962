"""The one scheduler: which frames query the segmenter, when a clip closes, what comes out.

Online mode is the semi-online schedule with clips of one frame, so both share every line.
A generator: frames in, results out, with at most one clip of frames buffered, so arbitrarily
long videos (and live streams of unknown length) run in bounded memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from deva.config import TrackerConfig
from deva.errors import DevaError
from deva.fusion.consensus import Consensus, consensus
from deva.fusion.dormant import DormantStore
from deva.fusion.merge import associate, drop_empty_segments, keep_segments, paint
from deva.fusion.registry import ObjectRegistry
from deva.idmap import index_map
from deva.io.frames import resize_ids, resize_short_side
from deva.propagation.base import (
    Propagator,
    Reidentifies,
    align_ids,
    memorize_ids,
    object_limit,
    propagate_ids,
)
from deva.segmenters.base import ImageSegmenter, SequentialSegmenter
from deva.types import Frame, FrameResult, ObjectInfo, Segmentation, SegmentInfo

log = logging.getLogger(__name__)

#: Frame -> (H, W) object ids given for it at native resolution, or None (semi-supervised VOS).
GivenMasks = Callable[[Frame], np.ndarray | None]


@dataclass
class PendingFrame:
    """A frame of the open clip: its detection, and its result once it has been propagated."""

    frame: Frame
    image: np.ndarray
    detection: Segmentation
    result: FrameResult | None = None


@dataclass
class TrackerState:
    """Everything that changes while one video is tracked; a fresh one per video."""

    frame_index: int = -1
    native_size: tuple[int, int] | None = None
    registry: ObjectRegistry = field(default_factory=ObjectRegistry)
    clip: list[PendingFrame] = field(default_factory=list)
    last_ids: np.ndarray | None = None
    given_masks: GivenMasks | None = None
    dormant: DormantStore = field(default_factory=DormantStore)


@dataclass(frozen=True)
class MergeOutcome:
    """What a merge did: the merged id map (working resolution) and id changes."""

    ids: np.ndarray
    new_ids: tuple[int, ...]
    deleted_ids: tuple[int, ...]


class Tracker:
    """Decoupled video segmentation: an image segmenter fused with a temporal propagator.

    >>> tracker = Tracker(segmenter, propagator, TrackerConfig(detect_every=5))
    >>> for result in tracker.run(open_frames("video.mp4")):
    ...     print(result.frame_index, result.object_ids)
    """

    def __init__(
        self,
        segmenter: ImageSegmenter | None,
        propagator: Propagator,
        config: TrackerConfig | None = None,
    ) -> None:
        self.segmenter = segmenter
        self.propagator = propagator
        self.config = config or TrackerConfig()

    def run(
        self, frames: Iterable[Frame], *, given_masks: GivenMasks | None = None
    ) -> Iterator[FrameResult]:
        """Track one video; yields one ``FrameResult`` per input frame, in order.

        given_masks: semi-supervised VOS; objects of a given mask keep its ids, replace their
        propagated masks on that frame and are never deleted for missing detections when
        there is no segmenter (``segmenter=None``: pure propagation from the given masks).
        """
        state = self.start(given_masks)
        for frame in frames:
            yield from self.step(state, frame)
        yield from self.finish(state)

    def start(self, given_masks: GivenMasks | None = None) -> TrackerState:
        """A fresh state for a new video (the propagator forgets the previous one)."""
        self.propagator.reset()
        return TrackerState(given_masks=given_masks, dormant=self._dormant_store())

    def _dormant_store(self) -> DormantStore:
        return DormantStore(threshold=self.config.reid_threshold)

    @property
    def reidentifies(self) -> bool:
        """Whether deleted objects can come back under their id: asked for, and the
        propagator can describe appearance."""
        return self.config.reid and isinstance(self.propagator, Reidentifies)

    def step(self, state: TrackerState, frame: Frame) -> list[FrameResult]:
        """Take the next frame; return the results that became final (none while a clip fills).

        Frames of a clip up to its keyframe are propagated on arrival (their propagation does
        not depend on the clip's consensus); later ones wait until the consensus is merged.
        """
        self._check_frame(state, frame)
        state.frame_index += 1
        image = resize_short_side(frame.image, self._working_size(frame))
        if isinstance(self.segmenter, SequentialSegmenter):
            self.segmenter.observe(frame.image, frame_index=frame.index)
        position = state.frame_index % self.config.detect_every
        clip_length = self.config.frames_per_clip
        if self.segmenter is None or position >= clip_length:
            return [self._propagate(state, frame, image)]
        pending = PendingFrame(frame, image, Segmentation.empty(*image.shape[:2]))
        if position <= self.config.keyframe_offset:
            pending.result = self._propagate(state, frame, image)
        pending.detection = self._detect(self.segmenter, frame, image, state.last_ids)
        state.clip.append(pending)
        return self._close_clip(state) if position == clip_length - 1 else []

    def finish(self, state: TrackerState) -> list[FrameResult]:
        """End of the video: close a partially filled clip so every frame gets a result."""
        return self._close_clip(state) if state.clip else []

    def merge(
        self,
        state: TrackerState,
        image: np.ndarray,
        propagated: np.ndarray,
        target: Consensus,
    ) -> MergeOutcome:
        """Fuse a (consensus) segmentation with the propagation at this frame, update the
        objects and write the result to the propagator's memory (spec §3.6)."""
        config, registry = self.config, state.registry
        detection = drop_empty_segments(target.segmentation)
        tracked = registry.groups
        pairs = associate(propagated, tracked, detection, iou_threshold=config.iou_threshold)
        matched = {segment_id for _, segment_id in pairs}
        unmatched = [s for s in detection.segments if s.id not in matched]
        unmatched = self._within_capacity(registry, unmatched, detection)
        detection = keep_segments(detection, sorted(matched | {s.id for s in unmatched}))

        votes = _votes_of(target, detection)
        for object_id, segment_id in pairs:
            for info in votes[segment_id]:
                registry[object_id].confirm(info)
        matched_objects = {object_id for object_id, _ in pairs}
        visible = set(np.unique(propagated).tolist())
        for object_id in tracked:
            if object_id not in matched_objects:
                registry.miss(
                    object_id, still_visible=object_id in visible, incremental=config.incremental
                )
        new_ids = self._register(state, image, detection, unmatched, votes)

        canvas = paint(propagated, tracked, detection, pairs, new_ids)
        objects = {i: registry[i] for i in registry.ids} if self.reidentifies else {}
        deleted = registry.remove_expired(config.max_missed)
        if deleted:
            canvas[np.isin(canvas, deleted)] = 0
            if self.reidentifies:
                prototypes = self.propagator.prototypes(deleted)  # type: ignore[attr-defined]
                for object_id, prototype in prototypes.items():
                    state.dormant.add(objects[object_id], prototype, state.frame_index)
            self.propagator.forget(deleted)
        object_ids = registry.ids
        memorize_ids(self.propagator, image, canvas, object_ids)
        return MergeOutcome(canvas, tuple(new_ids.values()), tuple(deleted))

    def _register(
        self,
        state: TrackerState,
        image: np.ndarray,
        detection: Segmentation,
        unmatched: Sequence[SegmentInfo],
        votes: Mapping[int, tuple[SegmentInfo, ...]],
    ) -> dict[int, int]:
        """Segment id -> object id for the new segments: a dormant object the segment looks
        like comes back under its id (re-identification), the others get new ids."""
        revived: list = [None] * len(unmatched)
        if unmatched and self.reidentifies:
            state.dormant.expire(state.frame_index)
            if len(state.dormant):
                segment_ids = [s.id for s in unmatched]
                prototypes = self.propagator.describe(image, detection.ids, segment_ids)  # type: ignore[attr-defined]
                revived = state.dormant.match(prototypes)
        registry = state.registry
        return {
            s.id: registry.register(*votes[s.id])
            if obj is None
            else registry.revive(obj, *votes[s.id])
            for s, obj in zip(unmatched, revived, strict=True)
        }

    def clip_consensus(self, clip: Sequence[PendingFrame], key: int) -> Consensus:
        """The clip's detections aligned to the keyframe and voted (spec §3.4-3.5); a clip of
        one frame is its own consensus (online mode)."""
        if len(clip) == 1:
            detection = clip[0].detection
            return Consensus(detection, {s.id: (s,) for s in detection.segments})
        key_frame = clip[key]
        aligned = [
            pending.detection if index == key else self._align(pending, key_frame.image)
            for index, pending in enumerate(clip)
        ]
        return consensus(aligned, iou_threshold=self.config.iou_threshold)

    def _close_clip(self, state: TrackerState) -> list[FrameResult]:
        """Merge the clip's consensus at its keyframe and propagate the rest of the clip."""
        clip, key = state.clip, min(self.config.keyframe_offset, len(state.clip) - 1)
        target = self.clip_consensus(clip, key)
        for index, pending in enumerate(clip):
            if pending.result is None:
                pending.result = self._propagate(state, pending.frame, pending.image)
            if index == key:
                propagated = self._last_working_ids(state)
                merged = self.merge(state, pending.image, propagated, target).ids
                pending.result = self._result(state, pending.frame, merged)
        state.clip = []
        return [pending.result for pending in clip]

    def _align(self, pending: PendingFrame, key_image: np.ndarray) -> Segmentation:
        """A frame's detection moved onto the keyframe through the propagator (memory untouched)."""
        detection = pending.detection
        if not detection.segments:
            return Segmentation.empty(*key_image.shape[:2])
        segment_ids = [s.id for s in detection.segments]
        ids = align_ids(self.propagator, pending.image, detection.ids, segment_ids, key_image)
        return Segmentation(ids, detection.segments)

    def _propagate(self, state: TrackerState, frame: Frame, image: np.ndarray) -> FrameResult:
        """Propagate to this frame, then impose a mask given for it, if any."""
        ids = propagate_ids(self.propagator, image)
        given = state.given_masks(frame) if state.given_masks is not None else None
        if given is not None:
            ids = self._impose(state, image, ids, resize_ids(given, ids.shape))
        return self._result(state, frame, ids)

    def _impose(
        self, state: TrackerState, image: np.ndarray, propagated: np.ndarray, given: np.ndarray
    ) -> np.ndarray:
        """A given mask wins: its objects (new or tracked, under the given ids) take exactly the
        given pixels, other objects keep their propagated pixels elsewhere; then memorize."""
        given_ids = [int(i) for i in np.unique(given) if i != 0]
        for object_id in given_ids:
            state.registry.adopt(object_id)
        ids = np.where(np.isin(propagated, given_ids), 0, propagated)
        ids = np.where(given > 0, given, ids).astype(np.int32)
        object_ids = state.registry.ids
        memorize_ids(self.propagator, image, ids, object_ids)
        return ids

    def _last_working_ids(self, state: TrackerState) -> np.ndarray:
        assert state.last_ids is not None  # set by the _propagate that always comes first
        return state.last_ids

    def _within_capacity(
        self, registry: ObjectRegistry, unmatched: list[SegmentInfo], detection: Segmentation
    ) -> list[SegmentInfo]:
        """Drop new segments beyond ``max_objects`` (or the propagator's default limit, see
        ``object_limit``), smallest first.

        Official DEVA drops every segment of the frame, matched ones too, when the cap would be
        exceeded; then all tracked objects count a miss. We keep matches and the largest news.
        """
        limit = object_limit(self.propagator, self.config.max_objects)
        if limit <= 0 or len(registry) + len(unmatched) <= limit:
            return unmatched
        room = max(0, limit - len(registry))
        index = index_map(detection.ids, [s.id for s in unmatched])
        areas = np.bincount(index.ravel(), minlength=len(unmatched) + 1)[1:]
        ranked = [unmatched[k] for k in np.argsort(-areas, kind="stable")]
        dropped = len(ranked) - room
        if self.config.max_objects:
            log.warning("max_objects=%d reached: %d new segments dropped", limit, dropped)
        else:
            log.warning(
                "%d new segments dropped: this propagator takes one full-frame mask per object, "
                "so it tracks at most %d unless max_objects (--max-objects) says otherwise",
                dropped,
                limit,
            )
        return ranked[:room]

    @staticmethod
    def _detect(
        segmenter: ImageSegmenter,
        frame: Frame,
        image: np.ndarray,
        tracked_ids: np.ndarray | None,
    ) -> Segmentation:
        """Run the segmenter on the native frame and bring its result to working resolution.

        ``unsegmented`` comes from the latest propagation (for frames after a clip's keyframe,
        the keyframe's: their own propagation waits for the consensus).
        """
        unsegmented = None
        if tracked_ids is not None:
            unsegmented = resize_ids(tracked_ids, frame.shape) == 0
        detection = segmenter.segment(frame.image, frame_index=frame.index, unsegmented=unsegmented)
        if detection.shape != frame.shape:
            raise DevaError(
                f"frame {frame.name}: the segmenter returned a {detection.shape[1]}x"
                f"{detection.shape[0]} id map for a {frame.shape[1]}x{frame.shape[0]} frame"
            )
        ids = resize_ids(detection.ids, image.shape[:2])
        return Segmentation(ids=ids, segments=detection.segments)

    def _working_size(self, frame: Frame) -> int:
        """Short side to work at: ``size``, but never upscaling a smaller video."""
        size = self.config.size
        return -1 if size == -1 or min(frame.shape) <= size else size

    def _check_frame(self, state: TrackerState, frame: Frame) -> None:
        if state.native_size is None:
            state.native_size = frame.shape
        elif frame.shape != state.native_size:
            raise DevaError(
                f"frame {frame.name} is {frame.shape[1]}x{frame.shape[0]} but the video started "
                f"at {state.native_size[1]}x{state.native_size[0]}; all frames must share a size"
            )

    def _result(self, state: TrackerState, frame: Frame, ids: np.ndarray) -> FrameResult:
        """The final result of a frame from its working-resolution id map."""
        state.last_ids = ids
        native = resize_ids(ids, frame.shape)
        return FrameResult(frame.index, frame.name, native, _object_infos(native, state.registry))


def _votes_of(target: Consensus, detection: Segmentation) -> Mapping[int, tuple[SegmentInfo, ...]]:
    """Every kept segment's votes (its own info when the consensus gave none)."""
    return {s.id: target.votes.get(s.id, (s,)) for s in detection.segments}


def _object_infos(ids: np.ndarray, registry: ObjectRegistry) -> tuple[ObjectInfo, ...]:
    """Area, bbox and voted meta of every tracked object present in ``ids``, in id order."""
    object_ids = registry.ids
    if not object_ids:
        return ()
    slots = np.zeros(max(int(ids.max(initial=0)), max(object_ids)) + 1, dtype=np.int32)
    slots[object_ids] = np.arange(1, len(object_ids) + 1)
    slot_map = slots[ids]
    areas = np.bincount(slot_map.ravel(), minlength=len(object_ids) + 1)
    boxes = ndimage.find_objects(slot_map, max_label=len(object_ids))
    infos = []
    for slot, (object_id, box) in enumerate(zip(object_ids, boxes, strict=True), start=1):
        if box is None:
            continue
        rows, cols = box
        bbox = (cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start)
        obj = registry[object_id]
        infos.append(ObjectInfo(object_id, obj.category_id, obj.score, int(areas[slot]), bbox))
    return tuple(sorted(infos, key=lambda o: o.id))
