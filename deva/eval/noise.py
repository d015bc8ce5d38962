"""Noisy "image-level" detections made from ground truth, for detection-driven tracking benchmarks.

A real image segmenter misses objects, cuts them in pieces, hallucinates blobs, gets boundaries
a few pixels wrong and numbers its segments arbitrarily in every frame. ``NoiseModel`` applies
those errors to ground-truth id maps with known rates, so a tracker's ability to recover
consistent objects can be measured without running (or downloading) any image model.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from deva.errors import DevaError
from deva.io.atomic import atomic_path, ensure_writable_dir
from deva.io.masks import read_id_png, write_id_png
from deva.types import Segmentation, SegmentInfo

__all__ = ["DEFAULT_NOISE", "NoiseModel", "make_noisy_detection", "write_noisy_detections"]

# Confidence of a segment ~ Beta(a, b): true segments average 0.75, false positives 0.33, with
# enough overlap that a score threshold alone cannot separate them.
TRUE_SCORE_BETA = (6.0, 2.0)
FALSE_POSITIVE_SCORE_BETA = (2.0, 4.0)
# Placement attempts for a false-positive blob before it is dropped (it must land on background).
_MAX_BLOB_TRIES = 5
# Spacing in pixels of the random control grid that makes boundaries jagged.
_JAG_CELL = 4


@dataclass(frozen=True)
class NoiseModel:
    """Error rates of a simulated image segmenter; every error is drawn independently.

    miss_prob: probability that a ground-truth object is absent from a frame's detection.
    split_prob: probability that a detected object is cut in two segments along a random line
        through its centroid (over-segmentation).
    false_positive_rate: expected number (Poisson mean) of false-positive blobs per frame. Blobs
        are random ellipses or star polygons with an area drawn log-uniformly from
        ``false_positive_area`` (fractions of the image), placed at random on background only and
        drawn anew in every frame, i.e. transient.
    false_positive_area: (min, max) blob area as a fraction of the image area.
    boundary_noise: in pixels; each object is eroded or dilated by a uniform offset in
        [-boundary_noise, boundary_noise] and its edge moved by up to as much again by smooth
        random noise (jagged edges). 0 keeps boundaries exact.

    Segment ids are always a random permutation of 1..n in every frame: the association between
    frames is unknown, as with a real per-frame segmenter.

    The defaults are a decent but clearly imperfect segmenter: on the six DAVIS-16 dev clips
    they leave the IoU tracking-by-detection baseline (``deva.eval.baseline``) at a mean J of
    about 0.3 (0.25 to 0.40 over seeds 0 to 4), against 0.85 with no noise at all.
    """

    miss_prob: float = 0.07
    split_prob: float = 0.05
    false_positive_rate: float = 1.0
    false_positive_area: tuple[float, float] = (0.002, 0.03)
    boundary_noise: float = 2.0

    def __post_init__(self) -> None:
        for name in ("miss_prob", "split_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise DevaError(f"NoiseModel.{name} must be in [0, 1], got {value}")
        if not self.false_positive_rate >= 0.0:
            raise DevaError(
                f"NoiseModel.false_positive_rate must be >= 0, got {self.false_positive_rate}"
            )
        if not self.boundary_noise >= 0.0:
            raise DevaError(f"NoiseModel.boundary_noise must be >= 0, got {self.boundary_noise}")
        low, high = self.false_positive_area
        if not 0.0 < low <= high <= 1.0:
            raise DevaError(
                "NoiseModel.false_positive_area must be (min, max) with 0 < min <= max <= 1, "
                f"got {self.false_positive_area}"
            )

    @classmethod
    def clean(cls) -> NoiseModel:
        """No errors at all: only the per-frame id shuffle remains."""
        return cls(miss_prob=0.0, split_prob=0.0, false_positive_rate=0.0, boundary_noise=0.0)


DEFAULT_NOISE = NoiseModel()


def make_noisy_detection(
    gt_ids: np.ndarray, rng: np.random.Generator, model: NoiseModel = DEFAULT_NOISE
) -> Segmentation:
    """One frame's simulated detection of the objects in ``gt_ids`` ((H, W) int, 0 = background).

    Segment ids are shuffled, each segment has a confidence ``score`` (true segments score higher
    on average than false positives) and no category. Deterministic for a given ``rng`` state.
    """
    if gt_ids.ndim != 2 or not np.issubdtype(gt_ids.dtype, np.integer):
        raise DevaError(f"gt_ids must be a 2-D integer array, got {gt_ids.dtype} {gt_ids.shape}")
    parts: list[tuple[np.ndarray, bool]] = []  # (mask, is a true segment), painted in this order
    for object_id in _object_ids(gt_ids):
        if rng.random() < model.miss_prob:
            continue
        mask = gt_ids == object_id
        if model.boundary_noise > 0:
            mask = _perturb_boundary(mask, rng, model.boundary_noise)
        if rng.random() < model.split_prob:
            parts.extend((piece, True) for piece in _split(mask, rng))
        elif mask.any():
            parts.append((mask, True))
    index_map = np.zeros(gt_ids.shape, dtype=np.int32)  # 1-based position in ``parts``
    for position, (mask, _) in enumerate(parts, start=1):
        index_map[mask & (index_map == 0)] = position
    for _ in range(rng.poisson(model.false_positive_rate)):
        free = (gt_ids == 0) & (index_map == 0)
        blob = _false_positive_blob(free, rng, model.false_positive_area)
        if blob is not None:
            parts.append((blob, False))
            index_map[blob] = len(parts)
    return _shuffle_ids(index_map, [is_true for _, is_true in parts], rng)


def write_noisy_detections(
    gt_dir: str | Path, out_dir: str | Path, model: NoiseModel = DEFAULT_NOISE, seed: int = 0
) -> int:
    """Write a noisy detection for every ``*.png`` ground-truth id map in ``gt_dir``.

    Uses the official DEVA precomputed layout: ``out_dir/<name>.png`` (id map; palette PNG while
    ids fit in 255) and ``out_dir/<name>.json`` (list of ``{"id", "score"}``). Each frame's noise
    comes from (seed, folder name, frame position), so the output is reproducible, frames are
    independent and sequences written with one seed do not share their noise. Returns the
    number of frames written.
    """
    if seed < 0:
        raise DevaError(f"seed must be >= 0, got {seed}")
    gt_dir, out_dir = Path(gt_dir), Path(out_dir)
    gt_paths = sorted(gt_dir.glob("*.png"))
    if not gt_paths:
        raise DevaError(f"{gt_dir}: no ground-truth *.png files found")
    ensure_writable_dir(out_dir)
    sequence_key = zlib.crc32(gt_dir.resolve().name.encode())
    for position, gt_path in enumerate(gt_paths):
        rng = np.random.default_rng([seed, sequence_key, position])
        detection = make_noisy_detection(read_id_png(gt_path), rng, model)
        write_id_png(out_dir / gt_path.name, detection.ids)
        listing = [{"id": s.id, "score": s.score} for s in detection.segments]
        with atomic_path(out_dir / f"{gt_path.stem}.json") as temp:
            temp.write_text(json.dumps(listing))
    return len(gt_paths)


def _object_ids(gt_ids: np.ndarray) -> list[int]:
    """Sorted non-zero ids of ``gt_ids`` (counted rather than sorted when they are small)."""
    if gt_ids.size and int(gt_ids.min()) >= 0 and int(gt_ids.max()) < 1 << 16:
        return [int(i) for i in np.flatnonzero(np.bincount(gt_ids.ravel())) if i != 0]
    return [int(i) for i in np.unique(gt_ids) if i != 0]


def _perturb_boundary(mask: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Erode/dilate ``mask`` by a random offset and make its edge jagged, via a signed distance."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return mask
    height, width = mask.shape
    margin = int(math.ceil(2 * amount)) + 2
    y0, y1 = max(int(ys.min()) - margin, 0), min(int(ys.max()) + margin + 1, height)
    x0, x1 = max(int(xs.min()) - margin, 0), min(int(xs.max()) + margin + 1, width)
    crop = mask[y0:y1, x0:x1].astype(np.uint8)
    inside = cv2.distanceTransform(crop, cv2.DIST_L2, 3)
    outside = cv2.distanceTransform(1 - crop, cv2.DIST_L2, 3)
    signed = inside - outside - 0.5  # +0.5 on the inner edge, -0.5 on the outer edge
    grid_h, grid_w = crop.shape[0] // _JAG_CELL + 2, crop.shape[1] // _JAG_CELL + 2
    grid = rng.uniform(-1.0, 1.0, size=(grid_h, grid_w)).astype(np.float32)
    jag = cv2.resize(grid, (grid_w * _JAG_CELL, grid_h * _JAG_CELL), interpolation=cv2.INTER_LINEAR)
    offset = rng.uniform(-amount, amount)
    noisy = signed + offset + amount * jag[: crop.shape[0], : crop.shape[1]] > 0
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = noisy
    return out


def _split(mask: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """The non-empty sides of ``mask`` cut by a line at a random angle through its centroid."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return []
    angle = rng.uniform(0.0, math.pi)
    side = (xs - xs.mean()) * math.cos(angle) + (ys - ys.mean()) * math.sin(angle) >= 0
    pieces = []
    for keep in (side, ~side):
        if keep.any():
            piece = np.zeros_like(mask)
            piece[ys[keep], xs[keep]] = True
            pieces.append(piece)
    return pieces


def _false_positive_blob(
    free: np.ndarray, rng: np.random.Generator, area_range: tuple[float, float]
) -> np.ndarray | None:
    """A random ellipse or star polygon clipped to ``free`` pixels, or None if it found none."""
    height, width = free.shape
    for _ in range(_MAX_BLOB_TRIES):
        area = math.exp(rng.uniform(math.log(area_range[0]), math.log(area_range[1])))
        radius = math.sqrt(area * height * width / math.pi)  # of the circle with that area
        center = (rng.uniform(0, width), rng.uniform(0, height))
        canvas = np.zeros((height, width), dtype=np.uint8)
        if rng.random() < 0.5:
            aspect = rng.uniform(0.4, 1.0)  # minor / major axis, area kept
            axes = (radius / math.sqrt(aspect), radius * math.sqrt(aspect))
            box = (center, (2 * axes[0], 2 * axes[1]), rng.uniform(0, 180))
            cv2.ellipse(canvas, box, 1, thickness=-1)
        else:
            num_vertices = int(rng.integers(5, 10))
            angles = np.sort(rng.uniform(0, 2 * math.pi, num_vertices))
            radii = radius * rng.uniform(0.6, 1.4, num_vertices)
            points = np.stack(
                [center[0] + radii * np.cos(angles), center[1] + radii * np.sin(angles)], axis=1
            )
            cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], 1)
        blob = canvas.astype(bool) & free
        if blob.any():
            return blob
    return None


def _shuffle_ids(
    index_map: np.ndarray, is_true: list[bool], rng: np.random.Generator
) -> Segmentation:
    """Renumber painted positions 1..n with a random permutation and attach scores."""
    present = np.bincount(index_map.ravel(), minlength=len(is_true) + 1) > 0
    positions = [p for p in range(1, len(is_true) + 1) if present[p]]
    new_ids = rng.permutation(len(positions)) + 1
    lookup = np.zeros(len(is_true) + 1, dtype=np.int32)
    segments = []
    for position, new_id in zip(positions, new_ids, strict=True):
        lookup[position] = new_id
        beta = TRUE_SCORE_BETA if is_true[position - 1] else FALSE_POSITIVE_SCORE_BETA
        score = round(float(rng.beta(*beta)), 4)
        segments.append(SegmentInfo(id=int(new_id), score=score))
    segments.sort(key=lambda s: s.id)
    return Segmentation(ids=lookup[index_map], segments=tuple(segments))
