"""Writes a tracking run to a folder: masks/<frame>.png, annotations.json, overlay.mp4.

Every file appears under its final name only when complete. If the run stops early, the masks
already written stay, the annotations so far go to ``annotations.incomplete.json`` and no
``annotations.json`` / ``overlay.mp4`` is created, so a partial run never looks finished.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

from deva.io.atomic import ensure_writable_dir
from deva.io.masks import write_id_png
from deva.io.video import VideoWriter
from deva.io.visualize import overlay
from deva.types import Frame, FrameResult, ObjectInfo

ANNOTATIONS = "annotations.json"
INCOMPLETE_ANNOTATIONS = "annotations.incomplete.json"
OVERLAY = "overlay.mp4"


class ResultWriter:
    """Context manager receiving (frame, result) pairs in order.

    category_names: optional category id -> name, shown on the overlay and in the JSON.
    """

    def __init__(
        self,
        out_dir: str | Path,
        *,
        fps: float = 24.0,
        video: bool = True,
        category_names: Mapping[int, str] | None = None,
    ) -> None:
        self.out_dir = ensure_writable_dir(out_dir)
        self.mask_dir = ensure_writable_dir(self.out_dir / "masks")
        self.fps = fps
        self.category_names = dict(category_names or {})
        self.num_frames = 0
        self._video = VideoWriter(self.out_dir / OVERLAY, fps) if video else None
        self._partial = self.out_dir / f".{ANNOTATIONS}.{os.getpid()}.partial"
        self._annotations: IO[str] = self._partial.open("w", encoding="utf-8")
        self._annotations.write('{"frames": [\n')

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
        if self._video is not None:
            self._video.__exit__(exc_type, exc, traceback)
        self._finish_annotations(complete=exc_type is None)

    def write(self, frame: Frame, result: FrameResult) -> None:
        write_id_png(self.mask_dir / f"{result.name}.png", result.ids)
        record = {
            "frame_index": result.frame_index,
            "file_name": result.name,
            "objects": [self._object_record(o) for o in result.objects],
        }
        separator = ",\n" if self.num_frames else ""
        self._annotations.write(separator + json.dumps(record))
        self.num_frames += 1
        if self._video is not None:
            labels = {o.id: self._label(o.id, o.category_id) for o in result.objects}
            self._video.write(overlay(frame.image, result.ids, labels=labels))

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

    def _label(self, object_id: int, category_id: int | None) -> str:
        name = self.category_names.get(category_id) if category_id is not None else None
        return f"{object_id} {name}" if name else str(object_id)

    def _finish_annotations(self, *, complete: bool) -> None:
        self._annotations.write(
            f'\n],\n"num_frames": {self.num_frames},\n"complete": {json.dumps(complete)}\n}}\n'
        )
        self._annotations.close()
        final = ANNOTATIONS if complete else INCOMPLETE_ANNOTATIONS
        os.replace(self._partial, self.out_dir / final)
