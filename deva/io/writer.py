"""Writes a tracking run to a folder: masks/<frame>.png, annotations.json, overlay.mp4 and,
on request, cutout.webm and objects/<id>/<frame>.png.

Every file appears under its final name only when complete. If the run stops early, the masks
already written stay, the annotations so far go to ``annotations.incomplete.json`` and no
``annotations.json`` / ``overlay.mp4`` is created, so a partial run never looks finished.
A fresh writer first removes an earlier run's outputs (``deva.io.run_folder``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

import deva
from deva.errors import DevaError
from deva.io.atomic import ensure_writable_dir, write_errors
from deva.io.cutout import CutoutWriter
from deva.io.masks import read_id_png, write_id_png
from deva.io.run_folder import (
    ANNOTATIONS,
    CUTOUT,
    INCOMPLETE_ANNOTATIONS,
    MASKS,
    OVERLAY,
    clear_earlier_run,
)
from deva.io.video import VideoWriter
from deva.io.visualize import OverlayStyle, overlay
from deva.types import Frame, FrameResult, ObjectInfo

__all__ = ["ANNOTATIONS", "INCOMPLETE_ANNOTATIONS", "OVERLAY", "ResultWriter", "render_overlay"]


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
        after it are written again); without it, an earlier run's outputs are removed first.
    resumable: the annotation stream survives a failure as ``annotations.incomplete.json``,
        which ``resume_from`` takes back (a checkpoint points into it).
    cutout: also write cutout.webm (the tracked objects on a transparent background).
    style: how overlay.mp4 draws objects.
    info: what the run was (input, options), recorded in annotations.json with deva's version.
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
        cutout: bool = False,
        style: OverlayStyle | None = None,
        info: Mapping[str, object] | None = None,
    ) -> None:
        self.out_dir = ensure_writable_dir(out_dir)
        if resume_from is None:
            # An earlier run's results must neither mix with this run's nor look like them.
            clear_earlier_run(self.out_dir)
        self.mask_dir = ensure_writable_dir(self.out_dir / MASKS)
        self.fps = fps
        self.category_names = dict(category_names or {})
        self.style = style or OverlayStyle()
        self.info = dict(info or {})
        self.num_frames = 0
        self.size: tuple[int, int] | None = None
        self.resumable = resumable or resume_from is not None
        self._video = VideoWriter(self.out_dir / OVERLAY, fps) if video else None
        self._cutout = CutoutWriter(self.out_dir / CUTOUT, fps) if cutout else None
        if resume_from is None:
            self._partial = self.out_dir / f".{ANNOTATIONS}.{os.getpid()}.partial"
            with write_errors(self.out_dir / ANNOTATIONS):
                self._annotations: IO[str] = self._partial.open("w", encoding="utf-8")
                self._annotations.write('{"frames": [\n')
        else:
            self._partial = self.out_dir / resume_from.partial_name
            incomplete = self.out_dir / INCOMPLETE_ANNOTATIONS
            if not self._partial.is_file() and incomplete.is_file():
                os.replace(incomplete, self._partial)  # stopped cleanly: the stream was moved
            if not self._partial.is_file():
                raise DevaError(f"cannot resume: {self._partial} is missing; start over")
            incomplete.unlink(missing_ok=True)
            self._annotations = self._partial.open("r+", encoding="utf-8")
            self._annotations.seek(resume_from.annotations_bytes)
            self._annotations.truncate()
            self.num_frames = resume_from.frames_written

    def __enter__(self) -> ResultWriter:
        for video in (self._video, self._cutout):
            if video is not None:
                video.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        complete = exc_type is None
        try:
            for video in (self._video, self._cutout):
                if video is not None:
                    video.__exit__(exc_type, exc, traceback)
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
        for video in (OVERLAY, CUTOUT):
            with contextlib.suppress(OSError):
                (self.out_dir / video).unlink(missing_ok=True)
        if not self._annotations.closed:
            try:
                self._finish_annotations(complete=False)
                return
            except OSError:
                pass
        with contextlib.suppress(OSError):
            self._annotations.close()
            if self._partial.exists():
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
        self.size = self.size or (int(result.ids.shape[0]), int(result.ids.shape[1]))
        if self._video is not None:
            image = _draw(frame.image, result.ids, record["objects"], self.style)
            self._video.write(image, time=frame.time, duration=frame.duration)
        if self._cutout is not None:
            self._cutout.write_cutout(
                frame.image, result.ids, time=frame.time, duration=frame.duration
            )

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
        tail = {"num_frames": self.num_frames, "complete": complete, **self._run_info()}
        lines = ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in tail.items())
        self._annotations.write(f"\n],\n{lines}\n}}\n")
        self._annotations.close()
        final = ANNOTATIONS if complete else INCOMPLETE_ANNOTATIONS
        os.replace(self._partial, self.out_dir / final)

    def _run_info(self) -> dict[str, object]:
        """What the run was: ``info`` (input, options) with the frame size, and deva's version."""
        info = dict(self.info)
        size = self.size or _first_mask_size(self.mask_dir)
        if isinstance(info.get("input"), dict):
            height, width = size or (None, None)
            info["input"] = {**info["input"], "width": width, "height": height}
        return {**info, "deva_version": deva.__version__}


def render_overlay(
    frames: Iterable[Frame],
    out_dir: str | Path,
    *,
    fps: float,
    video: bool = True,
    cutout: bool = False,
    style: OverlayStyle | None = None,
) -> None:
    """overlay.mp4 (and cutout.webm) from a finished run's masks/ and annotations.json
    (resumable runs draw them at the end: a video stream cannot be continued after a kill)."""
    out = Path(out_dir)
    style = style or OverlayStyle()
    with contextlib.ExitStack() as stack:
        lines = stack.enter_context((out / ANNOTATIONS).open(encoding="utf-8"))
        overlay_video = stack.enter_context(VideoWriter(out / OVERLAY, fps)) if video else None
        cutout_video = stack.enter_context(CutoutWriter(out / CUTOUT, fps)) if cutout else None
        next(lines)  # '{"frames": ['
        for frame in frames:
            record = json.loads(next(lines).rstrip().removesuffix(","))
            if record["file_name"] != frame.name:
                raise DevaError(
                    f"{out / ANNOTATIONS}: frame {frame.name} expected, got {record['file_name']}"
                )
            ids = read_id_png(out / MASKS / f"{frame.name}.png")
            if overlay_video is not None:
                image = _draw(frame.image, ids, record["objects"], style)
                overlay_video.write(image, time=frame.time, duration=frame.duration)
            if cutout_video is not None:
                cutout_video.write_cutout(
                    frame.image, ids, time=frame.time, duration=frame.duration
                )


def _draw(
    image: np.ndarray, ids: np.ndarray, objects: Iterable[Mapping[str, Any]], style: OverlayStyle
) -> np.ndarray:
    """One overlay frame: the text on each object is its id and/or category name (``style``)."""
    labels = {int(o["id"]): style.label(int(o["id"]), o.get("category")) for o in objects}
    return overlay(image, ids, alpha=style.alpha, labels=labels, contours=style.contours)


def _first_mask_size(mask_dir: Path) -> tuple[int, int] | None:
    """(height, width) of the run's masks, read from one PNG header (a resumed run that wrote
    no new frame does not know it otherwise)."""
    from PIL import Image

    first = next(mask_dir.glob("*.png"), None)
    if first is None:
        return None
    with Image.open(first) as image:
        return (image.height, image.width)
