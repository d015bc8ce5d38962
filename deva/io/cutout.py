"""cutout.webm: the tracked objects on a transparent background (VP9 with an alpha channel).

Editors and browsers composite it over anything, so the objects can be lifted out of the video
without touching the masks. Pixels of id 0 are fully transparent, object pixels opaque. It is
a ``VideoWriter`` (same size, timing, atomic file and deterministic colour conversion as
overlay.mp4) whose frames carry a fourth plane, the alpha.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from deva.errors import DevaError
from deva.io.video import VideoWriter, _yuv_frame

CODEC = "libvpx-vp9"


class CutoutWriter(VideoWriter):
    """Encode (image, ids) pairs to a ``.webm`` as VP9 + alpha (``write_cutout``)."""

    def __init__(self, path: str | Path, fps: float) -> None:
        super().__init__(path, fps, codec=CODEC)

    def write_cutout(
        self,
        image: np.ndarray,
        ids: np.ndarray,
        *,
        time: float | None = None,
        duration: float | None = None,
    ) -> None:
        """One frame: (H, W, 3) uint8 RGB ``image``, opaque where ``ids`` is non-zero;
        ``time`` / ``duration`` as ``VideoWriter.write``."""
        height, width = ids.shape
        if self._size is None:
            self._start(height, width, timed=time is not None)
        elif (height, width) != self._size:
            raise DevaError(f"{self.path}: frame {self.frames_written} changes the video size")
        assert self._stream is not None
        frame = av.VideoFrame(width, height, "yuva420p")
        colour = _yuv_frame(image, "yuv420p")
        alpha = np.where(ids != 0, 255, 0).astype(np.uint8)
        sources = [_rows(plane) for plane in colour.planes] + [alpha]
        for plane, values in zip(frame.planes, sources, strict=True):
            padded = np.zeros((plane.height, plane.line_size), np.uint8)
            padded[:, : plane.width] = values
            plane.update(padded)
        if self._timed:
            self._stamp(frame, time, duration)
        try:
            self._mux(self._stream.encode(frame))
        except av.error.FFmpegError as err:
            raise DevaError(
                f"{self.path}: encoding frame {self.frames_written} failed: {err}"
            ) from err
        self.frames_written += 1

    def _encoding(self, height: int, width: int) -> tuple[str, str]:
        return CODEC, "yuva420p"


def _rows(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """A plane's pixels without its row padding."""
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]
