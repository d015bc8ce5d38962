"""VIPSeg video panoptic segmentation (spec §4.2, §4.3): track a whole dataset from precomputed
panoptic detections and write the layout the VPQ / STQ evaluators read.

Input:  ``IMAGES/<video>/<frame>.jpg``; detections ``DETS[/pan_pred]/<video>/<frame>.png``
        (RGB ids) with ``DETS/pred.json`` or per-frame JSON giving every segment's category.
Output: ``OUT/pan_pred/<video>/<frame>.png`` (24-bit RGB ids) and ``OUT/pred.json``:
        ``{"annotations": [{"video_id", "annotations": [{"file_name", "segments_info"}]}]}``.

Thing/stuff comes from the category (the fixed VIPSeg table), never from the JSON. Stuff merging
(on by default) then gives all stuff segments of one category in a video one id and a thing a
new id whenever its voted category changes, because VPQ requires one category per id.
Give it ``FlowPropagator(fill_unknown=True)`` (what ``deva run-task vipseg`` does): pixels that
flow gives no source then take the nearest segment's label, since every pixel of a panoptic
frame belongs to some segment and VPQ / STQ count unlabelled ones as misses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from deva.config import TrackerConfig
from deva.errors import DevaError
from deva.io.atomic import ensure_writable_dir
from deva.propagation.base import Propagator
from deva.segmenters.base import ImageSegmenter
from deva.tasks.dataset import Detections, Progress, Video, open_video, track_videos
from deva.tasks.outputs import PackedIds, relabel, write_json, write_rgb_ids
from deva.types import FrameResult, Segmentation

__all__ = [
    "PanopticSegment",
    "VipsegSegmenter",
    "merge_stuff",
    "run_vipseg",
    "vipseg_categories",
]


@dataclass(frozen=True)
class Category:
    id: int
    name: str
    is_thing: bool


@cache
def vipseg_categories() -> dict[int, Category]:
    """The 124 VIPSeg categories (58 things, 66 stuff), ids 0..123, from the data file shipped
    with deva (copied from the VIPSeg dataset's ``panoVIPSeg_categories.json``)."""
    text = resources.files("deva.tasks").joinpath("data/vipseg_categories.json").read_text()
    rows = json.loads(text)["categories"]
    return {int(r["id"]): Category(int(r["id"]), r["name"], bool(r["isthing"])) for r in rows}


def is_thing(category_id: int) -> bool:
    """Thing (True) or stuff (False) of a VIPSeg category; a DevaError for an unknown one."""
    category = vipseg_categories().get(category_id)
    if category is None:
        raise DevaError(f"category {category_id} is not a VIPSeg category (0..123)")
    return category.is_thing


class VipsegSegmenter:
    """Wraps a segmenter and sets each segment's thing/stuff flag from its VIPSeg category."""

    def __init__(self, inner: ImageSegmenter, where: str) -> None:
        self.inner = inner
        self.where = where

    def segment(
        self, image: np.ndarray, *, frame_index: int, unsegmented: np.ndarray | None = None
    ) -> Segmentation:
        detection = self.inner.segment(image, frame_index=frame_index, unsegmented=unsegmented)
        segments = []
        for info in detection.segments:
            where = f"{self.where}, frame {frame_index}, segment {info.id}"
            if info.category_id is None:
                raise DevaError(f"{where}: no category_id (VIPSeg derives thing/stuff from it)")
            try:
                segments.append(replace(info, is_thing=is_thing(info.category_id)))
            except DevaError as err:
                raise DevaError(f"{where}: {err}") from None
        return Segmentation(detection.ids, tuple(segments))


@dataclass(frozen=True)
class PanopticSegment:
    """One output segment after stuff merging."""

    id: int
    category_id: int
    is_thing: bool


def merge_stuff(
    frames: Sequence[Sequence[tuple[int, int]]],
    thing: Callable[[int], bool] = is_thing,
) -> list[tuple[dict[int, int], list[PanopticSegment]]]:
    """Stuff merging over one video (spec §4.3), a pure function.

    frames: per frame, the (object id, category id) of every segment present.
    Returns per frame the id mapping (old -> new) and the output segments (one per new id).
    A thing keeps its id for its first category and gets a fresh id for each other category
    (the same one whenever it returns to that category); all stuff of one category shares the
    id of the first object seen with it. Fresh ids lie above every id of the video, so they
    never collide with an object that appears later (official DEVA draws random ids).
    """
    taken: set[int] = set()
    next_free = max((i for frame in frames for i, _ in frame), default=0) + 1
    things: dict[tuple[int, int], int] = {}
    stuff: dict[int, int] = {}
    out = []
    for frame in frames:
        mapping: dict[int, int] = {}
        segments: dict[int, PanopticSegment] = {}
        for object_id, category_id in frame:
            is_a_thing = thing(category_id)
            table, key = (things, (object_id, category_id)) if is_a_thing else (stuff, category_id)
            if key not in table:
                if object_id in taken:
                    table[key], next_free = next_free, next_free + 1
                else:
                    table[key] = object_id
                taken.add(table[key])
            new_id = table[key]
            mapping[object_id] = new_id
            segments.setdefault(new_id, PanopticSegment(new_id, category_id, is_a_thing))
        out.append((mapping, list(segments.values())))
    return out


def run_vipseg(
    images: str | Path,
    detections: str | Path,
    output: str | Path,
    *,
    propagator: Propagator,
    config: TrackerConfig | None = None,
    stuff_merging: bool = True,
    allow_missing: bool = False,
    progress: Progress | None = None,
) -> int:
    """Track every video of the detections folder; returns the number of frames written."""
    images, output = Path(images), ensure_writable_dir(output)
    dets = Detections(detections, allow_missing=allow_missing)
    videos = [open_video(images, name) for name in dets.videos()]
    config = config or TrackerConfig()

    def segmenter(video: Video) -> ImageSegmenter:
        return VipsegSegmenter(dets.segmenter(video), str(dets.mask_root / video.name))

    annotations, written = [], 0
    for video, results in track_videos(videos, segmenter, propagator, config, progress):
        folder = ensure_writable_dir(output / "pan_pred" / video.name)
        frames = [_tracked_frame(video, result) for result in results]
        records = _write_video(folder, frames, stuff_merging)
        annotations.append({"video_id": video.name, "annotations": records})
        written += len(records)
    write_json(output / "pred.json", {"annotations": annotations})
    return written


@dataclass(frozen=True)
class _TrackedFrame:
    name: str
    file_name: str
    ids: PackedIds
    segments: list[dict[str, Any]]


def _tracked_frame(video: Video, result: FrameResult) -> _TrackedFrame:
    segments = []
    for obj in result.objects:
        if obj.category_id is None or obj.area == 0:
            continue
        segments.append(
            {"id": obj.id, "category_id": obj.category_id, "score": obj.score, "area": obj.area}
        )
    return _TrackedFrame(
        result.name, video.file_name(result.frame_index), PackedIds.pack(result.ids), segments
    )


def _write_video(folder: Path, frames: list[_TrackedFrame], stuff_merging: bool) -> list[dict]:
    """Write the PNGs of one video; return its per-frame JSON records."""
    if not stuff_merging:
        for frame in frames:
            write_rgb_ids(folder / f"{frame.name}.png", frame.ids.unpack())
        return [{"file_name": f.file_name, "segments_info": f.segments} for f in frames]
    pairs = [[(s["id"], s["category_id"]) for s in f.segments] for f in frames]
    records = []
    for frame, (mapping, segments) in zip(frames, merge_stuff(pairs), strict=True):
        write_rgb_ids(folder / f"{frame.name}.png", relabel(frame.ids.unpack(), mapping))
        info = [
            {"id": s.id, "category_id": s.category_id, "isthing": int(s.is_thing)} for s in segments
        ]
        records.append({"file_name": frame.file_name, "segments_info": info})
    return records
