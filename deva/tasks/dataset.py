"""Benchmark datasets as folders: one folder of frames per video, detections in a parallel tree.

A video is named by its path relative to the dataset root (``12_1mWNahzcsAc`` for VIPSeg,
``YFCC100M/v_25685519b728afd746dfd1b2fe77c`` for BURST), and the same name finds its images,
its detections and its outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deva.config import TrackerConfig
from deva.errors import DevaError, OptionError
from deva.io.frames import IMAGE_EXTENSIONS, ImageFilesSource, natural_sort_key
from deva.propagation.base import Propagator
from deva.segmenters.base import ImageSegmenter
from deva.segmenters.precomputed import PrecomputedSegmenter, read_dataset_meta
from deva.tracker import Tracker
from deva.types import FrameResult

#: Called after every frame: (video name, frames done so far, frames in the whole run).
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Video:
    """One video of a dataset: its name and its frames (possibly subsampled)."""

    name: str
    frames: ImageFilesSource

    def file_name(self, index: int) -> str:
        """The image file name of frame ``index`` (``00001.jpg``), as benchmark JSONs want."""
        return self.frames.files[index].name


def video_folders(root: Path, depth: int) -> list[str]:
    """Names of the folders exactly ``depth`` levels below ``root``, in natural order."""
    if not root.is_dir():
        raise DevaError(f"{root}: folder not found")
    level = [root]
    for _ in range(depth):
        level = [c for p in level for c in p.iterdir() if c.is_dir() and not c.name.startswith(".")]
    names = [p.relative_to(root).as_posix() for p in level]
    if not names:
        raise DevaError(f"{root}: no video folders found {depth} level(s) down")
    return sorted(names, key=natural_sort_key)


def open_video(images_root: Path, name: str, *, every: int = 1) -> Video:
    """The frames of ``images_root/name`` (every ``every``-th image, from the first)."""
    if every < 1:
        raise OptionError("subsample_every", f"must be >= 1, got {every}")
    folder = images_root / name
    if not folder.is_dir():
        raise DevaError(f"{folder}: image folder of video {name!r} not found")
    files = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
        key=lambda p: natural_sort_key(p.name),
    )
    if not files:
        raise DevaError(f"{folder}: no image files")
    return Video(name, ImageFilesSource(files[::every], description=str(folder)))


class Detections:
    """Precomputed detections of a whole dataset in the official layout (spec §4.1):
    ``root[/pan_pred]/<video>/<frame>.png`` (+ per-frame JSON), or one ``root/pred.json``
    describing every video (read once)."""

    def __init__(self, root: str | Path, *, allow_missing: bool = False) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DevaError(f"detections folder {self.root} does not exist")
        pan_pred = self.root / "pan_pred"
        self.mask_root = pan_pred if pan_pred.is_dir() else self.root
        self.allow_missing = allow_missing
        meta_file = self.root / "pred.json"
        self._meta: dict[str, list[Any]] | None = (
            read_dataset_meta(meta_file) if meta_file.is_file() else None
        )

    def videos(self, depth: int = 1) -> list[str]:
        return video_folders(self.mask_root, depth)

    def segmenter(self, video: Video) -> PrecomputedSegmenter:
        folder = self.mask_root / video.name
        if not folder.is_dir():
            raise DevaError(f"{folder}: no detections for video {video.name!r}")
        meta = None
        if self._meta is not None:
            meta = self._meta.get(video.name)
            if meta is None:
                raise DevaError(f"{self.root / 'pred.json'}: no entry for video {video.name!r}")
        return PrecomputedSegmenter(
            folder,
            frame_name=video.frames.name,
            allow_missing=self.allow_missing,
            global_meta=meta,
        )


def track_videos(
    videos: Sequence[Video],
    segmenter: Callable[[Video], ImageSegmenter],
    propagator: Propagator,
    config: TrackerConfig,
    progress: Progress | None = None,
) -> Iterator[tuple[Video, Iterator[FrameResult]]]:
    """Each video with the stream of its results (consume one before asking for the next)."""
    total = sum(v.frames.num_frames or 0 for v in videos)
    done = 0
    for video in videos:
        tracker = Tracker(segmenter(video), propagator, config)

        def results(video: Video = video, tracker: Tracker = tracker) -> Iterator[FrameResult]:
            nonlocal done
            for result in tracker.run(video.frames):
                yield result
                done += 1
                if progress is not None:
                    progress(video.name, done, total)

        yield video, results()
