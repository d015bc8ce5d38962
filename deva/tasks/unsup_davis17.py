"""Unsupervised DAVIS-2017 (spec §4.2, §4.4): track every video from per-frame instance
detections, then keep at most 20 objects (the benchmark scores at most 20 proposals).

Input:  ``IMAGES/<video>/<frame>.jpg``; detections ``DETS/<video>/<frame>.png`` (+ JSON).
Output: ``OUT/<video>/<frame>.png``, palette PNGs with ids 1..20 (DAVIS colours).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from deva.config import TrackerConfig
from deva.errors import OptionError
from deva.io.atomic import ensure_writable_dir
from deva.propagation.base import Propagator
from deva.tasks.dataset import Detections, Progress, open_video, track_videos
from deva.tasks.outputs import PackedIds, relabel, write_palette_ids

__all__ = ["MAX_IDS", "keep_first_ids", "run_davis17_unsup"]

MAX_IDS = 20
"""Official postprocess_limit_max_id: the DAVIS-2017 unsupervised protocol's proposal limit."""


def keep_first_ids(
    frame_areas: Sequence[Mapping[int, int]], max_ids: int = MAX_IDS
) -> dict[int, int]:
    """Old id -> new id 1..max_ids for the objects kept (spec §4.4), a pure function.

    Frames are walked in order, each frame's objects largest first, and every object not yet
    kept is kept until ``max_ids`` distinct objects are; new ids follow that order. (Official
    DEVA appends an object again each frame it appears in, so duplicates fill the list and
    fewer than 20 distinct objects may survive.)
    """
    if max_ids < 1:
        raise OptionError("max_ids", f"must be >= 1, got {max_ids}")
    kept: dict[int, int] = {}
    for areas in frame_areas:
        for object_id, _ in sorted(areas.items(), key=lambda item: (-item[1], item[0])):
            if len(kept) == max_ids:
                return kept
            if object_id not in kept:
                kept[object_id] = len(kept) + 1
    return kept


def run_davis17_unsup(
    images: str | Path,
    detections: str | Path,
    output: str | Path,
    *,
    propagator: Propagator,
    config: TrackerConfig | None = None,
    max_ids: int = MAX_IDS,
    allow_missing: bool = False,
    progress: Progress | None = None,
) -> int:
    """Track every video of the detections folder; returns the number of frames written."""
    if not 1 <= max_ids <= 255:
        raise OptionError("max_ids", f"must be in 1..255 (palette PNG), got {max_ids}")
    images, output = Path(images), ensure_writable_dir(output)
    dets = Detections(detections, allow_missing=allow_missing)
    videos = [open_video(images, name) for name in dets.videos()]
    written = 0
    config = config or TrackerConfig()
    for video, results in track_videos(videos, dets.segmenter, propagator, config, progress):
        frames = [
            (r.name, PackedIds.pack(r.ids), {o.id: o.area for o in r.objects}) for r in results
        ]
        mapping = keep_first_ids([areas for _, _, areas in frames], max_ids)
        folder = ensure_writable_dir(output / video.name)
        for name, ids, _ in frames:
            write_palette_ids(folder / f"{name}.png", relabel(ids.unpack(), mapping))
        written += len(frames)
    return written
