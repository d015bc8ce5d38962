"""Referring video segmentation with associated consensus (spec §3.8, §4.2): Ref-DAVIS17 and
Ref-YouTube-VOS from per-frame soft masks of a referring image model (e.g. ReferFormer).

Input:  ``IMAGES/<video>/<frame>.jpg``; soft masks ``MASKS/<video>/<object>/<frame>.png``
        (0..255 = probability) and optional ``MASKS/<video>/scores.csv`` with lines
        ``frame,object,score``. Objects (expressions) are the sorted sub-folders, ids 1..N.
Output: Ref-DAVIS17: ``OUT/<video>/<frame>.png``, palette PNGs with ids 1..N, all objects of a
        video voted and propagated together (frame score = mean over its objects).
        Ref-YouTube-VOS: ``OUT/Annotations/<video>/<expression>/<frame>.png`` (0/255), each
        expression on its own with its own scores, and (by default) the same files in
        ``OUT/submission.zip`` for the evaluation server; optionally only the videos of a list.

Per run (``track_associated``): sample n frames evenly, weight them softmax(2·score) (uniform
without scores), pick the keyframe (most confident; without scores the frame with most
confident pixels), average all sampled masks aligned onto it, then propagate that soft mask
backward to the first frame and forward to the last, starting each pass from a reset
propagator. No other frame's masks are used.
"""

from __future__ import annotations

import csv
import logging
import math
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from deva.errors import DevaError
from deva.fusion.associated import (
    choose_keyframe,
    combine,
    consensus_weights,
    probabilities,
    sample_indices,
)
from deva.io.atomic import atomic_path, ensure_writable_dir, write_errors
from deva.io.frames import read_image, resize_short_side
from deva.propagation.base import Propagator
from deva.tasks.dataset import Progress, Video, open_video, video_folders
from deva.tasks.outputs import write_binary, write_palette_ids

__all__ = [
    "REF_DAVIS_FRAMES",
    "REF_YOUTUBE_FRAMES",
    "read_scores",
    "read_soft_mask",
    "read_video_list",
    "run_ref_davis",
    "run_ref_youtube",
    "track_associated",
]

log = logging.getLogger(__name__)

REF_DAVIS_FRAMES = 5
"""Voting frames for Ref-DAVIS17 (the released code; the paper says 10)."""
REF_YOUTUBE_FRAMES = 10
SCORES = "scores.csv"
SUBMISSION = "submission.zip"
"""Ref-YouTube-VOS archive: ``Annotations/<video>/<expression>/<frame>.png`` inside."""


def track_associated(
    video: Video,
    read_masks: Callable[[int], np.ndarray],
    propagator: Propagator,
    *,
    num_samples: int,
    score: Callable[[int], float] | None = None,
    size: int = 480,
) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, (1 + K, H, W) probabilities at native resolution) for every frame.

    read_masks: frame index -> (K, h, w) float soft masks in [0, 1] (any size; resized).
    score: frame index -> confidence; None = no scores (saliency rules).
    size: short side of the working resolution (-1 = native; never upscales).
    """
    frames = video.frames
    count = frames.num_frames or 0
    sampled = sample_indices(count, num_samples)
    load = _loader(frames.files, size)
    images = {index: load(index) for index in sampled}
    shape = images[sampled[0]].shape[:2]
    masks = [_fit(read_masks(index), shape) for index in sampled]
    scores = [score(index) for index in sampled] if score is not None else None
    key = choose_keyframe(masks, scores)
    key_index, key_image = sampled[key], images[sampled[key]]
    log.debug("%s: sampled %s, keyframe %d", video.name, sampled, key_index)

    propagator.reset()
    projected = [
        masks[position]
        if position == key
        else propagator.align(images[index], masks[position], key_image)[1:]
        for position, index in enumerate(sampled)
    ]
    consensus = combine(projected, consensus_weights(scores, len(sampled)))
    native = tuple(read_image(frames.files[0]).shape[:2])
    yield key_index, _upsample(probabilities(consensus), native)
    object_ids = list(range(1, len(consensus) + 1))
    for order in (range(key_index - 1, -1, -1), range(key_index + 1, count)):
        propagator.reset()
        propagator.memorize(key_image, consensus, object_ids)
        for index in order:
            yield index, _upsample(propagator.propagate(load(index)), native)


@dataclass(frozen=True)
class SoftMaskVideo:
    """One video of the Ref layout: its object folders and scores."""

    folder: Path
    objects: tuple[str, ...]
    scores: dict[tuple[str, str], float] | None

    @classmethod
    def open(cls, masks_root: Path, name: str) -> SoftMaskVideo:
        folder = masks_root / name
        objects = tuple(p.name for p in sorted(folder.iterdir()) if p.is_dir())
        if not objects:
            raise DevaError(f"{folder}: no object folders (expected <object>/<frame>.png)")
        scores_file = folder / SCORES
        scores = read_scores(scores_file) if scores_file.is_file() else None
        if scores is None:
            log.info("%s: no %s; uniform weights and the saliency keyframe rule", folder, SCORES)
        return cls(folder, objects, scores)

    def masks(self, frame: str, objects: Sequence[str]) -> np.ndarray:
        """(K, h, w) float32 soft masks of ``objects`` at ``frame`` (all of one size)."""
        paths = [self.folder / o / f"{frame}.png" for o in objects]
        masks = [read_soft_mask(path) for path in paths]
        for path, mask in zip(paths[1:], masks[1:], strict=True):
            if mask.shape != masks[0].shape:
                raise DevaError(
                    f"{path}: soft mask is {mask.shape[1]}x{mask.shape[0]} but {paths[0]} is "
                    f"{masks[0].shape[1]}x{masks[0].shape[0]}; the masks of one frame must "
                    "have one size"
                )
        return np.stack(masks)

    def score(self, frame: str, objects: Sequence[str]) -> float:
        """Mean score of ``objects`` at ``frame`` over those listed in scores.csv."""
        assert self.scores is not None
        given = [self.scores[(frame, o)] for o in objects if (frame, o) in self.scores]
        if not given:
            raise DevaError(
                f"{self.folder / SCORES}: no score for frame {frame!r} "
                f"(objects {', '.join(objects)})"
            )
        return float(np.mean(given))


def run_ref_davis(
    images: str | Path,
    masks: str | Path,
    output: str | Path,
    *,
    propagator: Propagator,
    num_samples: int = REF_DAVIS_FRAMES,
    size: int = 480,
    progress: Progress | None = None,
) -> int:
    """Ref-DAVIS17: all objects of a video together; palette PNGs. Returns frames written."""
    images, masks_root, output = Path(images), Path(masks), ensure_writable_dir(output)
    jobs = [(open_video(images, n), SoftMaskVideo.open(masks_root, n)) for n in _videos(masks_root)]
    total, done = sum(v.frames.num_frames or 0 for v, _ in jobs), 0
    for video, soft in jobs:
        folder = ensure_writable_dir(output / video.name)
        name = video.frames.name
        tracked = _track_soft(video, soft, soft.objects, propagator, num_samples, size)
        for index, probs in tracked:
            write_palette_ids(folder / f"{name(index)}.png", np.argmax(probs, axis=0))
            done += 1
            if progress is not None:
                progress(video.name, done, total)
    return done


def run_ref_youtube(
    images: str | Path,
    masks: str | Path,
    output: str | Path,
    *,
    propagator: Propagator,
    num_samples: int = REF_YOUTUBE_FRAMES,
    size: int = 480,
    progress: Progress | None = None,
    videos: Sequence[str] | None = None,
    zip_output: bool = True,
) -> int:
    """Ref-YouTube-VOS: each expression on its own; ``Annotations/<video>/<expr>/*.png``
    0/255. Returns the number of masks written.

    videos: only these videos (e.g. the 202-video validation subset; see ``read_video_list``),
        each must have soft masks; None = every video under ``masks``.
    zip_output: also write ``OUT/submission.zip`` holding this run's masks (atomically, so a
        zip under that name is always complete).
    """
    images, masks_root, output = Path(images), Path(masks), ensure_writable_dir(output)
    names = _videos(masks_root) if videos is None else _listed(masks_root, videos)
    jobs = [(open_video(images, n), SoftMaskVideo.open(masks_root, n)) for n in names]
    total = sum((v.frames.num_frames or 0) * len(s.objects) for v, s in jobs)
    done = 0
    written: list[Path] = []
    for video, soft in jobs:
        name = video.frames.name
        for expression in soft.objects:
            folder = ensure_writable_dir(output / "Annotations" / video.name / expression)
            tracked = _track_soft(video, soft, (expression,), propagator, num_samples, size)
            for index, probs in tracked:
                path = folder / f"{name(index)}.png"
                write_binary(path, np.argmax(probs, axis=0) == 1)
                written.append(path)
                done += 1
                if progress is not None:
                    progress(f"{video.name}/{expression}", done, total)
    if zip_output:
        write_zip(output / SUBMISSION, output, sorted(written))
    return done


def _track_soft(
    video: Video,
    soft: SoftMaskVideo,
    objects: Sequence[str],
    propagator: Propagator,
    num_samples: int,
    size: int,
) -> Iterator[tuple[int, np.ndarray]]:
    """``track_associated`` over these objects' soft masks, scored when the video has scores."""
    name = video.frames.name
    return track_associated(
        video,
        lambda i: soft.masks(name(i), objects),
        propagator,
        num_samples=num_samples,
        score=None if soft.scores is None else lambda i: soft.score(name(i), objects),
        size=size,
    )


def write_zip(archive: Path, root: Path, files: Sequence[Path]) -> None:
    """``files`` stored (PNGs are compressed already) under their paths relative to ``root``;
    written to a temporary name and renamed."""
    with (
        write_errors(archive),
        atomic_path(archive) as temp,
        zipfile.ZipFile(temp, "w", zipfile.ZIP_STORED) as bundle,
    ):
        for path in files:
            bundle.write(path, path.relative_to(root).as_posix())


def read_video_list(path: str | Path) -> list[str]:
    """Video ids from a text file, one per line (blank lines and ``#`` comments skipped)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DevaError(f"{path}: cannot read the video list ({err})") from err
    names = [line.split("#", 1)[0].strip() for line in lines]
    names = [n for n in names if n]
    if not names:
        raise DevaError(f"{path}: the video list is empty (expected one video id per line)")
    return list(dict.fromkeys(names))


def _listed(masks_root: Path, videos: Sequence[str]) -> list[str]:
    """The listed videos, each checked to have a soft-mask folder."""
    available = set(_videos(masks_root))
    missing = [v for v in videos if v not in available]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        shown = ", ".join(missing[:5]) + more
        raise DevaError(f"{masks_root}: no soft masks for listed video(s) {shown}")
    return list(videos)


def read_scores(path: str | Path) -> dict[tuple[str, str], float]:
    """(frame stem, object) -> score from a ``frame,object,score`` CSV (an optional header line
    ``frame,object,score`` is skipped; the frame may carry its extension, ``00000.png``)."""
    path = Path(path)
    scores: dict[tuple[str, str], float] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DevaError(f"{path}: cannot read ({err})") from err
    for number, row in enumerate(csv.reader(lines), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        cells = [cell.strip() for cell in row]
        if number == 1 and [c.lower() for c in cells] == ["frame", "object", "score"]:
            continue
        if len(cells) != 3 or not cells[0] or not cells[1]:
            raise DevaError(
                f"{path}: line {number}: expected 'frame,object,score', got {lines[number - 1]!r}"
            )
        try:
            value = float(cells[2])
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise DevaError(f"{path}: line {number}: score {cells[2]!r} is not a finite number")
        scores[(Path(cells[0]).stem, cells[1])] = value
    return scores


def read_soft_mask(path: str | Path) -> np.ndarray:
    """(H, W) float32 probability in [0, 1] from an 8-bit (/255) or 16-bit (/65535) gray PNG."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode == "1":
                return np.asarray(image, dtype=np.float32)
            if mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(image, dtype=np.float32) / 65535.0
            if mode in ("L", "LA", "RGB", "RGBA"):
                return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    except FileNotFoundError as err:
        raise DevaError(f"{path}: soft mask missing") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DevaError(f"{path}: not a readable PNG ({err})") from err
    raise DevaError(f"{path}: unsupported PNG mode {mode!r} for a soft mask (use 8-bit gray)")


def _videos(masks_root: Path) -> list[str]:
    return video_folders(masks_root, depth=1)


def _loader(files: Sequence[Path], size: int) -> Callable[[int], np.ndarray]:
    """Frame index -> RGB image at the working resolution (short side ``size``, no upscaling)."""
    first = read_image(files[0]).shape[:2]
    working = -1 if size == -1 or min(first) <= size else size

    def load(index: int) -> np.ndarray:
        image = read_image(files[index])
        if image.shape[:2] != first:
            raise DevaError(f"{files[index]}: frame size differs from {files[0]}")
        return resize_short_side(image, working)

    return load


def _fit(masks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(K, h, w) soft masks resized (bilinear) to ``shape``."""
    if masks.shape[1:] == shape:
        return masks.astype(np.float32)
    size = (shape[1], shape[0])
    return np.stack([cv2.resize(m, size, interpolation=cv2.INTER_LINEAR) for m in masks])


def _upsample(probs: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(C, h, w) probabilities bilinearly resized to ``shape`` (before any argmax)."""
    if probs.shape[1:] == tuple(shape):
        return probs
    size = (shape[1], shape[0])
    return np.stack([cv2.resize(p, size, interpolation=cv2.INTER_LINEAR) for p in probs])
