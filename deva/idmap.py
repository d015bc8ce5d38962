"""Id maps and per-object stacks: positions of listed ids, masks from an id map, and the
strongest channel of a stack, each in O(pixels + ids) working memory."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def index_map(ids: np.ndarray, wanted: Sequence[int]) -> np.ndarray:
    """Map each id of ``wanted`` to its 1-based position, everything else to 0."""
    if not len(wanted):
        return np.zeros(ids.shape, dtype=np.int64)
    largest = max(int(ids.max(initial=0)), max(wanted))
    if largest < 1 << 20:
        lut = np.zeros(largest + 1, dtype=np.int64)
        lut[np.asarray(wanted)] = np.arange(1, len(wanted) + 1)
        return lut[np.clip(ids, 0, largest)]
    order = np.argsort(wanted)
    sorted_ids = np.asarray(wanted)[order]
    position = np.clip(np.searchsorted(sorted_ids, ids), 0, len(wanted) - 1)
    found = sorted_ids[position] == ids
    return np.where(found, order[position] + 1, 0)


#: Channels compared per step by ``strongest_channel``: numpy's argmax over the first axis
#: copies the whole (1 + K, H, W) stack, this bounds the copy at a block of channels.
_CHANNEL_BLOCK = 16


def strongest_channel(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index, value) of each pixel's largest channel of (C, H, W) ``probs``; the first one wins
    ties, as ``np.argmax(probs, axis=0)``, in O(H·W) memory whatever the number of channels."""
    best = np.array(probs[0], copy=True)
    index = np.zeros(best.shape, np.int64)
    for start in range(1, len(probs), _CHANNEL_BLOCK):
        block = probs[start : start + _CHANNEL_BLOCK]
        block_best = block.max(axis=0)
        wins = block_best > best
        index[wins] = np.argmax(block, axis=0)[wins] + start
        best[wins] = block_best[wins]
    return index, best


def masks_from_ids(ids: np.ndarray, object_ids: Sequence[int]) -> np.ndarray:
    """(K, H, W) bool masks ``ids == object_ids[k]`` (for propagators that take stacks)."""
    index = index_map(ids, object_ids).ravel()
    masks = np.zeros((len(object_ids), *ids.shape), dtype=bool)
    pixels = np.flatnonzero(index)
    masks.reshape(len(object_ids), ids.size)[index[pixels] - 1, pixels] = True
    return masks
