"""The propagator protocol: class-agnostic temporal propagation with memory inside."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from deva.errors import DevaError
from deva.idmap import masks_from_ids, strongest_channel

STACK_LIMIT = 256
"""The most masks in one stack for a propagator without the id-map verbs: segments per
``align`` call, and tracked objects when the user set no ``max_objects``."""


@runtime_checkable
class Propagator(Protocol):
    """Carries object masks from frame to frame. All images are (H, W, 3) uint8 RGB at the
    working resolution; all probabilities are (1 + K, H, W) float32, background first, channels
    in the order of ``object_ids``, summing to 1 over the first axis.

    A propagator may also offer ``propagate_ids``, ``memorize_ids`` and ``align_ids``, the same
    verbs on (H, W) id maps; the tracker calls them through the functions below, which fall
    back to the stacks otherwise. Stacks cost memory K x H x W: with thousands of objects or
    segments only the id verbs stay O(pixels + objects).
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


@runtime_checkable
class Reidentifies(Protocol):
    """A propagator that can describe objects by appearance, so that the tracker can give a
    re-entering object its old id (``deva.fusion.dormant``)."""

    def prototypes(self, object_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Unit-norm appearance vectors of tracked objects (those it has one for)."""
        ...

    def describe(
        self, image: np.ndarray, ids: np.ndarray, segment_ids: Sequence[int]
    ) -> np.ndarray:
        """(K, C) appearance vectors of the segments ``segment_ids`` of the (H, W) id map
        ``ids`` at ``image``; zero rows for absent segments."""
        ...


def check_image(image: np.ndarray) -> None:
    """Propagators take (H, W, 3) uint8 RGB; anything else is one clear error."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise DevaError(
            f"expected an (H, W, 3) RGB image, got shape {getattr(image, 'shape', None)}"
        )
    if image.dtype != np.uint8:
        raise DevaError(f"expected a uint8 image, got dtype {image.dtype}")


def check_id_map(ids: np.ndarray, shape: tuple[int, int]) -> None:
    """An id map handed to a propagator must be (H, W) of the image; else one clear error."""
    if not isinstance(ids, np.ndarray) or ids.shape != tuple(shape):
        raise DevaError(
            f"id map must be {shape[0]}x{shape[1]} to match the image, got "
            f"{getattr(ids, 'shape', None)}"
        )


def object_limit(propagator: Propagator, max_objects: int) -> int:
    """The cap on tracked objects (0 = none): ``max_objects`` when set; else the propagator's
    own ``default_object_limit`` if it declares one (its memory grows with objects x cells);
    else none for a propagator with the id-map verbs, ``STACK_LIMIT`` for one whose stacks cost
    K x H x W."""
    if max_objects > 0:
        return max_objects
    declared = getattr(propagator, "default_object_limit", None)
    if declared is not None:
        return int(declared)
    return 0 if hasattr(propagator, "memorize_ids") else STACK_LIMIT


def propagate_ids(propagator: Propagator, image: np.ndarray) -> np.ndarray:
    """(H, W) int32 object ids at ``image`` (0 = background): the argmax of ``propagate``."""
    own = getattr(propagator, "propagate_ids", None)
    if own is not None:
        return own(image)
    probs = propagator.propagate(image)
    lut = np.asarray([0, *propagator.object_ids], dtype=np.int32)
    return lut[strongest_channel(probs)[0]]


def memorize_ids(
    propagator: Propagator, image: np.ndarray, ids: np.ndarray, object_ids: Sequence[int]
) -> None:
    """``memorize`` the objects ``ids == object_ids[k]``."""
    own = getattr(propagator, "memorize_ids", None)
    if own is not None:
        own(image, ids, object_ids)
    else:
        propagator.memorize(image, masks_from_ids(ids, object_ids), object_ids)


def align_ids(
    propagator: Propagator,
    src_image: np.ndarray,
    src_ids: np.ndarray,
    segment_ids: Sequence[int],
    dst_image: np.ndarray,
) -> np.ndarray:
    """(H, W) int32 segment ids at ``dst_image`` of the segments ``src_ids == segment_ids[k]``
    at ``src_image``: the argmax of ``align``.

    Through the stacks, segments go ``STACK_LIMIT`` at a time. With one batch each pixel takes
    the argmax; with several, the strongest segment of any batch if it beats the background
    all batches leave together (1 - the sum of their foregrounds), as one call would see it.
    """
    own = getattr(propagator, "align_ids", None)
    if own is not None:
        return own(src_image, src_ids, segment_ids, dst_image)
    segments = np.asarray(segment_ids, dtype=np.int32)
    ids = best = background = foreground = None
    for start in range(0, len(segments), STACK_LIMIT):
        batch = segments[start : start + STACK_LIMIT]
        probs = propagator.align(src_image, masks_from_ids(src_ids, batch), dst_image)
        index, value = strongest_channel(probs[1:])
        if ids is None or best is None or background is None:
            ids, best, background = batch[index], value, np.array(probs[0], copy=True)
            continue
        foreground = (1.0 - background) if foreground is None else foreground
        foreground += 1.0 - probs[0]
        wins = value > best
        ids[wins], best[wins] = batch[index[wins]], value[wins]
    if ids is None or best is None or background is None:
        return np.zeros(src_ids.shape, dtype=np.int32)
    if foreground is not None:
        background = np.maximum(1.0 - foreground, 0.0)
    return np.where(best > background, ids, 0).astype(np.int32)
