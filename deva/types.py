"""Small typed values passed between layers (numpy inside, checked when built)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deva.errors import DevaError


@dataclass(frozen=True)
class SegmentInfo:
    """Meta information of one segment of an image-level segmentation.

    ``category_id``, ``score`` and ``is_thing`` are optional: a segmenter that does not know them
    leaves them ``None`` and the fusion treats such segments as one group.
    """

    id: int
    category_id: int | None = None
    score: float | None = None
    is_thing: bool | None = None


@dataclass(frozen=True)
class Segmentation:
    """An image-level segmentation of one frame.

    ids: (H, W) integer id map, 0 = nothing, k = segment k.
    segments: one ``SegmentInfo`` per segment; every non-zero id in ``ids`` has one. Listed ids
    absent from the map are allowed (empty segments) and are dropped by the fusion.
    """

    ids: np.ndarray
    segments: tuple[SegmentInfo, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.ids, np.ndarray) or self.ids.ndim != 2:
            raise DevaError(f"Segmentation.ids must be a 2-D array, got {_describe(self.ids)}")
        if not np.issubdtype(self.ids.dtype, np.integer):
            raise DevaError(f"Segmentation.ids must be integer, got dtype {self.ids.dtype}")
        object.__setattr__(self, "segments", tuple(self.segments))
        listed = [s.id for s in self.segments]
        if len(set(listed)) != len(listed):
            raise DevaError(f"Segmentation lists an id twice: {sorted(listed)}")
        if any(i <= 0 for i in listed):
            raise DevaError(f"Segment ids must be positive, got {sorted(listed)}")
        present = np.unique(self.ids)
        missing = sorted(set(int(i) for i in present if i != 0) - set(listed))
        if missing:
            raise DevaError(f"Segmentation.ids contains ids with no SegmentInfo: {missing[:10]}")

    @classmethod
    def from_ids(cls, ids: np.ndarray) -> Segmentation:
        """A segmentation with one meta-less segment per non-zero id in ``ids``."""
        present = [int(i) for i in np.unique(ids) if i != 0]
        return cls(ids=ids, segments=tuple(SegmentInfo(id=i) for i in present))

    @classmethod
    def empty(cls, height: int, width: int) -> Segmentation:
        return cls(ids=np.zeros((height, width), dtype=np.int32), segments=())

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.ids.shape[0]), int(self.ids.shape[1]))


@dataclass(frozen=True)
class ObjectInfo:
    """One tracked object in one output frame.

    category_id: mode of the categories voted so far (ties -> smallest), None if never given.
    score: mean of the scores given so far, None if never given.
    bbox: (x, y, width, height) in pixels of the output frame.
    """

    id: int
    category_id: int | None
    score: float | None
    area: int
    bbox: tuple[int, int, int, int]


@dataclass(frozen=True)
class FrameResult:
    """The tracker's output for one frame: an id map of tracked objects and their infos.

    ids: (H, W) int32 map of object ids at the frame's native resolution, 0 = background.
    """

    frame_index: int
    name: str
    ids: np.ndarray
    objects: tuple[ObjectInfo, ...] = field(default_factory=tuple)

    @property
    def object_ids(self) -> list[int]:
        return [o.id for o in self.objects]


@dataclass(frozen=True)
class Frame:
    """One decoded frame. image: (H, W, 3) uint8 RGB at native resolution, upright (rotation
    metadata already applied).

    time, duration: for frames of a video file, when the frame is shown (seconds from the
    first frame) and for how long, so outputs keep a variable frame rate; None otherwise.
    """

    index: int
    name: str
    image: np.ndarray
    time: float | None = None
    duration: float | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.image.shape[0]), int(self.image.shape[1]))


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape}"
    return type(value).__name__
