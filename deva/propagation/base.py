"""The propagator protocol: class-agnostic temporal propagation with memory inside."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from deva.errors import DevaError


@runtime_checkable
class Propagator(Protocol):
    """Carries object masks from frame to frame. All images are (H, W, 3) uint8 RGB at the
    working resolution; all probabilities are (1 + K, H, W) float32, background first, channels
    in the order of ``object_ids``, summing to 1 over the first axis.
    """

    @property
    def object_ids(self) -> list[int]:
        """Ids of the objects in memory, in channel order."""
        ...

    def reset(self) -> None:
        """Forget everything (start of a new video)."""
        ...

    def propagate(self, image: np.ndarray) -> np.ndarray:
        """Advance to ``image`` (the next frame) and return its probabilities.

        With an empty memory the result is all background: shape (1, H, W) of ones.
        """
        ...

    def memorize(self, image: np.ndarray, masks: np.ndarray, object_ids: Sequence[int]) -> None:
        """Store the objects' masks at ``image``, the current frame: (K, H, W) bool hard masks,
        or float probabilities in [0, 1] (soft, e.g. the associated consensus of spec §3.8).

        After this call, ``object_ids`` is exactly ``object_ids`` (new ids appended, ids not listed
        dropped) and the next ``propagate`` starts from these masks.
        """
        ...

    def align(
        self, src_image: np.ndarray, src_masks: np.ndarray, dst_image: np.ndarray
    ) -> np.ndarray:
        """Move ``src_masks`` ((K, H, W) bool) from ``src_image`` to ``dst_image`` and return
        (1 + K, H, W) probabilities there, using a one-frame memory; the real memory is untouched.
        """
        ...

    def forget(self, object_ids: Sequence[int]) -> None:
        """Remove these objects from every store; unknown ids are ignored."""
        ...


def check_image(image: np.ndarray) -> None:
    """Propagators take (H, W, 3) uint8 RGB; anything else is one clear error."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise DevaError(
            f"expected an (H, W, 3) RGB image, got shape {getattr(image, 'shape', None)}"
        )
    if image.dtype != np.uint8:
        raise DevaError(f"expected a uint8 image, got dtype {image.dtype}")
