"""Time of the in-clip consensus (matching + integer program + painting) per clip, for clips
whose frames hold many segments, as the automatic "segment everything" mode produces."""

from __future__ import annotations

import time

import numpy as np

from deva.fusion.consensus import consensus
from deva.types import Segmentation


def random_clip(
    segments_per_frame: int, frames: int = 3, shape=(480, 854), seed: int = 0
) -> list[Segmentation]:
    """Frames tiled into ``segments_per_frame`` cells, each jittered per frame so most cells
    match their counterparts (IoU > 0.5) while some drop out, like a noisy segmenter."""
    rng = np.random.default_rng(seed)
    cols = int(np.ceil(np.sqrt(segments_per_frame * shape[1] / shape[0])))
    rows = int(np.ceil(segments_per_frame / cols))
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    clip = []
    for _ in range(frames):
        jitter_y = rng.integers(-3, 4)
        jitter_x = rng.integers(-3, 4)
        cell = ((ys + jitter_y) * rows // shape[0]).clip(0, rows - 1) * cols + (
            (xs + jitter_x) * cols // shape[1]
        ).clip(0, cols - 1)
        ids = (cell + 1).astype(np.int32)
        ids[ids > segments_per_frame] = 0
        dropped = rng.random(segments_per_frame) < 0.1
        ids[np.isin(ids, np.flatnonzero(dropped) + 1)] = 0
        clip.append(Segmentation.from_ids(ids))
    return clip


def measure(counts=(10, 50, 200), repeats: int = 3) -> list[dict[str, float]]:
    rows = []
    for count in counts:
        clip = random_clip(count)
        best = min(_timed(clip) for _ in range(repeats))
        kept = len(consensus(clip).segmentation.segments)
        rows.append({"segments": count, "ms": best * 1000, "kept": kept})
    return rows


def _timed(clip: list[Segmentation]) -> float:
    start = time.perf_counter()
    consensus(clip)
    return time.perf_counter() - start


if __name__ == "__main__":
    for row in measure():
        print(row)
