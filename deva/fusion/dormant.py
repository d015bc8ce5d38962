"""Re-identification: deleted objects wait a while, with an appearance prototype, to come back.

An object that leaves the view (or stays hidden longer than the propagator remembers) is
deleted after ``max_missed`` missed detections; when it re-enters, the image segmenter finds it
as a new segment. Without this store it gets a new id. With it, a new segment whose appearance
prototype (the propagator's mean feature over the mask) is close enough to a recently deleted
object's takes that object's id and votes back.

The store is bounded (``capacity`` objects, each kept ``max_age`` frames), so memory does not
grow with the video.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deva.errors import DevaError
from deva.fusion.registry import TrackedObject

__all__ = ["DormantObject", "DormantStore"]


@dataclass
class DormantObject:
    """A deleted object: its votes, unit-norm appearance prototype and when it was deleted."""

    obj: TrackedObject
    prototype: np.ndarray
    deleted_at: int


@dataclass
class DormantStore:
    """Recently deleted objects, matched to new segments by cosine similarity of prototypes.

    threshold: the least cosine similarity that re-identifies. On the shared DAVIS clips,
        one object at frames far apart scores 0.74-0.99 (81 % of pairs >= 0.85), objects of
        different clips at most 0.80 (BENCHMARKS.md), so 0.85 errs towards new ids: a wrong
        merge of two objects costs more than a missed re-identification.
    """

    capacity: int = 16
    threshold: float = 0.85
    max_age: int = 600
    entries: list[DormantObject] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise DevaError(f"the re-identification store needs capacity >= 1, got {self.capacity}")
        if not -1.0 <= self.threshold <= 1.0:
            raise DevaError(f"--reid-threshold must be in [-1, 1], got {self.threshold}")

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, obj: TrackedObject, prototype: np.ndarray, frame_index: int) -> None:
        """Keep a deleted object; the oldest goes when the store is full."""
        norm = float(np.linalg.norm(prototype))
        if norm == 0.0:
            return
        self.entries.append(DormantObject(obj, prototype / norm, frame_index))
        del self.entries[: max(0, len(self.entries) - self.capacity)]

    def expire(self, frame_index: int) -> None:
        self.entries = [e for e in self.entries if frame_index - e.deleted_at <= self.max_age]

    def match(self, prototypes: np.ndarray) -> list[TrackedObject | None]:
        """For each (N, C) prototype, the dormant object it re-identifies, or None; greedy by
        similarity, each dormant object at most once. Matched objects leave the store."""
        result: list[TrackedObject | None] = [None] * len(prototypes)
        if not self.entries or len(prototypes) == 0:
            return result
        stored = np.stack([e.prototype for e in self.entries])
        norms = np.linalg.norm(prototypes, axis=1, keepdims=True)
        similarity = (prototypes / np.maximum(norms, 1e-12)) @ stored.T
        similarity[norms[:, 0] == 0] = -np.inf
        taken: set[int] = set()
        for flat in np.argsort(-similarity, axis=None):
            query, entry = divmod(int(flat), similarity.shape[1])
            if similarity[query, entry] < self.threshold:
                break
            if result[query] is None and entry not in taken:
                result[query] = self.entries[entry].obj
                taken.add(entry)
        self.entries = [e for i, e in enumerate(self.entries) if i not in taken]
        return result
