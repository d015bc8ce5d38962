"""TrackerConfig: every knob of the tracking schedule and fusion, with DEVA-SPEC defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from deva.errors import DevaError, OptionError

Mode = Literal["semionline", "online"]
MODES: tuple[str, ...] = ("semionline", "online")
Keyframe = Literal["first", "middle"]
KEYFRAMES: tuple[str, ...] = ("first", "middle")


@dataclass(frozen=True)
class TrackerConfig:
    """Frozen settings of one tracking run (spec Appendix A defaults).

    mode: "semionline" (default) segments a clip of ``clip_size`` frames every ``detect_every``
        frames, votes an in-clip consensus at the keyframe and merges it with the propagation;
        outputs lag by clip_size - 1 frames. "online" merges each detection frame's own
        segmentation (a clip of one frame): no lag, noisier.
    detect_every: start a clip (query the image segmenter) every this many frames
        (spec: detection_every = 5). Lower = more reactive to new objects, more model cost.
    clip_size: frames per clip in semi-online mode (spec: num_voting_frames = 3); capped at
        detect_every. More frames = more robust votes, more image-model calls and lag.
    keyframe: where in the clip the consensus is merged: "first" (spec default) or "middle".
    max_missed: delete an object after more than this many consecutive detection frames in
        which it was not re-detected (spec: max_missed_detection_count = 5). Higher = objects
        survive longer through missed detections, and so do false positives.
    max_objects: at most this many tracked objects; 0 = unlimited. Overflowing new segments are
        dropped, smallest first (tracked objects still match; see README "deviations").
    incremental: count a miss only if the object vanished from the propagation too (use with
        segmenters that only look where nothing is tracked, e.g. automatic SAM).
    iou_threshold: association IoU between a tracked object and a new segment (spec: > 0.5).
    size: short side of the working resolution for propagation; -1 = native.
    reid: re-identification: a new segment that looks like a recently deleted object takes its
        id back (``deva.fusion.dormant``); only with a propagator that describes appearance
        (``appearance``), ignored with others.
    reid_threshold: the least cosine similarity of appearance prototypes that re-identifies.
    """

    mode: Mode = "semionline"
    detect_every: int = 5
    clip_size: int = 3
    keyframe: Keyframe = "first"
    max_missed: int = 5
    max_objects: int = 0
    incremental: bool = False
    iou_threshold: float = 0.5
    size: int = 480
    reid: bool = True
    reid_threshold: float = 0.85

    @property
    def frames_per_clip(self) -> int:
        """Frames segmented per clip: 1 online, else clip_size capped at detect_every."""
        return 1 if self.mode == "online" else min(self.clip_size, self.detect_every)

    @property
    def keyframe_offset(self) -> int:
        """Position of the keyframe inside a full clip."""
        return 0 if self.keyframe == "first" else self.frames_per_clip // 2

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise DevaError(f"unknown mode {self.mode!r}; available: {', '.join(MODES)}")
        if self.keyframe not in KEYFRAMES:
            raise DevaError(
                f"unknown keyframe {self.keyframe!r}; available: {', '.join(KEYFRAMES)}"
            )
        if self.clip_size < 1:
            raise OptionError("clip_size", f"must be >= 1, got {self.clip_size}")
        if self.detect_every < 1:
            raise OptionError("detect_every", f"must be >= 1, got {self.detect_every}")
        if self.max_missed < 0:
            raise OptionError("max_missed", f"must be >= 0, got {self.max_missed}")
        if self.max_objects < 0:
            raise OptionError(
                "max_objects", f"must be >= 0 (0 = unlimited), got {self.max_objects}"
            )
        if not 0.0 <= self.iou_threshold < 1.0:
            raise OptionError("iou_threshold", f"must be in [0, 1), got {self.iou_threshold}")
        if not -1.0 <= self.reid_threshold <= 1.0:
            raise OptionError("reid_threshold", f"must be in [-1, 1], got {self.reid_threshold}")
        if self.size != -1 and self.size < 16:
            raise OptionError("size", f"must be -1 (native) or >= 16, got {self.size}")
