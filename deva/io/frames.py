"""Streaming frame sources: a video file, a folder or glob of images, or in-memory arrays.

Frames are decoded one at a time so a long video never has to fit in memory. Whatever the input,
every frame comes out as (H, W, 3) uint8 RGB so the rest of the pipeline handles one format only.
"""

from __future__ import annotations

import glob as globlib
import os
import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deva.errors import DevaError
from deva.io.paths import why_missing
from deva.types import Frame

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
DEFAULT_FPS = 24.0
_EXIF_ORIENTATION = 0x0112
_GLOB_CHARS = re.compile(r"[*?\[]")
_DIGITS = re.compile(r"([0-9]+)")


def natural_sort_key(text: str) -> tuple[object, ...]:
    """Sort key that orders embedded numbers by value, so ``frame2`` comes before ``frame10``.

    Splitting on digit runs puts text at even and numbers at odd positions, so two keys only ever
    compare str with str and int with int. Ties (``01`` vs ``1``) fall back to the raw text.
    """
    parts = _DIGITS.split(text)
    key = tuple(int(part) if i % 2 else part.lower() for i, part in enumerate(parts))
    return (key, text)


class FrameSource(ABC):
    """An iterable of ``Frame`` (indices from 0) plus what is known about the sequence up front.

    num_frames: the frame count, or None when it cannot be known before reading (a generator,
    a container that does not store it). fps: the video's average rate, ``DEFAULT_FPS`` otherwise.
    """

    num_frames: int | None
    fps: float
    description: str

    @abstractmethod
    def __iter__(self) -> Iterator[Frame]: ...

    def name(self, index: int) -> str:
        """The name frame ``index`` will have (used to name per-frame outputs)."""
        if index < 0:
            raise IndexError(f"frame index {index} out of range for {self.description}")
        return f"{index:05d}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


def open_frames(
    source: str | Path | Sequence[np.ndarray] | Iterable[np.ndarray] | np.ndarray,
) -> FrameSource:
    """Open ``source`` as a frame source, checking it up front so problems surface before work.

    A path is, in order: an existing folder (its images, natural order), an existing image file
    (one frame), any other existing file (a video, decoded by PyAV), or, if it does not exist and
    contains ``*``, ``?`` or ``[``, a glob pattern over images. Anything else is treated as
    in-memory frames: a sequence or (N, H, W, C) array, or a one-shot iterable such as a generator.
    A camera index ("0") or a stream URL ("rtsp://...", "http://...") comes first: a live input
    (``deva.io.stream``).
    """
    if isinstance(source, str):
        from deva.io import stream  # imports this module: not at the top

        if stream.is_live(source):
            return stream.open_live(source)
    if isinstance(source, str | Path):
        path = Path(source).expanduser()
        if path.is_dir():
            return ImageFilesSource.from_folder(path)
        if path.is_file():
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                return ImageFilesSource([path], description=str(path))
            return VideoSource(path)
        if path.exists():
            raise DevaError(f"{path}: not a regular file or folder")
        if _GLOB_CHARS.search(str(source)):
            return ImageFilesSource.from_glob(str(path))
        raise DevaError(f"{path}: {why_missing(path)}")
    if isinstance(source, np.ndarray):
        if source.ndim != 4:  # (H, W, 3) vs (N, H, W) would be a guess: refuse rather than guess
            raise DevaError(
                f"in-memory frames: expected an (N, H, W, C) array, got shape {source.shape}; "
                "pass a single image or grayscale frames as a list of arrays"
            )
        return ArraySource(source)
    if isinstance(source, Sequence):
        return ArraySource(source)
    if isinstance(source, Iterable):
        return IterableSource(source)
    raise DevaError(
        f"cannot read frames from a {type(source).__name__}: give a video file, a folder, "
        "a glob pattern or a list of (H, W, 3) uint8 arrays"
    )


# ---------------------------------------------------------------------------------------------
# Pixel conversion


def to_rgb8(image: np.ndarray, where: str) -> np.ndarray:
    """Convert an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8/uint16 array to (H, W, 3) uint8.

    16-bit values are scaled (65535 -> 255), not truncated, so a 16-bit frame looks the same.
    ``where`` names the frame in the error message.
    """
    if not isinstance(image, np.ndarray):
        raise DevaError(f"{where}: expected a numpy array, got {type(image).__name__}")
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise DevaError(f"{where}: expected uint8 (or uint16) pixels, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_GRAY2RGB)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise DevaError(
            f"{where}: expected an (H, W, 3) RGB image, got an array of shape {image.shape}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise DevaError(f"{where}: empty image of shape {image.shape}")
    if image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


def _pil_to_rgb8(image: Image.Image, where: str) -> np.ndarray:
    """Pixels of a PIL image as (H, W, 3) uint8 RGB, whatever its mode."""
    mode = image.mode
    if mode in ("RGB", "L"):
        return to_rgb8(np.asarray(image), where)
    if mode in ("RGBA", "LA"):
        return to_rgb8(np.asarray(image.convert(mode[:-1])), where)
    if mode.startswith("I;16"):
        return to_rgb8(np.asarray(image).astype(np.uint16), where)
    if mode == "I":  # 16-bit data PIL widened to int32
        return to_rgb8(np.clip(np.asarray(image), 0, 65535).astype(np.uint16), where)
    if mode == "F":  # float TIFFs: [0, 1] or [0, 255]
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        scale = 255.0 if values.size and float(values.max()) <= 1.0 else 1.0
        return to_rgb8(np.clip(values * scale, 0, 255).round().astype(np.uint8), where)
    if mode in ("P", "PA"):  # palette (possibly with transparency): colours, alpha dropped
        return to_rgb8(np.asarray(image.convert("RGBA"))[:, :, :3], where)
    return to_rgb8(np.asarray(image.convert("RGB")), where)


def read_image(path: str | Path) -> np.ndarray:
    """Decode one image file to (H, W, 3) uint8 RGB, turned as its EXIF Orientation says (the
    way viewers show a phone photo); a DevaError naming the file if it cannot."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()  # decode now so a truncated file fails here, not later
            if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:
                return _pil_to_rgb8(ImageOps.exif_transpose(image), str(path))
            return _pil_to_rgb8(image, str(path))
    except FileNotFoundError as err:
        raise DevaError(f"{path}: file not found") from err
    except UnidentifiedImageError as err:
        raise DevaError(f"{path}: not an image file (cannot identify its format)") from err
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as err:
        raise DevaError(f"{path}: unreadable or corrupt image ({err})") from err


# ---------------------------------------------------------------------------------------------
# Sources


class ImageFilesSource(FrameSource):
    """Image files read in the given order; each frame is named by its file stem."""

    def __init__(self, files: Sequence[Path], *, description: str) -> None:
        self.files = [Path(f) for f in files]
        self.description = description
        self.num_frames = len(self.files)
        self.fps = DEFAULT_FPS
        seen: dict[str, Path] = {}
        for file in self.files:
            if file.stem in seen:
                raise DevaError(
                    f"{description}: two frames would both be named {file.stem!r} "
                    f"({seen[file.stem]} and {file}); frame names must be unique"
                )
            seen[file.stem] = file
        self._first_shape = read_image(self.files[0]).shape[:2]

    @classmethod
    def from_folder(cls, folder: Path) -> ImageFilesSource:
        """All image files directly in ``folder`` (hidden files skipped), in natural order."""
        try:
            entries = list(os.scandir(folder))
        except OSError as err:
            raise DevaError(f"{folder}: cannot list folder ({err.strerror or err})") from err
        files = [
            Path(e.path)
            for e in entries
            if not e.name.startswith(".")
            and Path(e.name).suffix.lower() in IMAGE_EXTENSIONS
            and e.is_file()
        ]
        if not files:
            raise DevaError(
                f"{folder}: folder contains no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        files.sort(key=lambda p: natural_sort_key(p.name))
        return cls(files, description=str(folder))

    @classmethod
    def from_glob(cls, pattern: str) -> ImageFilesSource:
        """Image files matching ``pattern`` (``**`` recurses), in natural order of their paths."""
        matches = [
            Path(m)
            for m in globlib.glob(pattern, recursive=True)
            if Path(m).suffix.lower() in IMAGE_EXTENSIONS and os.path.isfile(m)
        ]
        if not matches:
            raise DevaError(f"{pattern}: glob pattern matches no image files")
        matches.sort(key=lambda p: natural_sort_key(str(p)))
        return cls(matches, description=pattern)

    def name(self, index: int) -> str:
        return self.files[index].stem

    def __iter__(self) -> Iterator[Frame]:
        for index, file in enumerate(self.files):
            image = read_image(file)
            if image.shape[:2] != self._first_shape:
                raise DevaError(
                    f"{file}: frame size {_size(image.shape)} differs from the first frame's "
                    f"{_size(self._first_shape)} ({self.files[0]}); all frames must match"
                )
            yield Frame(index=index, name=file.stem, image=image)


class VideoSource(FrameSource):
    """A video file decoded frame by frame with PyAV; frames are named ``00000``, ``00001``..."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.description = str(self.path)
        container = self._open()
        try:
            stream = container.streams.video[0]
            self.num_frames = int(stream.frames) if stream.frames and stream.frames > 0 else None
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate and rate > 0 else DEFAULT_FPS
            frames = self._decode(container, stream)
            first = next(frames, None)
            first_image = None if first is None else upright(first)
            frames.close()
        finally:
            container.close()
        if first_image is None:
            raise DevaError(f"{self.path}: video contains no decodable frames")
        self._first_shape = first_image.shape[:2]

    def _open(self) -> av.container.InputContainer:
        try:
            container = av.open(str(self.path), mode="r")
        except (av.error.FFmpegError, OSError, ValueError) as err:
            raise DevaError(
                f"{self.path}: cannot open as a video (not a video format PyAV/FFmpeg can read, "
                f"or the file is damaged): {_av_reason(err)}"
            ) from err
        if not container.streams.video:
            container.close()
            raise DevaError(f"{self.path}: file has no video stream")
        return container

    def _decode(
        self, container: av.container.InputContainer, stream: av.VideoStream
    ) -> Iterator[av.VideoFrame]:
        """Decoded frames in order; a DevaError naming the frame reached if the data is damaged.

        Demuxing and decoding packet by packet (rather than ``container.decode``) surfaces the
        errors of a truncated file: PyAV's convenience loop can end quietly on them.
        """
        stream.thread_type = "AUTO"
        index = packets = 0
        corrupt = False
        last_time: float | None = None
        try:
            for packet in container.demux(stream):
                if packet.size:
                    packets += 1
                    corrupt = corrupt or packet.is_corrupt
                for frame in packet.decode():  # a final empty packet flushes the decoder
                    yield frame
                    index += 1
                    last_time = frame.time
        except (av.error.FFmpegError, OSError, ValueError) as err:
            raise DevaError(
                f"{self.path}: decoding failed at frame {index}{self._of_total()} (file "
                f"truncated or damaged?): {_av_reason(err)}"
            ) from err
        if not index:
            return  # the caller reports a video without frames
        expected = getattr(self, "num_frames", None) or 0
        # A damaged packet plus missing frames is a truncated file (threaded decoding drops
        # such frames quietly). Fewer packets than the index lists, without damage, can be an
        # edit list (a trimmed video), so that only warns.
        if corrupt and (packets < expected or index < packets):
            raise DevaError(
                f"{self.path}: the video ended at frame {index}{self._of_total()} with damaged "
                "data; the file is truncated or corrupt"
            )
        if packets < expected:
            warnings.warn(
                f"{self.path}: the video ended at frame {index} but its index lists "
                f"{expected} frames; it may be truncated",
                stacklevel=3,
            )
        elif not expected and container.duration and last_time is not None:
            # No frame count (Matroska, MPEG-TS): compare with the duration in the header.
            duration = container.duration / 1e6
            end = (container.start_time or 0) / 1e6 + duration
            missing = end - (last_time + 1 / self.fps)
            if missing > max(1.0, 0.05 * duration):
                warnings.warn(
                    f"{self.path}: the video ended at frame {index} ({last_time:.1f} s) but its "
                    f"header says it lasts {duration:.1f} s; it may be truncated",
                    stacklevel=3,
                )

    def _of_total(self) -> str:
        total = getattr(self, "num_frames", None)
        return f" of {total}" if total else ""

    def __iter__(self) -> Iterator[Frame]:
        container = self._open()
        start = None
        try:
            stream = container.streams.video[0]
            for index, decoded in enumerate(self._decode(container, stream)):
                image = upright(decoded)
                if image.shape[:2] != self._first_shape:
                    raise DevaError(
                        f"{self.path}: frame {index} has size {_size(image.shape)}, the first "
                        f"frame {_size(self._first_shape)}; videos that change size are not "
                        "supported"
                    )
                time = decoded.time
                if start is None and time is not None:
                    start = time
                duration = None
                if decoded.duration and decoded.time_base:
                    duration = float(decoded.duration * decoded.time_base)
                yield Frame(
                    index=index,
                    name=f"{index:05d}",
                    image=image,
                    time=None if time is None or start is None else time - start,
                    duration=duration,
                )
        finally:
            container.close()


def upright(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as (H, W, 3) uint8 RGB the way players show it: turned by its display
    matrix (phone videos shot upright are stored sideways with rotation -90 or 90)."""
    image = frame.to_ndarray(format="rgb24")
    turns = round((frame.rotation or 0) / 90) % 4  # counter-clockwise quarter turns
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


class ArraySource(FrameSource):
    """Frames held in memory: a sequence of arrays or one (N, H, W, C) array."""

    def __init__(self, frames: Sequence[np.ndarray] | np.ndarray) -> None:
        self._frames = frames
        self.num_frames = len(frames)
        self.fps = DEFAULT_FPS
        self.description = f"{self.num_frames} in-memory frames"
        if self.num_frames == 0:
            raise DevaError("in-memory frames: the sequence is empty")
        self._first_shape = to_rgb8(frames[0], "in-memory frame 0").shape[:2]

    def __iter__(self) -> Iterator[Frame]:
        return _frames_from_arrays(iter(self._frames), self._first_shape)


class IterableSource(FrameSource):
    """Frames from a one-shot iterable (e.g. a generator); its length is unknown up front."""

    def __init__(self, frames: Iterable[np.ndarray]) -> None:
        self._frames: Iterable[np.ndarray] | None = frames
        self.num_frames = None
        self.fps = DEFAULT_FPS
        self.description = f"in-memory frames from a {type(frames).__name__}"

    def __iter__(self) -> Iterator[Frame]:
        if self._frames is None:
            raise DevaError(f"{self.description} can only be read once; pass a list to re-read")
        frames, self._frames = self._frames, None
        return _frames_from_arrays(iter(frames), None)


def _frames_from_arrays(
    arrays: Iterator[np.ndarray], first_shape: tuple[int, ...] | None
) -> Iterator[Frame]:
    for index, array in enumerate(arrays):
        image = to_rgb8(array, f"in-memory frame {index}")
        if first_shape is None:
            first_shape = image.shape[:2]
        elif image.shape[:2] != first_shape:
            raise DevaError(
                f"in-memory frame {index}: size {_size(image.shape)} differs from the first "
                f"frame's {_size(first_shape)}; all frames must match"
            )
        yield Frame(index=index, name=f"{index:05d}", image=image)


# ---------------------------------------------------------------------------------------------
# Resizing


def short_side_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) with the short side = ``size`` and the aspect ratio kept; ``size`` -1 = unchanged.

    Depends only on the input size, so images and id maps of one frame always agree.
    """
    if size == -1:
        return (height, width)
    if size <= 0:
        raise DevaError(f"resize size must be a positive number of pixels or -1, got {size}")
    if height <= width:
        return (size, max(1, round(width * size / height)))
    return (max(1, round(height * size / width)), size)


def resize_short_side(image: np.ndarray, size: int) -> np.ndarray:
    """Resize so the short side is ``size`` (bilinear; area averaging when shrinking)."""
    height, width = image.shape[:2]
    new_h, new_w = short_side_shape(height, width, size)
    if (new_h, new_w) == (height, width):
        return image
    shrinking = new_h * new_w < height * width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (new_w, new_h), interpolation=interpolation)


def resize_ids(ids: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an id map to ``shape`` = (h, w), keeping its dtype.

    Samples pixel centres (unlike cv2.INTER_NEAREST's half-pixel shift), so up- then
    down-scaling by the same factor gives back the original map; works for any dtype.
    """
    height, width = ids.shape[:2]
    new_h, new_w = int(shape[0]), int(shape[1])
    if (new_h, new_w) == (height, width):
        return ids
    if new_h <= 0 or new_w <= 0:
        raise DevaError(f"cannot resize an id map to {shape}")
    rows = np.minimum(((np.arange(new_h) + 0.5) * (height / new_h)).astype(np.intp), height - 1)
    cols = np.minimum(((np.arange(new_w) + 0.5) * (width / new_w)).astype(np.intp), width - 1)
    return ids[rows[:, None], cols[None, :]]


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]}"


def _av_reason(err: BaseException) -> str:
    """FFmpeg's reason without the errno and file-name clutter PyAV adds."""
    reason = getattr(err, "strerror", None)
    return str(reason) if reason else str(err)
