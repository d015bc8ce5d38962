"""Live input: a camera (``0``) or a network stream (``rtsp://``, ``http://`` ...) as frames.

A live source is read once, as it arrives, and has no known end: it ends when the stream does
or at the first Ctrl-C, after which the run finishes its outputs as for a file (a second Ctrl-C
aborts). Opening problems are one DevaError naming the input; a stream that breaks off later
ends the input with a warning, since that is how live streams end.
"""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import threading
from abc import abstractmethod
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

import av
import cv2
import numpy as np

from deva.errors import DevaError
from deva.io.frames import DEFAULT_FPS, FrameSource, upright
from deva.types import Frame

log = logging.getLogger(__name__)

STREAM_SCHEMES = frozenset(
    {"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp", "mms"}
)
OPEN_TIMEOUT_S = 15.0
READ_TIMEOUT_S = 15.0
"""A stream sending nothing for this long has ended (FFmpeg would otherwise wait forever)."""
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_live(source: str) -> bool:
    """A stream URL, or a camera index (digits only) when no file or folder has that name."""
    text = source.strip()
    scheme = _URL.match(text)
    if scheme:
        return scheme.group(1).lower() in STREAM_SCHEMES
    return text.isdigit() and not Path(text).exists()


def open_live(source: str) -> LiveSource:
    """The camera or stream ``source`` names (see ``is_live``), opened and checked now."""
    text = source.strip()
    if text.isdigit():
        return CameraSource(int(text))
    return StreamSource(text)


def redact(url: str) -> str:
    """``url`` without its password (RTSP cameras often carry one), for messages and records."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class LiveSource(FrameSource):
    """Frames of a camera or stream, read once; Ctrl-C (in the main thread) ends the input
    after the frame being read, so the run can finish its outputs."""

    num_frames: int | None = None

    def __init__(self) -> None:
        self._read = False
        self._size: tuple[int, int] | None = None

    def __iter__(self) -> Iterator[Frame]:
        if self._read:
            raise DevaError(f"{self.description}: a live input can be read only once")
        self._read = True
        images = self._images()
        with _StopOnCtrlC(self.description) as stop:
            try:
                for index, image in enumerate(images):
                    yield Frame(index=index, name=self.name(index), image=self._fit(image))
                    if stop.requested:
                        break
            finally:
                images.close()
                self.close()

    @abstractmethod
    def _images(self) -> Iterator[np.ndarray]:
        """The frames as (H, W, 3) uint8 RGB, the one read at opening first."""

    def close(self) -> None:
        """Release the camera or connection (also done when the input ends)."""

    def _fit(self, image: np.ndarray) -> np.ndarray:
        """Every frame at the first frame's size (a stream may switch resolution mid-way)."""
        if self._size is None:
            self._size = image.shape[:2]
        elif image.shape[:2] != self._size:
            image = cv2.resize(image, (self._size[1], self._size[0]), interpolation=cv2.INTER_AREA)
        return image


class StreamSource(LiveSource):
    """A network stream (or any URL FFmpeg reads) decoded by PyAV as it arrives."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.description = redact(url)
        try:
            self._container = av.open(url, mode="r", timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S))
        except (av.error.FFmpegError, OSError, ValueError) as err:
            raise DevaError(f"{self.description}: cannot open the stream: {_reason(err)}") from err
        if not self._container.streams.video:
            self._container.close()
            raise DevaError(f"{self.description}: the stream has no video")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate and 0 < rate < 1000 else DEFAULT_FPS
        self.num_frames = int(stream.frames) if stream.frames and stream.frames > 0 else None
        self._decoded = self._decode(stream)
        first = next(self._decoded, None)
        if first is None:
            self.close()
            raise DevaError(f"{self.description}: the stream sent no decodable frame")
        self._first: np.ndarray | None = first

    def _decode(self, stream: av.VideoStream) -> Iterator[np.ndarray]:
        index = 0
        try:
            for packet in self._container.demux(stream):
                for frame in packet.decode():
                    yield upright(frame)  # a phone's stream may carry its rotation
                    index += 1
        except (av.error.FFmpegError, OSError, ValueError) as err:
            reason = (
                f"nothing received for {READ_TIMEOUT_S:g} s"
                if isinstance(err, av.error.ExitError)  # what FFmpeg's read timeout raises
                else _reason(err)
            )
            if not index:
                raise DevaError(f"{self.description}: cannot read the stream: {reason}") from err
            log.warning("%s: the stream ended after %d frames: %s", self.description, index, reason)

    def _images(self) -> Iterator[np.ndarray]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        yield from self._decoded

    def close(self) -> None:
        self._decoded.close()
        self._container.close()


class CameraSource(LiveSource):
    """A camera by index, through OpenCV (V4L2 on Linux, AVFoundation on macOS, Media
    Foundation / DirectShow on Windows)."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index
        self.description = f"camera {index}"
        with _opencv_quiet():
            self._capture = cv2.VideoCapture(index)
            ok, first = self._capture.read() if self._capture.isOpened() else (False, None)
        if not ok or first is None:
            self._capture.release()
            raise DevaError(
                f"camera {index}: cannot open it or read a frame (no camera with that index, or "
                "it is in use); to read a file or folder named "
                f'"{index}", write it as ./{index}'
            )
        rate = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(rate) if rate and 0 < rate < 1000 else DEFAULT_FPS
        self._first: np.ndarray | None = first

    def _images(self) -> Iterator[np.ndarray]:
        count = 0
        while True:
            if self._first is not None:
                image, self._first = self._first, None
            else:
                ok, image = self._capture.read()
                if not ok or image is None:
                    log.warning("%s: the camera stopped after %d frames", self.description, count)
                    return
            count += 1
            yield cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._capture.release()


class _StopOnCtrlC:
    """While active, the first SIGINT asks the live input to end (``requested``) instead of
    raising KeyboardInterrupt; the second raises it as usual. Only the main thread can take
    signals: elsewhere Ctrl-C keeps its usual meaning."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.requested = False
        self._previous: object = None
        self._installed = False

    def __enter__(self) -> _StopOnCtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning(
            "%s: Ctrl-C: ending the live input after this frame and finishing the outputs "
            "(Ctrl-C again aborts)",
            self.description,
        )

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
            self._installed = False


@contextlib.contextmanager
def _opencv_quiet() -> Iterator[None]:
    """OpenCV prints a warning per camera backend it tries; deva's own error says it once."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def _reason(err: BaseException) -> str:
    reason = getattr(err, "strerror", None)
    return str(reason) if reason else str(err)
