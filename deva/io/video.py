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
# H.264 stores 4:2:0 pictures in whole 2x2 blocks, so it cannot hold an odd width or height;
# VP9 can (and plays in browsers); where it cannot be used, H.264 4:4:4 keeps the size.
_ODD_SIZE_CODEC = "libvpx-vp9"
_ODD_SIZE_FORMATS = ("mp4", "matroska", "webm")
_VP9_OPTIONS = {"deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0", "row-mt": "1"}
# Timestamps of timed frames (see ``write``): fine enough for any input, and within the
# 65535 limit MPEG-4 part 2 puts on a time base.
_TIME_BASE = Fraction(1, 60000)


def codec_available(name: str) -> bool:
    """Whether this FFmpeg build can encode with ``name``."""
    try:
        av.codec.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False
    return True


class VideoWriter:
    """Encode RGB frames of one fixed size to ``path`` through PyAV, one ``write`` at a time.

    Use as a context manager (or call ``close``). If the block raises, or no frame was
    written, no file is left at ``path``. ``libx264`` falls back to ``mpeg4`` when the FFmpeg
    build lacks it; ``crf`` and ``preset`` apply to libx264 only (veryfast: 3x faster than
    x264's default for overlays, at a similar size). MP4/MOV get their index first
    (faststart): they play while downloading, and a truncated copy fails loudly on read.

    The video has the frames' exact size: an odd width or height, which H.264 4:2:0 cannot
    store, is written with VP9 (MP4, MKV, WebM) or else H.264 4:4:4 instead of libx264.
    Frames given a ``time`` keep it (a variable frame rate survives), the rest follow ``fps``.
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
        self._pix_fmt = "yuv420p"
        self._timed = False  # frames carry their own times (set by the first one)
        self._last_pts = -1
        self._durations: dict[int, int] = {}  # pts -> duration, both in _TIME_BASE ticks
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

    def write(
        self,
        frame: np.ndarray | Frame,
        *,
        time: float | None = None,
        duration: float | None = None,
    ) -> None:
        """Encode one (H, W, 3) uint8 RGB frame; every frame must have the first one's size.

        time, duration: when the frame is shown (seconds from the first frame) and for how
        long; a ``Frame`` brings its own. Without a time on the first frame, every frame
        lasts 1 / fps.
        """
        if self._closed:
            raise DevaError(f"{self.path}: write() after the video was closed")
        if isinstance(frame, Frame):
            time = frame.time if time is None else time
            duration = frame.duration if duration is None else duration
            frame = frame.image
        image = frame
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
            self._start(height, width, timed=time is not None)
        elif (height, width) != self._size:
            raise DevaError(
                f"{self.path}: frame {self.frames_written} is {width}x{height} but the video is "
                f"{self._size[1]}x{self._size[0]}; all frames must have one size"
            )
        assert self._container is not None and self._stream is not None
        video_frame = _yuv_frame(image, self._pix_fmt)
        if self._timed:
            self._stamp(video_frame, time, duration)
        try:
            self._mux(self._stream.encode(video_frame))
        except av.error.FFmpegError as err:
            raise DevaError(
                f"{self.path}: encoding frame {self.frames_written} failed: {err}"
            ) from err
        self.frames_written += 1

    def _stamp(self, frame: av.VideoFrame, time: float | None, duration: float | None) -> None:
        """Give a frame its presentation time; a missing or non-increasing one (a damaged
        input) follows the previous frame by 1 / fps or one tick."""
        step = round(1 / (self.fps * _TIME_BASE))
        pts = self._last_pts + step if time is None else round(time / _TIME_BASE)
        pts = max(pts, self._last_pts + 1)
        frame.pts, frame.time_base = pts, _TIME_BASE
        self._durations[pts] = max(1, round(duration / _TIME_BASE)) if duration else step
        self._last_pts = pts

    def _mux(self, packets: list[av.Packet]) -> None:
        """Write encoded packets; timed ones get their frame's duration (MP4 takes the last
        frame's from it, which sets where the video ends)."""
        assert self._container is not None
        for packet in packets:
            if self._timed and packet.pts is not None:
                packet.duration = self._durations.pop(packet.pts, packet.duration)
            self._container.mux(packet)

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
                self._mux(self._stream.encode(None))
                self._container.close()
            except av.error.FFmpegError as err:
                raise DevaError(f"{self.path}: finishing the video failed: {err}") from err
        except BaseException as err:
            self._abort(type(err), err, err.__traceback__)
            raise
        self._files.close()  # renames the temporary file to ``path``

    def _start(self, height: int, width: int, *, timed: bool) -> None:
        """Open the temporary file and the encoder once the frame size is known."""
        self._size = (height, width)
        self._timed = timed
        codec, self._pix_fmt = self._encoding(height, width)
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
            stream = container.add_stream(codec, rate=rate)
            stream.width = width
            stream.height = height
            stream.pix_fmt = self._pix_fmt
            if timed:
                stream.codec_context.time_base = _TIME_BASE
            if codec == "libx264":
                stream.options = {"crf": str(self.crf), "preset": self.preset}
                if timed:  # B-frames make x264 invent decoding times that cut MP4s short
                    stream.options = {**stream.options, "bf": "0"}
            elif codec == _ODD_SIZE_CODEC:
                stream.options = dict(_VP9_OPTIONS)
            else:
                # No CRF outside x264: ~0.2 bits per pixel is visually fine for overlays.
                stream.bit_rate = max(1_000_000, int(width * height * self.fps * 0.2))
            stream.codec_context.open()
        except (av.error.FFmpegError, ValueError) as err:
            self._abort(type(err), err, err.__traceback__)
            raise DevaError(f"{self.path}: cannot start the {codec} encoder: {err}") from err
        self._stream = stream

    def _encoding(self, height: int, width: int) -> tuple[str, str]:
        """(codec, pixel format) that store this size exactly."""
        if self.codec != "libx264" or not (height % 2 or width % 2):
            return self.codec, "yuv420p"
        if self.format in _ODD_SIZE_FORMATS and codec_available(_ODD_SIZE_CODEC):
            return _ODD_SIZE_CODEC, "yuv420p"
        return "libx264", "yuv444p"

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


def _yuv_frame(image: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """An RGB image as a ``pix_fmt`` (yuv420p or yuv444p) frame, BT.601 limited range.

    Converted here, not by FFmpeg: swscale's RGB->YUV result depends on buffer alignment, so
    the same frames could encode to different files (resumed runs must be identical).
    """
    height, width = image.shape[:2]
    if pix_fmt == "yuv444p":
        planes = _yuv444(image)
    else:  # OpenCV's I420 needs even sides: replicate the last row/column, then drop it
        even = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        yuv = cv2.cvtColor(np.ascontiguousarray(even), cv2.COLOR_RGB2YUV_I420)
        rows, cols = even.shape[:2]
        chroma = yuv[rows:].reshape(2, rows // 2, cols // 2)
        planes = (yuv[:height, :width], chroma[0], chroma[1])
    frame = av.VideoFrame(width, height, pix_fmt)
    for plane, values in zip(frame.planes, planes, strict=True):
        padded = np.zeros((plane.height, plane.line_size), np.uint8)
        padded[:, : values.shape[1]] = values
        plane.update(padded)
    return frame


def _yuv444(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-resolution Y, U, V planes with the integer BT.601 limited-range formulas."""
    r, g, b = (image[..., c].astype(np.int32) for c in range(3))
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128
    return tuple(np.clip(p, 0, 255).astype(np.uint8) for p in (y, u, v))  # type: ignore[return-value]
