"""Object lifecycle: ids, missed-detection counts and meta-info votes (spec §2.2, §3.6, §3.7)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from deva.types import SegmentInfo


def vote_category(category_ids: Sequence[int | None]) -> int | None:
    """The most frequent non-null category; ties go to the smallest id."""
    return most_frequent(Counter(c for c in category_ids if c is not None))


def most_frequent(counts: Counter[int]) -> int | None:
    """The key with the highest count (ties -> smallest key), None if empty."""
    if not counts:
        return None
    best = max(counts.values())
    return min(c for c, n in counts.items() if n == best)


def mean_score(scores: Sequence[float | None]) -> float | None:
    """Mean of the non-null scores, None if there are none."""
    given = [s for s in scores if s is not None]
    return sum(given) / len(given) if given else None


@dataclass
class TrackedObject:
    """One object's votes, kept as counts so memory stays constant however long the video.

    ``missed``: consecutive detection frames without a match.
    """

    id: int
    is_thing: bool | None
    category_votes: Counter[int] = field(default_factory=Counter)
    score_sum: float = 0.0
    score_count: int = 0
    missed: int = 0

    def confirm(self, info: SegmentInfo) -> None:
        if info.category_id is not None:
            self.category_votes[info.category_id] += 1
        if info.score is not None:
            self.score_sum += info.score
            self.score_count += 1
        self.missed = 0

    @property
    def category_id(self) -> int | None:
        return most_frequent(self.category_votes)

    @property
    def score(self) -> float | None:
        return self.score_sum / self.score_count if self.score_count else None


class ObjectRegistry:
    """The tracked objects of one video, in registration (= channel) order.

    Ids are assigned 1, 2, 3, ... and never reused within a video, so an id always means one
    object. (Official DEVA keeps the detector's id when unused, else draws a random one.)
    """

    def __init__(self) -> None:
        self._objects: dict[int, TrackedObject] = {}
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, object_id: object) -> bool:
        return object_id in self._objects

    def __getitem__(self, object_id: int) -> TrackedObject:
        return self._objects[object_id]

    @property
    def ids(self) -> list[int]:
        return list(self._objects)

    @property
    def groups(self) -> dict[int, bool | None]:
        """Object id -> is_thing, in tracked order (the input of ``associate``)."""
        return {i: o.is_thing for i, o in self._objects.items()}

    def register(self, info: SegmentInfo, *votes: SegmentInfo) -> int:
        """A new object seeded with the segment's meta (and its consensus partners'); its id."""
        object_id = self._next_id
        self._next_id += 1
        obj = TrackedObject(id=object_id, is_thing=info.is_thing)
        for vote in (info, *votes):
            obj.confirm(vote)
        self._objects[object_id] = obj
        return object_id

    def revive(self, obj: TrackedObject, *votes: SegmentInfo) -> int:
        """Track a deleted object again under its own id (re-identification); its id."""
        if obj.id in self._objects:
            raise ValueError(f"object {obj.id} is already tracked")
        obj.missed = 0
        for vote in votes:
            obj.confirm(vote)
        self._objects[obj.id] = obj
        return obj.id

    def adopt(self, object_id: int, info: SegmentInfo | None = None) -> None:
        """Track an object under an id chosen by the user (given masks); later new objects get
        ids above every id seen."""
        if object_id <= 0:
            raise ValueError(f"object ids must be positive, got {object_id}")
        if object_id not in self._objects:
            self._objects[object_id] = TrackedObject(id=object_id, is_thing=None)
        if info is not None:
            self._objects[object_id].confirm(info)
        self._next_id = max(self._next_id, object_id + 1)

    def miss(self, object_id: int, *, still_visible: bool, incremental: bool) -> None:
        """Count a detection frame that did not re-detect the object.

        In incremental mode a miss only counts if the object also vanished from propagation,
        because such segmenters only look where nothing is tracked.
        """
        obj = self._objects[object_id]
        if incremental and still_visible:
            obj.missed = 0
        else:
            obj.missed += 1

    def remove_expired(self, max_missed: int) -> list[int]:
        """Delete and return the objects missed more than ``max_missed`` times in a row."""
        expired = [i for i, o in self._objects.items() if o.missed > max_missed]
        for object_id in expired:
            del self._objects[object_id]
        return expired
