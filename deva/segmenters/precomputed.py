"""Detections made beforehand, in the official DEVA layout (spec §4.1), so files prepared for
the original code work unchanged.

Layout of ``root`` (one video):
    <frame>.png        id map: palette/grayscale index, 16-bit value, or RGB id = R + 256G + 65536B
    <frame>.json       optional: [{"id": 3, "category_id": 1, "score": 0.9, "isthing": true}, ...]
    pred.json          optional, wins over per-frame JSON: {"annotations": [{"video_id": ...,
                       "annotations": [{"segments_info": [...]}, ... one per frame in order]}]}
    pan_pred/          if present, the PNGs are read from here instead
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deva.errors import DevaError
from deva.io.json_file import read_json
from deva.io.masks import read_id_png
from deva.io.paths import why_missing
from deva.types import Segmentation, SegmentInfo

log = logging.getLogger(__name__)


class PrecomputedSegmenter:
    """Reads frame ``i``'s detection from ``<root>/<frame_name(i)>.png`` (+ meta).

    frame_name: maps a frame index to the file stem (the frame source's ``name``); by default
        the i-th PNG of the folder in natural order.
    allow_missing: a frame with no PNG becomes an empty detection instead of an error.
    global_meta: this video's per-frame segment lists, already read from a dataset-level
        ``pred.json`` (``read_dataset_meta``); they win over any JSON in ``root``.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        frame_name: Callable[[int], str] | None = None,
        allow_missing: bool = False,
        global_meta: list[Any] | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            problem = "is not a folder" if self.root.exists() else why_missing(self.root)
            raise DevaError(f"detections folder {self.root}: {problem}")
        self.mask_root = self.root / "pan_pred" if (self.root / "pan_pred").is_dir() else self.root
        self.allow_missing = allow_missing
        self._frame_name = frame_name or self._nth_png
        self._global = global_meta
        if global_meta is None:
            self._global = _read_global_meta(self.root / "pred.json", video_name=self.root.name)
        self._pngs: list[Path] | None = None

    def segment(
        self, image: np.ndarray, *, frame_index: int, unsegmented: np.ndarray | None = None
    ) -> Segmentation:
        """This frame's detection; ``unsegmented`` is ignored (the detections are fixed)."""
        height, width = image.shape[:2]
        path = self.mask_root / f"{self._frame_name(frame_index)}.png"
        if not path.is_file():
            if self.allow_missing:
                return Segmentation.empty(height, width)
            raise DevaError(f"{path}: detection missing for frame {frame_index}")
        ids = read_id_png(path)
        if ids.shape != (height, width):
            raise DevaError(
                f"{path}: detection is {ids.shape[1]}x{ids.shape[0]} but the frame is "
                f"{width}x{height}"
            )
        infos = self._meta(frame_index, path)
        return _with_every_id(ids, infos, path)

    def _meta(self, frame_index: int, png: Path) -> list[SegmentInfo] | None:
        if self._global is not None:
            frames = self._global
            if frame_index >= len(frames):
                raise DevaError(
                    f"{self.root / 'pred.json'}: no entry for frame {frame_index}; it lists "
                    f"{len(frames)} frame{'s' * (len(frames) != 1)}"
                )
            return parse_segments_info(frames[frame_index], self.root / "pred.json")
        json_path = png.with_suffix(".json")
        if not json_path.is_file():
            json_path = self.root / f"{png.stem}.json"
        if not json_path.is_file():
            return None
        return parse_segments_info(read_json(json_path), json_path)

    def _nth_png(self, frame_index: int) -> str:
        if self._pngs is None:
            from deva.io.frames import natural_sort_key

            pngs = self.mask_root.glob("*.png")
            self._pngs = sorted(pngs, key=lambda p: natural_sort_key(p.name))
        if frame_index >= len(self._pngs):
            return f"<missing frame {frame_index}>"
        return self._pngs[frame_index].stem


def parse_segments_info(raw: Any, source: Path) -> list[SegmentInfo]:
    """SegmentInfos from a JSON list (or {"segments_info": [...]}); errors name the file."""
    if isinstance(raw, dict) and "segments_info" in raw:
        raw = raw["segments_info"]
    if not isinstance(raw, list):
        raise DevaError(f"{source}: expected a list of segments, got {type(raw).__name__}")
    infos = []
    for position, entry in enumerate(raw):
        where = f"{source}: segment {position}"
        if not isinstance(entry, dict):
            raise DevaError(f"{where}: expected an object, got {type(entry).__name__}")
        segment_id = entry.get("id")
        if not _is_int(segment_id) or segment_id <= 0:
            raise DevaError(f"{where}: 'id' must be a positive integer, got {segment_id!r}")
        category = entry.get("category_id")
        if category is not None and not _is_int(category):
            raise DevaError(f"{where}: 'category_id' must be an integer, got {category!r}")
        score = entry.get("score")
        if score is not None and not _is_finite_number(score):
            raise DevaError(f"{where}: 'score' must be a finite number, got {score!r}")
        is_thing = entry.get("isthing")
        if is_thing is not None and not isinstance(is_thing, bool):
            raise DevaError(f"{where}: 'isthing' must be true/false, got {is_thing!r}")
        infos.append(SegmentInfo(int(segment_id), category, score, is_thing))
    if len({i.id for i in infos}) != len(infos):
        raise DevaError(f"{source}: lists the same segment id twice")
    return infos


def _with_every_id(ids: np.ndarray, infos: list[SegmentInfo] | None, path: Path) -> Segmentation:
    """A Segmentation whose list covers every id in the PNG (unlisted ids get no meta)."""
    if infos is None:
        return Segmentation.from_ids(ids)
    listed = {i.id for i in infos}
    unlisted = [int(i) for i in np.unique(ids) if i != 0 and int(i) not in listed]
    if unlisted:
        log.debug("%s: ids %s have no JSON entry; using them without meta", path, unlisted[:10])
    return Segmentation(ids=ids, segments=(*infos, *(SegmentInfo(i) for i in unlisted)))


def read_dataset_meta(path: str | Path) -> dict[str, list[Any]]:
    """Every video's per-frame segment lists from a dataset-level ``pred.json``
    (``{"annotations": [{"video_id", "annotations": [...]}]}``), read once for all videos."""
    path = Path(path)
    raw = read_json(path)
    videos = raw.get("annotations") if isinstance(raw, dict) else None
    if not isinstance(videos, list):
        raise DevaError(f"{path}: expected {{'annotations': [{{'video_id', 'annotations'}}]}}")
    meta = {}
    for position, video in enumerate(videos):
        frames = video.get("annotations") if isinstance(video, dict) else None
        if not isinstance(frames, list) or "video_id" not in video:
            raise DevaError(f"{path}: video entry {position} needs 'video_id' and 'annotations'")
        meta[str(video["video_id"])] = frames
    return meta


def _read_global_meta(path: Path, *, video_name: str) -> list[Any] | None:
    """Per-frame segment lists of this video from a global ``pred.json``, or None if absent."""
    if not path.is_file():
        return None
    raw = read_json(path)
    videos = raw.get("annotations") if isinstance(raw, dict) else None
    if not isinstance(videos, list) or not videos:
        raise DevaError(f"{path}: expected {{'annotations': [{{'video_id', 'annotations'}}]}}")
    for position, video in enumerate(videos):
        if not isinstance(video, dict):
            raise DevaError(
                f"{path}: video entry {position} must be an object, got {type(video).__name__}"
            )
    if "segments_info" in videos[0]:
        return videos  # one video, frames listed directly (deva's and the demo's pred.json)
    chosen = next((v for v in videos if str(v.get("video_id")) == video_name), None)
    if chosen is None and len(videos) == 1:
        chosen = videos[0]
    if chosen is None:
        raise DevaError(f"{path}: no entry with video_id {video_name!r}")
    frames = chosen.get("annotations")
    if not isinstance(frames, list):
        raise DevaError(f"{path}: video {video_name!r} has no 'annotations' list")
    return frames


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
