"""Streaming video output: frames are encoded as they arrive, and the file appears only when done.

Writing to a temporary name and renaming on a clean close means a crashed or interrupted run
never leaves a half-written video that looks finished.
"""

from __future__ import annotations

import contextlib
import warnings
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

from deva.errors import DevaError
from deva.io.atomic import atomic_path
from deva.types import Frame

# The temporary name has no video extension, so the container format is given explicitly.
_FORMATS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".avi": "avi",
    ".webm": "webm",
}
_FALLBACK_CODEC = "mpeg4"


def codec_available(name: str) -> bool:
    """Whether this FFmpeg build can encode with ``name``."""
    try:
        av.codec.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False
    return True


class VideoWriter:
    """Encode RGB frames of one fixed size to ``path`` through PyAV, one ``write`` at a time.

    Use as a context manager (or call ``close``). Odd sizes are padded by one edge-replicated
    row/column because yuv420p needs even dimensions. If the block raises, or no frame was
    written, no file is left at ``path``. ``libx264`` falls back to ``mpeg4`` when the FFmpeg
    build lacks it; ``crf`` and ``preset`` apply to libx264 only (veryfast: 3x faster than
    x264's default for overlays, at a similar size). MP4/MOV get their index first
    (faststart): they play while downloading, and a truncated copy fails loudly on read.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        *,
        codec: str = "libx264",
        crf: int = 23,
        preset: str = "veryfast",
    ) -> None:
        self.path = Path(path)
        self.format = _FORMATS.get(self.path.suffix.lower())
        if self.format is None:
            raise DevaError(
                f"{self.path}: unsupported video extension {self.path.suffix!r}; "
                f"use one of {', '.join(sorted(_FORMATS))}"
            )
        if not fps or not np.isfinite(fps) or fps <= 0:
            raise DevaError(f"{self.path}: frame rate must be positive, got {fps}")
        self.fps = float(fps)
        if not codec_available(codec):
            if codec != "libx264" or not codec_available(_FALLBACK_CODEC):
                raise DevaError(f"{self.path}: video codec {codec!r} is not available in FFmpeg")
            warnings.warn(
                f"libx264 is not available in this FFmpeg build; writing {self.path} with "
                f"{_FALLBACK_CODEC}",
                stacklevel=2,
            )
            codec = _FALLBACK_CODEC
        self.codec = codec
        self.crf = int(crf)
        self.preset = preset
        self.frames_written = 0
        self._size: tuple[int, int] | None = None  # (h, w) of the frames given
        self._files = contextlib.ExitStack()
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._closed = False

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        else:
            self._abort(exc_type, exc, tb)

    def write(self, frame: np.ndarray | Frame) -> None:
        """Encode one (H, W, 3) uint8 RGB frame; every frame must have the first one's size."""
        if self._closed:
            raise DevaError(f"{self.path}: write() after the video was closed")
        image = frame.image if isinstance(frame, Frame) else frame
        if (
            not isinstance(image, np.ndarray)
            or image.dtype != np.uint8
            or image.ndim != 3
            or image.shape[2] != 3
        ):
            described = (
                f"shape {image.shape}, dtype {image.dtype}"
                if isinstance(image, np.ndarray)
                else type(image).__name__
            )
            raise DevaError(f"{self.path}: frames must be (H, W, 3) uint8 RGB, got {described}")
        height, width = image.shape[:2]
        if self._size is None:
            self._start(height, width)
        elif (height, width) != self._size:
            raise DevaError(
                f"{self.path}: frame {self.frames_written} is {width}x{height} but the video is "
                f"{self._size[1]}x{self._size[0]}; all frames must have one size"
            )
        if height % 2 or width % 2:
            image = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        assert self._container is not None and self._stream is not None
        # Converted here, not by FFmpeg: swscale's RGB->YUV result depends on buffer alignment,
        # so the same frames could encode to different files (resumed runs must be identical).
        yuv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2YUV_I420)
        video_frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        try:
            self._container.mux(self._stream.encode(video_frame))
        except av.error.FFmpegError as err:
            raise DevaError(
                f"{self.path}: encoding frame {self.frames_written} failed: {err}"
            ) from err
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and move the finished file to ``path`` (no file if nothing written)."""
        if self._closed:
            return
        self._closed = True
        if self._container is None:
            return
        try:
            assert self._stream is not None
            try:
                self._container.mux(self._stream.encode(None))
                self._container.close()
            except av.error.FFmpegError as err:
                raise DevaError(f"{self.path}: finishing the video failed: {err}") from err
        except BaseException as err:
            self._abort(type(err), err, err.__traceback__)
            raise
        self._files.close()  # renames the temporary file to ``path``

    def _start(self, height: int, width: int) -> None:
        """Open the temporary file and the encoder once the frame size is known."""
        self._size = (height, width)
        temp = self._files.enter_context(atomic_path(self.path))
        options = {"movflags": "+faststart"} if self.format in ("mp4", "mov") else {}
        try:
            container = av.open(str(temp), mode="w", format=self.format, options=options)
        except (av.error.FFmpegError, OSError) as err:
            self._abort(type(err), err, err.__traceback__)
            raise DevaError(f"{self.path}: cannot create the video file: {err}") from err
        self._container = container
        try:
            rate = Fraction(self.fps).limit_denominator(1001)
            stream = container.add_stream(self.codec, rate=rate)
            stream.width = width + width % 2
            stream.height = height + height % 2
            stream.pix_fmt = "yuv420p"
            if self.codec == "libx264":
                stream.options = {"crf": str(self.crf), "preset": self.preset}
            else:
                # No CRF outside x264: ~0.2 bits per pixel is visually fine for overlays.
                stream.bit_rate = max(1_000_000, int(stream.width * stream.height * self.fps * 0.2))
            stream.codec_context.open()
        except (av.error.FFmpegError, ValueError) as err:
            self._abort(type(err), err, err.__traceback__)
            raise DevaError(f"{self.path}: cannot start the {self.codec} encoder: {err}") from err
        self._stream = stream

    def _abort(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Drop the partial file: close the container and let atomic_path delete the temp."""
        self._closed = True
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        with contextlib.suppress(BaseException):
            self._files.__exit__(exc_type or RuntimeError, exc or RuntimeError("aborted"), tb)
