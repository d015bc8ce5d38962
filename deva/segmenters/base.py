"""The image segmenter protocol: task-specific, per frame, knows nothing about time."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from deva.types import Segmentation


@runtime_checkable
class ImageSegmenter(Protocol):
    def segment(
        self,
        image: np.ndarray,
        *,
        frame_index: int,
        unsegmented: np.ndarray | None = None,
    ) -> Segmentation:
        """Segment one frame.

        image: (H, W, 3) uint8 RGB at native resolution; the result has the same (H, W).
        frame_index: position of the frame in the video (precomputed segmenters look it up).
        unsegmented: optional (H, W) bool, True where nothing is tracked yet, so automatic modes
            can prompt only there.
        """
        ...


@runtime_checkable
class SequentialSegmenter(ImageSegmenter, Protocol):
    """A segmenter that needs to see every frame (e.g. motion from consecutive frames).

    The tracker calls ``observe`` on every frame, in order, before any ``segment`` of that frame.
    """

    def observe(self, image: np.ndarray, *, frame_index: int) -> None: ...
