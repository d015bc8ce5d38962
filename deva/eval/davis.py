"""DAVIS J&F evaluation: region similarity J, boundary measure F, and the three matching protocols.

The metric definitions follow the official davis2017-evaluation package (``davis2017/metrics.py``)
so that numbers are comparable with published ones:

* J is the Jaccard index, 1 when prediction and ground truth are both empty.
* F compares one-pixel boundary maps (the Berkeley ``seg2bmap`` rule) within a tolerance disk of
  radius ``ceil(bound_th * image diagonal)``; F = 2PR / (P + R).

Protocols (``match``): ``identity`` (semi-supervised: gt object k vs predicted id k),
``hungarian`` (DAVIS-2017 unsupervised: predicted ids are assigned to gt objects maximising
(J + F) / 2 over the sequence) and ``union`` (DAVIS-2016: all foreground vs all foreground).

The dataset runner's defaults are the official tool's conventions (``OFFICIAL``): its loader
scores the objects 1..max(id in the first annotated frame) in both tasks, and turns void pixels
(255) into background; the unsupervised evaluation then ignores them, the semi-supervised one
does not. ``void`` and ``objects`` select the other conventions explicitly. One deliberate
difference: ``hungarian`` keeps the ``max_proposals`` largest predicted ids where the official
tool refuses results with more ids (and it refuses predicted ids above the gt object count in
the semi-supervised task, which ``identity`` ignores).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from deva.errors import DevaError
from deva.eval.selection import listing, select
from deva.io.masks import read_id_png

Match = Literal["identity", "hungarian", "union"]
Task = Literal["unsupervised", "semi-supervised"]
Void = Literal["background", "ignore"]
Objects = Literal["first-frame", "all"]

VOID_ID = 255
"""Ground-truth value marking pixels that are not scored (DAVIS-2017 palette annotations)."""

MATCHES: tuple[str, ...] = ("identity", "hungarian", "union")
TASKS: tuple[str, ...] = ("unsupervised", "semi-supervised")
VOIDS: tuple[str, ...] = ("background", "ignore")
OBJECTS: tuple[str, ...] = ("first-frame", "all")


@dataclass(frozen=True)
class Convention:
    """How ground truth is read: what void pixels are, and which gt ids are objects."""

    void: Void
    objects: Objects


OFFICIAL: dict[str, Convention] = {
    "semi-supervised": Convention(void="background", objects="first-frame"),
    "unsupervised": Convention(void="ignore", objects="first-frame"),
}
"""davis2017-evaluation's conventions per task (``DAVIS.get_all_masks`` and ``evaluation.py``)."""


# ---------------------------------------------------------------------------------------------
# Metrics


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary of a binary mask (..., H, W), as the official ``seg2bmap``.

    A pixel is boundary if it differs from its right, bottom or bottom-right neighbour (outside the
    image counts as background), except that the last row only looks right, the last column only
    looks down and the bottom-right pixel never is. The map is thus offset half a pixel towards the
    origin: a filled square's boundary is the outline of the square grown by one up and left.
    """
    seg = np.asarray(mask).astype(bool)
    if seg.ndim < 2:
        raise DevaError(f"boundary_map needs a (..., H, W) mask, got shape {seg.shape}")
    right = np.zeros_like(seg)
    below = np.zeros_like(seg)
    below_right = np.zeros_like(seg)
    right[..., :, :-1] = seg[..., :, 1:]
    below[..., :-1, :] = seg[..., 1:, :]
    below_right[..., :-1, :-1] = seg[..., 1:, 1:]
    bmap = (seg ^ right) | (seg ^ below) | (seg ^ below_right)
    bmap[..., -1, :] = seg[..., -1, :] ^ right[..., -1, :]
    bmap[..., :, -1] = seg[..., :, -1] ^ below[..., :, -1]
    bmap[..., -1, -1] = False
    return bmap


def tolerance_radius(shape: tuple[int, int], bound_th: float = 0.008) -> int:
    """Boundary tolerance in pixels: a fraction of the image diagonal if < 1, else pixels."""
    if bound_th < 0:
        raise DevaError(f"bound_th must be >= 0, got {bound_th}")
    if bound_th >= 1:
        return int(math.ceil(bound_th))
    return int(math.ceil(bound_th * math.hypot(shape[0], shape[1])))


def region_similarity(
    pred: np.ndarray, gt: np.ndarray, *, void: np.ndarray | None = None
) -> float | np.ndarray:
    """J = |pred ∩ gt| / |pred ∪ gt| (1 when both are empty) of (H, W) or (T, H, W) masks.

    Returns a float for one frame and a (T,) array for a stack. ``void`` pixels are ignored.
    """
    j, _ = _single_pair(pred, gt, void, bound_th=None)
    return j


def boundary_measure(
    pred: np.ndarray,
    gt: np.ndarray,
    bound_th: float = 0.008,
    *,
    void: np.ndarray | None = None,
) -> float | np.ndarray:
    """DAVIS boundary F-measure of (H, W) or (T, H, W) masks (per frame for a stack).

    Empty-boundary rules as in the official code: no predicted boundary but a gt one gives P=1,
    R=0; a predicted boundary but no gt one gives P=0, R=1; neither gives P=R=1.
    """
    _, f = _single_pair(pred, gt, void, bound_th=bound_th)
    return f


def _single_pair(
    pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None, bound_th: float | None
) -> tuple[float | np.ndarray, float | np.ndarray]:
    pred = np.asarray(pred).astype(bool)
    gt = np.asarray(gt).astype(bool)
    if pred.shape != gt.shape or pred.ndim not in (2, 3):
        raise DevaError(
            f"pred and gt must be equal (H, W) or (T, H, W) masks, got {pred.shape} and {gt.shape}"
        )
    if void is not None:
        void = np.asarray(void).astype(bool)
        if void.shape != gt.shape:
            raise DevaError(f"void mask shape {void.shape} differs from gt shape {gt.shape}")
        pred = pred & ~void
        gt = gt & ~void
    single = pred.ndim == 2
    if single:
        pred, gt = pred[None], gt[None]
    maps = ((p.view(np.uint8), g.view(np.uint8)) for p, g in zip(pred, gt, strict=True))
    j, f = _pair_scores(maps, 1, 1, bound_th)
    j, f = j[0, 0], f[0, 0]
    if single:
        return float(j[0]), float(f[0])
    return j, f


def _pair_scores(
    frames: Iterable[tuple[np.ndarray, np.ndarray]],
    n_pred: int,
    n_gt: int,
    bound_th: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """J and F for every (candidate, gt object) pair and frame, each (n_pred, n_gt, T).

    frames: per frame, (H, W) maps of candidate index 1..n_pred and gt object index 1..n_gt, 0
    for none, void already removed from both (one frame at a time keeps memory flat). J comes
    from one joint histogram per frame; for F each mask's boundary and dilation are computed once
    per frame, on its bounding box only. ``bound_th=None`` skips F.
    """
    j_frames, f_frames = [], []
    for p, g in frames:
        joint = p.astype(np.int64).ravel() * (n_gt + 1) + g.ravel()
        counts = np.bincount(joint, minlength=(n_pred + 1) * (n_gt + 1))
        counts = counts.reshape(n_pred + 1, n_gt + 1)
        inter = counts[1:, 1:]
        union = counts[1:, :].sum(axis=1)[:, None] + counts[:, 1:].sum(axis=0)[None, :] - inter
        j_frames.append(np.where(union == 0, 1.0, inter / np.maximum(union, 1)))
        if bound_th is not None:
            radius = tolerance_radius(p.shape, bound_th)
            f_frames.append(_frame_f(p, g, n_pred, n_gt, radius))
    if not j_frames:
        raise DevaError("no frames to evaluate")
    j = np.stack(j_frames, axis=-1)
    f = np.stack(f_frames, axis=-1) if f_frames else np.zeros_like(j)
    return j, f


def _frame_f(p: np.ndarray, g: np.ndarray, n_pred: int, n_gt: int, radius: int) -> np.ndarray:
    pred_b, pred_d = _boundaries(p, n_pred, radius)
    gt_b, gt_d = _boundaries(g, n_gt, radius)
    n_fg = np.array([b.size for b in pred_b], dtype=np.float64)
    n_gt_b = np.array([b.size for b in gt_b], dtype=np.float64)
    # fg_match[i, k]: boundary pixels of candidate i within tolerance of object k; gt_match alike.
    fg_match = np.stack([gt_d[:, b].sum(axis=1) for b in pred_b])
    gt_match = np.stack([pred_d[:, b].sum(axis=1) for b in gt_b]).T
    has_fg = (n_fg > 0)[:, None]
    has_gt = (n_gt_b > 0)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(has_fg, fg_match / n_fg[:, None], 1.0)
        recall = np.where(has_gt, gt_match / n_gt_b[None, :], 1.0)
    precision = np.where(has_fg & ~has_gt, 0.0, precision)
    recall = np.where(~has_fg & has_gt, 0.0, recall)
    total = precision + recall
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total == 0, 0.0, 2 * precision * recall / total)


def _boundaries(labels: np.ndarray, count: int, radius: int) -> tuple[list[np.ndarray], np.ndarray]:
    """For labels 1..count of an (H, W) map: flat indices of each boundary pixel, and the
    (count, H*W) boundaries dilated by the tolerance disk.

    Work is done on each label's bounding box grown by one pixel: the boundary reaches one pixel
    up/left of the mask, and a box edge inside the image is background, so the last-row/column
    rule of ``boundary_map`` only takes effect where the box meets the image edge, as it should.
    cv2's default border never adds foreground, so dilating a crop grown by ``radius`` is exact.
    """
    height, width = labels.shape
    dilated = np.zeros((count, height, width), dtype=bool)
    indices = []
    kernel = _disk(radius)
    for index, box in enumerate(ndimage.find_objects(labels, max_label=count)):
        if box is None:
            indices.append(np.zeros(0, dtype=np.int64))
            continue
        y0, y1 = max(box[0].start - 1, 0), min(box[0].stop + 1, height)
        x0, x1 = max(box[1].start - 1, 0), min(box[1].stop + 1, width)
        bmap = boundary_map(labels[y0:y1, x0:x1] == index + 1)
        ys, xs = np.nonzero(bmap)
        indices.append((ys + y0).astype(np.int64) * width + (xs + x0))
        if ys.size == 0:
            continue
        dy0, dy1 = max(y0 - radius, 0), min(y1 + radius, height)
        dx0, dx1 = max(x0 - radius, 0), min(x1 + radius, width)
        canvas = np.zeros((dy1 - dy0, dx1 - dx0), dtype=np.uint8)
        canvas[y0 - dy0 : y1 - dy0, x0 - dx0 : x1 - dx0] = bmap
        dilated[index, dy0:dy1, dx0:dx1] = cv2.dilate(canvas, kernel) > 0
    return indices, dilated.reshape(count, -1)


@cache
def _disk(radius: int) -> np.ndarray:
    """skimage-style disk structuring element: x² + y² <= r²."""
    span = np.arange(-radius, radius + 1)
    return (span[:, None] ** 2 + span[None, :] ** 2 <= radius**2).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Per-sequence evaluation


@dataclass(frozen=True)
class ObjectScore:
    """Mean J and F over the evaluated frames of one ground-truth object.

    pred_id: the predicted id scored against it (None for ``union`` and for a gt object that got
    no proposal under ``hungarian``, which is then scored against an empty mask).
    """

    gt_id: int
    pred_id: int | None
    j: float
    f: float

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2


@dataclass(frozen=True)
class SequenceScore:
    """Scores of one sequence; the means are over its objects (NaN if it has none)."""

    name: str
    objects: tuple[ObjectScore, ...]
    num_frames: int

    @property
    def j_mean(self) -> float:
        return _mean(o.j for o in self.objects)

    @property
    def f_mean(self) -> float:
        return _mean(o.f for o in self.objects)

    @property
    def jf_mean(self) -> float:
        return (self.j_mean + self.f_mean) / 2


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return float(np.mean(values)) if values else math.nan


def evaluate_sequence(
    pred_ids: np.ndarray,
    gt_ids: np.ndarray,
    *,
    match: Match = "identity",
    max_proposals: int = 20,
    skip_first_last: bool = False,
    bound_th: float = 0.008,
    ignore_void: bool = True,
    objects: Sequence[int] | None = None,
    name: str = "",
) -> SequenceScore:
    """J and F of one sequence of (T, H, W) id maps under a matching protocol.

    skip_first_last: drop the first and last frame (semi-supervised DAVIS convention: the first
        frame is the given reference). The gt objects are still taken from all frames.
    ignore_void: gt pixels equal to 255 are removed from prediction and gt alike (the official
        unsupervised evaluation); if False they count as gt background (semi-supervised).
    objects: gt object ids to score (default: every non-zero, non-void id in ``gt_ids``; see
        ``gt_objects`` for the official first-frame convention).
    max_proposals: ``hungarian`` only; the largest predicted ids (by area over the evaluated
        frames) that may be matched, the rest count as background.
    """
    pred_ids = np.asarray(pred_ids)
    gt_ids = np.asarray(gt_ids)
    if pred_ids.dtype == bool:
        pred_ids = pred_ids.astype(np.uint8)
    if gt_ids.dtype == bool:
        gt_ids = gt_ids.astype(np.uint8)
    if pred_ids.ndim != 3 or pred_ids.shape != gt_ids.shape:
        raise DevaError(
            f"sequence {name!r}: pred and gt must be equal (T, H, W) id maps, "
            f"got {pred_ids.shape} and {gt_ids.shape}"
        )
    if not (np.issubdtype(pred_ids.dtype, np.integer) and np.issubdtype(gt_ids.dtype, np.integer)):
        raise DevaError(f"sequence {name!r}: id maps must be integer arrays")
    if match not in MATCHES:
        raise DevaError(f"unknown match {match!r}; choose one of {', '.join(MATCHES)}")
    if max_proposals < 1:
        raise DevaError(f"max_proposals must be >= 1, got {max_proposals}")
    if objects is None:
        object_ids = [i for i in _present_ids(gt_ids) if i != VOID_ID]
    else:
        object_ids = sorted({int(i) for i in objects})
    if skip_first_last and pred_ids.shape[0] < 3:
        raise DevaError(
            f"sequence {name!r}: skipping the first and last frame needs at least 3 frames, "
            f"got {pred_ids.shape[0]}"
        )
    evaluated = range(1, len(gt_ids) - 1) if skip_first_last else range(len(gt_ids))
    if not evaluated:
        raise DevaError(f"sequence {name!r}: no frames to evaluate")

    def cleaned(t: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame t's (pred, gt) with gt void turned to 0 in the gt (and in pred if ignored)."""
        pred, gt = pred_ids[t], gt_ids[t]
        void = gt == VOID_ID
        if void.any():
            gt = np.where(void, 0, gt)
            if ignore_void:
                pred = np.where(void, 0, pred)
        return pred, gt

    if match == "union":
        maps = (
            ((p != 0).view(np.uint8), (g != 0).view(np.uint8)) for p, g in map(cleaned, evaluated)
        )
        j, f = _pair_scores(maps, 1, 1, bound_th)
        score = ObjectScore(gt_id=1, pred_id=None, j=float(j[0, 0].mean()), f=float(f[0, 0].mean()))
        return SequenceScore(name=name, objects=(score,), num_frames=len(evaluated))
    if not object_ids:
        return SequenceScore(name=name, objects=(), num_frames=len(evaluated))

    if match == "identity":
        candidates = list(object_ids)
    else:
        candidates = _largest_ids((cleaned(t)[0] for t in evaluated), max_proposals)
    # Too few proposals: pad with empty candidates, as the official code pads with empty masks.
    n_pred = max(len(candidates), len(object_ids)) if match == "hungarian" else len(candidates)
    maps = (
        (_index_map(p, candidates), _index_map(g, object_ids)) for p, g in map(cleaned, evaluated)
    )
    j, f = _pair_scores(maps, n_pred, len(object_ids), bound_th)
    j_mean, f_mean = j.mean(axis=2), f.mean(axis=2)

    if match == "identity":
        pairs = [(k, k) for k in range(len(object_ids))]
    else:
        rows, cols = linear_sum_assignment(-(j_mean + f_mean) / 2)
        pairs = sorted(zip(rows.tolist(), cols.tolist(), strict=True), key=lambda rc: rc[1])
    scores = tuple(
        ObjectScore(
            gt_id=object_ids[k],
            pred_id=candidates[i] if i < len(candidates) else None,
            j=float(j_mean[i, k]),
            f=float(f_mean[i, k]),
        )
        for i, k in pairs
    )
    return SequenceScore(name=name, objects=scores, num_frames=len(evaluated))


_COUNTED = 1 << 20
"""Ids below this are counted with ``np.bincount``; larger ones fall back to sorting."""


def _index_map(ids: np.ndarray, keys: Sequence[int]) -> np.ndarray:
    """int32 map: i + 1 where ``ids == keys[i]``, 0 elsewhere."""
    if ids.size and keys and int(ids.min()) >= 0 and int(ids.max()) < _COUNTED:
        lookup = np.zeros(int(ids.max()) + 1, dtype=np.int32)
        inside = [k for k in keys if 0 <= k < lookup.size]
        lookup[inside] = [keys.index(k) + 1 for k in inside]
        return lookup[ids]
    out = np.zeros(ids.shape, dtype=np.int32)
    for index, key in enumerate(keys, start=1):
        out[ids == key] = index
    return out


def _id_counts(ids: np.ndarray) -> dict[int, int]:
    """Pixel count of every non-zero id in ``ids``."""
    if ids.size and int(ids.min()) >= 0 and int(ids.max()) < _COUNTED:
        counts = np.bincount(ids.ravel())
        values = np.flatnonzero(counts)
        return {int(v): int(counts[v]) for v in values if v != 0}
    values, counts = np.unique(ids[ids != 0], return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


def _present_ids(ids: np.ndarray) -> list[int]:
    """Sorted non-zero ids present in ``ids``."""
    return sorted(_id_counts(ids))


def _largest_ids(frames: Iterable[np.ndarray], limit: int) -> list[int]:
    """The ``limit`` non-zero ids of largest total area over ``frames`` (ties: smaller id)."""
    area: dict[int, int] = {}
    for frame in frames:
        for value, count in _id_counts(frame).items():
            area[value] = area.get(value, 0) + count
    return sorted(area, key=lambda v: (-area[v], v))[:limit]


# ---------------------------------------------------------------------------------------------
# Dataset runner


@dataclass(frozen=True)
class DavisReport:
    """Per-sequence scores and dataset means.

    The dataset means average over all gt objects of all sequences, as the official DAVIS-2017
    tables do; with one object per sequence (DAVIS-2016, ``union``) that is the sequence mean.
    ``notes`` are the header lines under the title: the convention reproduced and which
    sequences were scored.
    """

    task: str
    match: str
    sequences: tuple[SequenceScore, ...]
    notes: tuple[str, ...] = ()

    @property
    def j_mean(self) -> float:
        return _mean(o.j for s in self.sequences for o in s.objects)

    @property
    def f_mean(self) -> float:
        return _mean(o.f for s in self.sequences for o in s.objects)

    @property
    def jf_mean(self) -> float:
        return (self.j_mean + self.f_mean) / 2

    def to_markdown(self) -> str:
        """The header, a Markdown table with one row per sequence, then the dataset mean."""
        lines = [
            f"DAVIS {self.task} (match: {self.match})",
            *self.notes,
            "",
            "| Sequence | Objects | Frames | J&F | J | F |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for seq in self.sequences:
            lines.append(
                f"| {seq.name} | {len(seq.objects)} | {seq.num_frames} | "
                f"{_fmt(seq.jf_mean)} | {_fmt(seq.j_mean)} | {_fmt(seq.f_mean)} |"
            )
        objects = sum(len(s.objects) for s in self.sequences)
        frames = sum(s.num_frames for s in self.sequences)
        lines.append(
            f"| **Mean** | {objects} | {frames} | **{_fmt(self.jf_mean)}** | "
            f"{_fmt(self.j_mean)} | {_fmt(self.f_mean)} |"
        )
        return "\n".join(lines) + "\n"


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def gt_objects(gt_ids: np.ndarray, objects: Objects) -> list[int]:
    """The gt object ids of a (T, H, W) annotation under a convention.

    ``first-frame``: 1..max(id in frame 0) with void removed, as the official loader counts them
    (an id below the maximum that is absent from frame 0 is still an object, one appearing only
    later is not); ``all``: every non-zero, non-void id of any frame.
    """
    if objects not in OBJECTS:
        raise DevaError(
            f"unknown objects convention {objects!r}; choose one of {', '.join(OBJECTS)}"
        )
    if objects == "all":
        return [i for i in _present_ids(gt_ids) if i != VOID_ID]
    first = [i for i in _present_ids(gt_ids[:1]) if i != VOID_ID]
    return list(range(1, max(first) + 1)) if first else []


def describe_convention(
    task: str, match: str, convention: Convention, skip_first_last: bool
) -> str:
    """One header line: the convention used, and where it departs from the official tool's."""
    official = OFFICIAL[task]
    official_match = "hungarian" if task == "unsupervised" else "identity"
    void = {"background": "void (255) = background", "ignore": "void (255) ignored"}
    objects = {
        "first-frame": "objects = ids 1..max of the first frame",
        "all": "objects = every id of any frame",
    }
    parts = []
    if match == "union":
        parts.append("all objects as one foreground (DAVIS-2016)")
    else:
        parts.append(objects[convention.objects])
        if convention.objects != official.objects:
            parts[-1] += f" (official: {objects[official.objects].removeprefix('objects = ')})"
    parts.append(void[convention.void])
    if convention.void != official.void:
        parts[-1] += f" (official: {official.void})"
    parts.append("first and last frame not scored" if skip_first_last else "every frame scored")
    same = (
        convention == official
        and match == official_match
        and skip_first_last == (task == "semi-supervised")
    )
    source = f"davis2017-evaluation {task}" if same else "not the official tool's"
    return f"Convention: {source} ({'; '.join(parts)})."


def evaluate_davis(
    results_dir: str | Path,
    davis_root: str | Path,
    *,
    task: Task = "unsupervised",
    match: Match | None = None,
    sequences: Sequence[str] | None = None,
    image_set: str | None = None,
    subset: bool = False,
    resolution: str = "480p",
    skip_first_last: bool | None = None,
    max_proposals: int = 20,
    bound_th: float = 0.008,
    void: Void | None = None,
    objects: Objects | None = None,
) -> DavisReport:
    """Evaluate a results folder against the DAVIS annotations of ``davis_root``.

    Ground truth: ``Annotations/<resolution>/<seq>/*.png`` (for the unsupervised task
    ``Annotations_unsupervised/<resolution>`` where it exists, as the official tool reads).
    Results are read from ``<results_dir>/<seq>/masks/<frame>.png`` (deva's output) or
    ``<results_dir>/<seq>/<frame>.png`` (plain DAVIS layout), detected per sequence, and resized
    (nearest) to the gt size when only the resolution differs (a result of another aspect
    ratio is an error). ``match`` defaults to ``hungarian`` for the unsupervised task and
    ``identity`` for semi-supervised; ``skip_first_last`` defaults to True for semi-supervised
    only; ``void`` and ``objects`` default to the official tool's convention for the task.
    A gt sequence holding only 0 and 255 is a binary DAVIS-2016 annotation: 255 is its object.

    Sequences: ``sequences`` if given (each must have gt and results). Otherwise the list
    ``image_set`` names (``ImageSets/2017/<name>.txt``, DAVIS-2016's ``ImageSets/<resolution>/
    <name>.txt``, or a path to a text file; default ``val`` where such a file exists, as the
    official tool), else every annotated sequence. A results folder named for no gt sequence,
    or a listed sequence without results, is an error unless ``subset``: then only the listed
    sequences with results are scored and the report's header says what was left out.
    """
    if task not in TASKS:
        raise DevaError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if match is None:
        match = "hungarian" if task == "unsupervised" else "identity"
    if match not in MATCHES:
        raise DevaError(f"unknown match {match!r}; choose one of {', '.join(MATCHES)}")
    if void is not None and void not in VOIDS:
        raise DevaError(f"unknown void convention {void!r}; choose one of {', '.join(VOIDS)}")
    if objects is not None and objects not in OBJECTS:
        raise DevaError(
            f"unknown objects convention {objects!r}; choose one of {', '.join(OBJECTS)}"
        )
    convention = Convention(
        void=void or OFFICIAL[task].void, objects=objects or OFFICIAL[task].objects
    )
    if skip_first_last is None:
        skip_first_last = task == "semi-supervised"
    results_dir = Path(results_dir)
    annotations = _annotations(Path(davis_root), task, resolution)
    if not results_dir.is_dir():
        raise DevaError(f"{results_dir}: results folder not found")

    notes = [describe_convention(task, match, convention, skip_first_last)]
    if sequences is not None:
        names = list(sequences)
        for seq in names:
            if not (annotations / seq).is_dir():
                raise DevaError(f"{annotations / seq}: sequence {seq!r} not in the ground truth")
            if not (results_dir / seq).is_dir():
                raise DevaError(f"{results_dir / seq}: sequence {seq!r} missing in the results")
        notes.append(f"Sequences: {len(names)} chosen ({listing(names)}).")
    else:
        names, scope = _choose_sequences(
            results_dir, annotations, Path(davis_root), image_set, resolution, subset
        )
        notes.append(scope)

    scores, binary = [], []
    for seq in names:
        gt_files = sorted((annotations / seq).glob("*.png"))
        if not gt_files:
            raise DevaError(f"{annotations / seq}: no ground-truth PNGs")
        gt = _read_gt(gt_files)
        values = set(_id_counts(gt)) | {0}
        if values == {0, VOID_ID}:
            gt = (gt == VOID_ID).astype(np.int32)  # binary DAVIS-2016 annotation
            seq_objects = [1]
            binary.append(seq)
        else:
            seq_objects = gt_objects(gt, convention.objects)
        if skip_first_last:
            if len(gt_files) < 3:
                raise DevaError(
                    f"{annotations / seq}: semi-supervised evaluation skips the first and last "
                    f"frame and needs at least 3, found {len(gt_files)}"
                )
            gt_files, gt = gt_files[1:-1], gt[1:-1]
        pred = _read_results(_result_dir(results_dir / seq), gt_files, gt.shape[1:])
        scores.append(
            evaluate_sequence(
                pred,
                gt,
                match=match,
                max_proposals=max_proposals,
                bound_th=bound_th,
                ignore_void=convention.void == "ignore",
                objects=seq_objects,
                name=seq,
            )
        )
    if binary:
        notes.append(
            f"Binary DAVIS-2016 annotations (255 = the object; davis2017-evaluation would read "
            f"it as void): {listing(binary)}."
        )
    return DavisReport(task=task, match=match, sequences=tuple(scores), notes=tuple(notes))


def _annotations(root: Path, task: str, resolution: str) -> Path:
    unsupervised = root / "Annotations_unsupervised" / resolution
    if task == "unsupervised" and unsupervised.is_dir():
        return unsupervised
    annotations = root / "Annotations" / resolution
    if not annotations.is_dir():
        raise DevaError(
            f"{annotations}: DAVIS annotations folder not found "
            "(expected <davis_root>/Annotations/<resolution>/<sequence>/*.png)"
        )
    return annotations


def _choose_sequences(
    results_dir: Path,
    annotations: Path,
    root: Path,
    image_set: str | None,
    resolution: str,
    subset: bool,
) -> tuple[list[str], str]:
    """The sequences to score and the header line saying which they are."""
    annotated = sorted(p.name for p in annotations.iterdir() if p.is_dir())
    listed, source = _image_set(root, image_set, resolution)
    if listed is None:
        listed, source = annotated, str(annotations)
    else:
        unannotated = [seq for seq in listed if seq not in set(annotated)]
        if unannotated:
            raise DevaError(
                f"{source}: {len(unannotated)} listed sequence(s) have no annotations in "
                f"{annotations}: {listing(unannotated)}"
            )
    present = {p.name for p in results_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}
    chosen = select(
        listed, present, results=str(results_dir), source=source, subset=subset, known=annotated
    )
    return list(chosen.names), chosen.header


def _image_set(root: Path, name: str | None, resolution: str) -> tuple[list[str] | None, str]:
    """Sequence names of an image-set list and where they came from; (None, "") when no name
    was given and the official default ``val`` list does not exist."""
    if name is None:
        candidates = [
            root / "ImageSets" / "2017" / "val.txt",
            root / "ImageSets" / resolution / "val.txt",
        ]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            return None, ""
        return _read_image_set(found), str(found)
    given = Path(name)
    candidates = [
        given,
        root / "ImageSets" / "2017" / f"{name}.txt",
        root / "ImageSets" / resolution / f"{name}.txt",
    ]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise DevaError(
            f"--set {name}: no such list (looked for {candidates[1]}, {candidates[2]} "
            "and a file of that name)"
        )
    return _read_image_set(found), str(found)


def _read_image_set(path: Path) -> list[str]:
    """One sequence per line (DAVIS-2017), or DAVIS-2016's lines of frame paths
    (``/JPEGImages/480p/bear/00000.jpg /Annotations/...``), whose sequence is the frame's folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DevaError(f"{path}: cannot read the sequence list ({err})") from err
    names: list[str] = []
    for line in text.splitlines():
        token = line.split()[0] if line.split() else ""
        seq = Path(token).parent.name if "/" in token else token
        if seq and seq not in names:
            names.append(seq)
    if not names:
        raise DevaError(f"{path}: the sequence list is empty")
    return names


def _read_gt(files: Sequence[Path]) -> np.ndarray:
    first = read_id_png(files[0])
    stack = np.empty((len(files), *first.shape), dtype=np.int32)
    stack[0] = first
    for t, path in enumerate(files[1:], start=1):
        ids = read_id_png(path)
        if ids.shape != first.shape:
            raise DevaError(f"{path}: size {ids.shape} differs from {files[0].name} {first.shape}")
        stack[t] = ids
    return stack


def _result_dir(seq_dir: Path) -> Path:
    masks = seq_dir / "masks"
    return masks if masks.is_dir() else seq_dir


def _read_results(folder: Path, gt_files: Sequence[Path], shape: tuple[int, int]) -> np.ndarray:
    stack = np.empty((len(gt_files), *shape), dtype=np.int32)
    for t, gt_file in enumerate(gt_files):
        path = folder / gt_file.name
        if not path.is_file():
            raise DevaError(f"{path}: result frame missing (ground truth has {gt_file.name})")
        ids = read_id_png(path)
        if not _same_aspect(ids.shape, shape):
            raise DevaError(
                f"{path}: result is {ids.shape[1]}x{ids.shape[0]} but the ground truth is "
                f"{shape[1]}x{shape[0]}; only another resolution of the same frames (same "
                "aspect ratio) is resized to fit"
            )
        stack[t] = _resize_nearest(ids, shape)
    return stack


def _same_aspect(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Whether two (H, W) sizes have one aspect ratio, within 1 % (854x480 vs 1920x1080)."""
    return abs(a[1] * b[0] - a[0] * b[1]) <= 0.01 * a[1] * b[0]


def _resize_nearest(ids: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize sampling pixel centres (exact for integer scale factors)."""
    if ids.shape == tuple(shape):
        return ids
    rows = ((np.arange(shape[0]) + 0.5) * ids.shape[0] / shape[0]).astype(np.int64)
    cols = ((np.arange(shape[1]) + 0.5) * ids.shape[1] / shape[1]).astype(np.int64)
    return ids[np.minimum(rows, ids.shape[0] - 1)[:, None], np.minimum(cols, ids.shape[1] - 1)]
