"""Writes a tracking run to a folder: masks/<frame>.png, annotations.json, overlay.mp4.

Every file appears under its final name only when complete. If the run stops early, the masks
already written stay, the annotations so far go to ``annotations.incomplete.json`` and no
``annotations.json`` / ``overlay.mp4`` is created, so a partial run never looks finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from deva.errors import DevaError
from deva.io.atomic import atomic_path, ensure_writable_dir, write_errors
from deva.io.masks import read_id_png, write_id_png
from deva.io.video import VideoWriter
from deva.io.visualize import overlay
from deva.types import Frame, FrameResult, ObjectInfo

ANNOTATIONS = "annotations.json"
INCOMPLETE_ANNOTATIONS = "annotations.incomplete.json"
OVERLAY = "overlay.mp4"


@dataclass(frozen=True)
class WriterPosition:
    """How far a writer got: frames written and the bytes of its annotation stream so far."""

    frames_written: int
    annotations_bytes: int
    partial_name: str


class ResultWriter:
    """Context manager receiving (frame, result) pairs in order.

    category_names: optional category id -> name, shown on the overlay and in the JSON.
    resume_from: continue an interrupted run's annotation stream from this position (frames
        after it are written again).
    resumable: on failure keep the annotation stream where it is (a checkpoint points into it)
        and write ``annotations.incomplete.json`` as a copy.
    """

    def __init__(
        self,
        out_dir: str | Path,
        *,
        fps: float = 24.0,
        video: bool = True,
        category_names: Mapping[int, str] | None = None,
        resume_from: WriterPosition | None = None,
        resumable: bool = False,
    ) -> None:
        self.out_dir = ensure_writable_dir(out_dir)
        self.mask_dir = ensure_writable_dir(self.out_dir / "masks")
        self.fps = fps
        self.category_names = dict(category_names or {})
        self.num_frames = 0
        self.resumable = resumable or resume_from is not None
        self._video = VideoWriter(self.out_dir / OVERLAY, fps) if video else None
        if resume_from is None:
            # An earlier run's results must not look like this run's while it is running.
            for stale in (ANNOTATIONS, INCOMPLETE_ANNOTATIONS, OVERLAY):
                (self.out_dir / stale).unlink(missing_ok=True)
            for stale in self.out_dir.glob(f".{ANNOTATIONS}.*.partial"):
                stale.unlink(missing_ok=True)
            self._partial = self.out_dir / f".{ANNOTATIONS}.{os.getpid()}.partial"
            with write_errors(self.out_dir / ANNOTATIONS):
                self._annotations: IO[str] = self._partial.open("w", encoding="utf-8")
                self._annotations.write('{"frames": [\n')
        else:
            self._partial = self.out_dir / resume_from.partial_name
            if not self._partial.is_file():
                raise DevaError(f"cannot resume: {self._partial} is missing; start over")
            (self.out_dir / INCOMPLETE_ANNOTATIONS).unlink(missing_ok=True)
            self._annotations = self._partial.open("r+", encoding="utf-8")
            self._annotations.seek(resume_from.annotations_bytes)
            self._annotations.truncate()
            self.num_frames = resume_from.frames_written

    def __enter__(self) -> ResultWriter:
        if self._video is not None:
            self._video.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        complete = exc_type is None
        try:
            if self._video is not None:
                self._video.__exit__(exc_type, exc, traceback)
            with write_errors(self.out_dir / ANNOTATIONS):
                self._finish_annotations(complete=complete)
        except (DevaError, OSError):
            self._abandon()
            if complete:
                raise
            # else the run's own error, which the with statement re-raises, is the one to report

    def _abandon(self) -> None:
        """Finishing failed (a full disk, say): remove what would look complete and keep the
        annotations so far as the incomplete file where the disk still allows it."""
        with contextlib.suppress(OSError):
            (self.out_dir / OVERLAY).unlink(missing_ok=True)
        if not self._annotations.closed:
            try:
                self._finish_annotations(complete=False)
                return
            except OSError:
                pass
        with contextlib.suppress(OSError):
            self._annotations.close()
            if not self.resumable and self._partial.exists():
                os.replace(self._partial, self.out_dir / INCOMPLETE_ANNOTATIONS)

    def position(self) -> WriterPosition:
        """Flush and tell how far the outputs got (for a checkpoint)."""
        with write_errors(self.out_dir / ANNOTATIONS):
            self._annotations.flush()
            os.fsync(self._annotations.fileno())
        return WriterPosition(self.num_frames, self._annotations.tell(), self._partial.name)

    def write(self, frame: Frame, result: FrameResult) -> None:
        mask = self.mask_dir / f"{result.name}.png"
        with write_errors(mask):
            write_id_png(mask, result.ids)
        record = {
            "frame_index": result.frame_index,
            "file_name": result.name,
            "objects": [self._object_record(o) for o in result.objects],
        }
        separator = ",\n" if self.num_frames else ""
        with write_errors(self.out_dir / ANNOTATIONS):
            self._annotations.write(separator + json.dumps(record))
        self.num_frames += 1
        if self._video is not None:
            image = overlay(frame.image, result.ids, labels=_labels(record["objects"]))
            self._video.write(image, time=frame.time, duration=frame.duration)

    def _object_record(self, obj: ObjectInfo) -> dict:
        record = {
            "id": obj.id,
            "category_id": obj.category_id,
            "score": obj.score,
            "area": obj.area,
            "bbox": list(obj.bbox),
        }
        if obj.category_id is not None and obj.category_id in self.category_names:
            record["category"] = self.category_names[obj.category_id]
        return record

    def _finish_annotations(self, *, complete: bool) -> None:
        self._annotations.write(
            f'\n],\n"num_frames": {self.num_frames},\n"complete": {json.dumps(complete)}\n}}\n'
        )
        self._annotations.close()
        if complete:
            os.replace(self._partial, self.out_dir / ANNOTATIONS)
        elif self.resumable:
            with atomic_path(self.out_dir / INCOMPLETE_ANNOTATIONS) as temp:
                shutil.copyfile(self._partial, temp)
        else:
            os.replace(self._partial, self.out_dir / INCOMPLETE_ANNOTATIONS)


def render_overlay(frames: Iterable[Frame], out_dir: str | Path, *, fps: float) -> None:
    """overlay.mp4 from a finished run's masks/ and annotations.json (resumable runs draw it
    at the end, because a video stream cannot be continued after a kill)."""
    out = Path(out_dir)
    with (
        (out / ANNOTATIONS).open(encoding="utf-8") as lines,
        VideoWriter(out / OVERLAY, fps) as video,
    ):
        next(lines)  # '{"frames": ['
        for frame in frames:
            record = json.loads(next(lines).rstrip().removesuffix(","))
            if record["file_name"] != frame.name:
                raise DevaError(
                    f"{out / ANNOTATIONS}: frame {frame.name} expected, got {record['file_name']}"
                )
            ids = read_id_png(out / "masks" / f"{frame.name}.png")
            image = overlay(frame.image, ids, labels=_labels(record["objects"]))
            video.write(image, time=frame.time, duration=frame.duration)


def _labels(objects: Iterable[Mapping[str, object]]) -> dict[int, str]:
    """The text drawn on each object: its id, and its category name when known."""
    return {
        int(o["id"]): f"{o['id']} {o['category']}" if "category" in o else str(o["id"])  # type: ignore[call-overload]
        for o in objects
    }
