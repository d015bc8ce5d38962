"""VPQ, video panoptic quality (Kim et al. 2020), with the tube protocol of the VIPSeg toolkit.

For a window of k frames, every start position 0..T-k (at least one window) concatenates the k
frames into one spatio-temporal tube per segment id. A ground-truth tube and a predicted tube of
the same category whose tube IoU is > 0.5 are a true positive (such matches are unique because
segments do not overlap). The union leaves out predicted pixels on VOID (gt id 0). Unmatched gt
tubes are false negatives unless crowd; an unmatched prediction is a false positive unless more
than half of it lies on VOID or on the crowd region of its own category. Counts and IoU sums
are pooled over all windows (and videos) per category, PQ_c = ΣIoU / (TP + FP/2 + FN/2), and PQ
is the mean over the categories with any TP, FP or FN (All, Things, Stuff).

∞ is a 999-frame window (the whole clip). Two summaries are in use (``SUMMARIES``): the DEVA
paper's, mean(VPQ^∞, mean(VPQ^k, k ∈ {1, 2, 4, 6, 8, 10})) with a video shorter than k scored as
one whole-clip window (DEVA's ``eval_vpq_vipseg.py``), and the VIPSeg toolkit's
(``eval_vpq_vspw.py``), mean(VPQ^k, k ∈ {1, 2, 4, 6, 8}) with such videos skipped. Both
conventions for short videos are kept (``VPQResult.window(k, short_videos=...)``). Deliberate
difference from the toolkits: areas come from the pixels, not from the JSON ``area`` fields,
and a segment id must keep one category for the whole video (the toolkits take the category of
the first frame of each window).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from deva.errors import DevaError

VOID = 0
"""Panoptic id of unlabelled pixels, in ground truth and prediction alike."""

WHOLE_VIDEO = 999
"""The toolkit's ∞ window: 999 frames, longer than any VIPSeg clip."""

DEFAULT_WINDOWS: tuple[int, ...] = (1, 2, 4, 6, 8, 10, WHOLE_VIDEO)

ShortVideos = Literal["whole", "skip"]
SHORT_VIDEOS: tuple[str, ...] = ("whole", "skip")
"""A video shorter than a window of k frames: scored as one whole-clip window, or skipped."""


@dataclass(frozen=True)
class Summary:
    """A summary VPQ: the mean of VPQ^k over ``windows`` (videos shorter than k treated as
    ``short_videos`` says), then, if ``with_whole_video``, the mean of that and VPQ^∞."""

    name: str
    source: str
    windows: tuple[int, ...]
    with_whole_video: bool
    short_videos: ShortVideos


SUMMARIES: dict[str, Summary] = {
    "deva": Summary(
        "deva",
        "DEVA paper: mean(VPQ^∞, mean VPQ^1,2,4,6,8,10), shorter videos as one whole-clip window",
        (1, 2, 4, 6, 8, 10),
        True,
        "whole",
    ),
    "vipseg": Summary(
        "vipseg",
        "VIPSeg toolkit: mean VPQ^1,2,4,6,8, videos shorter than k skipped",
        (1, 2, 4, 6, 8),
        False,
        "skip",
    ),
}
DEFAULT_SUMMARY = "deva"


@dataclass(frozen=True)
class SegmentInfo:
    """What a panoptic id stands for: its category and whether it is a crowd region (gt only)."""

    category_id: int
    iscrowd: bool = False


@dataclass(frozen=True)
class PQ:
    """Panoptic quality of a set of categories, as fractions in [0, 1]; NaN when n == 0."""

    pq: float
    sq: float
    rq: float
    n: int


@dataclass(frozen=True)
class PQCounts:
    """Per-category TP / FP / FN counts and summed TP IoU; arrays follow ``categories``."""

    categories: tuple[int, ...]
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    iou: np.ndarray

    @staticmethod
    def zeros(categories: Sequence[int]) -> PQCounts:
        n = len(categories)
        z = np.zeros(n, dtype=np.int64)
        return PQCounts(tuple(categories), z, z.copy(), z.copy(), np.zeros(n))

    def __add__(self, other: PQCounts) -> PQCounts:
        if self.categories != other.categories:
            raise DevaError("cannot add PQ counts over different category tables")
        return PQCounts(
            self.categories,
            self.tp + other.tp,
            self.fp + other.fp,
            self.fn + other.fn,
            self.iou + other.iou,
        )

    def summary(self, things: Mapping[int, bool], isthing: bool | None = None) -> PQ:
        """Mean PQ/SQ/RQ over the categories seen (any TP, FP or FN); ``isthing`` picks a group."""
        keep = np.array(
            [isthing is None or bool(things[c]) == isthing for c in self.categories], dtype=bool
        )
        seen = keep & (self.tp + self.fp + self.fn > 0)
        n = int(seen.sum())
        if n == 0:
            return PQ(math.nan, math.nan, math.nan, 0)
        tp, fp, fn, iou = self.tp[seen], self.fp[seen], self.fn[seen], self.iou[seen]
        denom = tp + 0.5 * fp + 0.5 * fn
        sq = np.where(tp > 0, iou / np.maximum(tp, 1), 0.0)
        return PQ(
            pq=float(np.mean(iou / denom)),
            sq=float(np.mean(sq)),
            rq=float(np.mean(tp / denom)),
            n=n,
        )


@dataclass(frozen=True)
class VPQResult:
    """PQ counts per window size, for one video or pooled over many.

    counts: over the windows that fit in each video (and, for ∞, the whole clip);
    short: the one whole-clip window of each video shorter than the window (zeros otherwise).
    """

    windows: tuple[int, ...]
    counts: tuple[PQCounts, ...]
    short: tuple[PQCounts, ...]
    things: Mapping[int, bool]

    def __add__(self, other: VPQResult) -> VPQResult:
        if self.windows != other.windows:
            raise DevaError("cannot add VPQ results over different windows")
        counts = tuple(a + b for a, b in zip(self.counts, other.counts, strict=True))
        short = tuple(a + b for a, b in zip(self.short, other.short, strict=True))
        return VPQResult(self.windows, counts, short, self.things)

    def window(
        self, k: int, isthing: bool | None = None, short_videos: ShortVideos = "whole"
    ) -> PQ:
        """PQ of window size ``k`` over All (None), Things (True) or Stuff (False); a video
        shorter than ``k`` is one whole-clip window (``whole``) or left out (``skip``)."""
        if k not in self.windows:
            raise DevaError(f"window {k} was not evaluated (have {list(self.windows)})")
        if short_videos not in SHORT_VIDEOS:
            raise DevaError(f"unknown short-video convention {short_videos!r}")
        i = self.windows.index(k)
        counts = self.counts[i] + self.short[i] if short_videos == "whole" else self.counts[i]
        return counts.summary(self.things, isthing)

    def summary(self, name: str = DEFAULT_SUMMARY, isthing: bool | None = None) -> float:
        """A summary VPQ of ``SUMMARIES`` (its windows must have been evaluated)."""
        if name not in SUMMARIES:
            raise DevaError(f"unknown VPQ summary {name!r}; choose one of {', '.join(SUMMARIES)}")
        conv = SUMMARIES[name]
        value = float(
            np.mean([self.window(k, isthing, conv.short_videos).pq for k in conv.windows])
        )
        if conv.with_whole_video:
            value = float(np.mean([self.window(WHOLE_VIDEO, isthing).pq, value]))
        return value

    def vpq(self, isthing: bool | None = None) -> float:
        """mean(VPQ^∞, mean of the finite windows) over the evaluated windows if both kinds
        were evaluated (the DEVA convention), otherwise the mean over all windows."""
        finite = [self.window(k, isthing).pq for k in self.windows if k < WHOLE_VIDEO]
        whole = [self.window(k, isthing).pq for k in self.windows if k >= WHOLE_VIDEO]
        if finite and whole:
            return float(np.mean([np.mean(whole), np.mean(finite)]))
        return float(np.mean(finite + whole))


def compact_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, index of each pixel's value): ``np.unique(return_inverse=True)``
    without its full sort (hash-based unique, then a binary search per pixel)."""
    values = np.unique(ids)
    return values, np.searchsorted(values, ids)


def joint_counts(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gt values, predicted values, pixel count of every (gt, predicted) value pair) of two
    id maps of one shape; the counts are a (len(gt values), len(predicted values)) table."""
    g_vals, g_idx = compact_ids(gt)
    p_vals, p_idx = compact_ids(pred)
    joint = np.bincount(
        g_idx.ravel().astype(np.int64) * len(p_vals) + p_idx.ravel(),
        minlength=len(g_vals) * len(p_vals),
    ).reshape(len(g_vals), len(p_vals))
    return g_vals, p_vals, joint


class PairTable:
    """Pixel counts of every (gt id, predicted id) pair per frame, with prefix sums over time,
    so a window of any length is summed in O(1) frames. Built once per video."""

    def __init__(self, frames: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        per_frame: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        shape = None
        for t, (gt, pred) in enumerate(frames):
            gt, pred = np.asarray(gt), np.asarray(pred)
            if gt.shape != pred.shape or gt.ndim != 2:
                raise DevaError(
                    f"frame {t}: gt and prediction must be equal (H, W) id maps, "
                    f"got {gt.shape} and {pred.shape}"
                )
            if shape is not None and gt.shape != shape:
                raise DevaError(f"frame {t}: size {gt.shape} differs from frame 0 {shape}")
            shape = gt.shape
            g_vals, p_vals, joint = joint_counts(gt, pred)
            rows, cols = np.nonzero(joint)
            per_frame.append((g_vals[rows], p_vals[cols], joint[rows, cols]))
        if not per_frame:
            raise DevaError("no frames to evaluate")
        self.num_frames = len(per_frame)
        self.gt_ids = np.unique(np.concatenate([f[0] for f in per_frame]))
        self.pred_ids = np.unique(np.concatenate([f[1] for f in per_frame]))
        counts = np.zeros((self.num_frames + 1, len(self.gt_ids), len(self.pred_ids)), np.int64)
        for t, (g, p, c) in enumerate(per_frame):
            counts[t + 1, np.searchsorted(self.gt_ids, g), np.searchsorted(self.pred_ids, p)] = c
        self._cumulative = np.cumsum(counts, axis=0)

    def window(self, start: int, length: int) -> np.ndarray:
        """(len(gt_ids), len(pred_ids)) pixel counts summed over frames [start, start+length)."""
        stop = min(start + length, self.num_frames)
        return self._cumulative[stop] - self._cumulative[start]


def vpq_counts(
    table: PairTable,
    gt_segments: Mapping[int, SegmentInfo],
    pred_segments: Mapping[int, SegmentInfo],
    categories: Sequence[int],
    window: int,
) -> PQCounts:
    """Pooled PQ counts of one video over every ``window``-frame tube (stride 1); a video
    shorter than the window gets one tube of the whole clip.

    Gt ids not in ``gt_segments`` (other than VOID) are unscored but still count in the
    predictions' areas; every predicted id except VOID must be in ``pred_segments``.
    """
    if window < 1:
        raise DevaError(f"VPQ window must be >= 1 frame, got {window}")
    cat_index = {c: i for i, c in enumerate(categories)}
    for pid in table.pred_ids.tolist():
        if pid != VOID and pid not in pred_segments:
            raise DevaError(f"predicted id {pid} is in the masks but has no segment info")
    gt_cat = _category_indices(table.gt_ids, gt_segments, cat_index, "ground-truth")
    pred_cat = _category_indices(table.pred_ids, pred_segments, cat_index, "predicted")
    gt_crowd = np.array(
        [gid in gt_segments and gt_segments[gid].iscrowd for gid in table.gt_ids.tolist()],
        dtype=bool,
    )
    gt_listed = gt_cat >= 0
    pred_listed = pred_cat >= 0
    void_row = np.flatnonzero(table.gt_ids == VOID)
    counts = PQCounts.zeros(categories)
    n_cat = len(categories)
    same_category = gt_cat[:, None] == pred_cat[None, :]
    scored_pairs = (gt_listed & ~gt_crowd)[:, None] & pred_listed[None, :] & same_category
    crowd_rows = gt_listed & gt_crowd
    for start in range(max(table.num_frames - window + 1, 1)):
        inter = table.window(start, window)
        gt_area = inter.sum(axis=1)
        pred_area = inter.sum(axis=0)
        on_void = inter[void_row[0]] if void_row.size else np.zeros_like(pred_area)
        union = gt_area[:, None] + pred_area[None, :] - inter - on_void[None, :]
        candidate = scored_pairs & (inter > 0)
        iou = np.where(candidate, inter / np.maximum(union, 1), 0.0)
        matched = candidate & (iou > 0.5)
        rows, cols = np.nonzero(matched)
        tp = np.bincount(gt_cat[rows], minlength=n_cat)
        iou_sum = np.bincount(gt_cat[rows], weights=iou[rows, cols], minlength=n_cat)
        gt_matched = np.zeros(len(gt_area), dtype=bool)
        gt_matched[rows] = True
        pred_matched = np.zeros(len(pred_area), dtype=bool)
        pred_matched[cols] = True
        missed = gt_listed & ~gt_crowd & ~gt_matched & (gt_area > 0)
        fn = np.bincount(gt_cat[missed], minlength=n_cat)
        # Pixels of each prediction on the crowd region of its own category.
        present_crowd = crowd_rows & (gt_area > 0)
        crowd_hits = np.zeros(len(pred_area), dtype=np.int64)
        if present_crowd.any():
            own = same_category & present_crowd[:, None]
            crowd_hits = (inter * own).sum(axis=0)
        unmatched = pred_listed & ~pred_matched & (pred_area > 0)
        ignored = (on_void + crowd_hits) > 0.5 * pred_area
        false_pos = unmatched & ~ignored
        fp = np.bincount(pred_cat[false_pos], minlength=n_cat)
        counts = counts + PQCounts(counts.categories, tp, fp, fn, iou_sum)
    return counts


def _category_indices(
    ids: np.ndarray,
    segments: Mapping[int, SegmentInfo],
    cat_index: Mapping[int, int],
    what: str,
) -> np.ndarray:
    out = np.full(len(ids), -1, dtype=np.int64)
    for i, sid in enumerate(ids.tolist()):
        if sid == VOID or sid not in segments:
            continue
        category = segments[sid].category_id
        if category not in cat_index:
            raise DevaError(f"{what} segment {sid} has unknown category_id {category}")
        out[i] = cat_index[category]
    return out


def vpq(
    gt_ids: np.ndarray,
    pred_ids: np.ndarray,
    gt_segments: Mapping[int, SegmentInfo],
    pred_segments: Mapping[int, SegmentInfo],
    things: Mapping[int, bool],
    windows: Sequence[int] = DEFAULT_WINDOWS,
) -> VPQResult:
    """VPQ of one video of (T, H, W) panoptic id maps.

    gt_segments / pred_segments: id → category (and crowd flag) for the whole video.
    things: the category table, category id → isthing.
    """
    gt_ids, pred_ids = np.asarray(gt_ids), np.asarray(pred_ids)
    if gt_ids.ndim != 3 or gt_ids.shape != pred_ids.shape:
        raise DevaError(
            f"gt and prediction must be equal (T, H, W) id maps, got {gt_ids.shape} "
            f"and {pred_ids.shape}"
        )
    table = PairTable(zip(gt_ids, pred_ids, strict=True))
    return vpq_from_table(table, gt_segments, pred_segments, things, windows)


def vpq_from_table(
    table: PairTable,
    gt_segments: Mapping[int, SegmentInfo],
    pred_segments: Mapping[int, SegmentInfo],
    things: Mapping[int, bool],
    windows: Sequence[int] = DEFAULT_WINDOWS,
) -> VPQResult:
    """VPQ of one video whose pair counts are already tabulated (see ``PairTable``)."""
    if not windows:
        raise DevaError("no VPQ windows given")
    categories = sorted(things)
    counts, short = [], []
    for k in windows:
        pooled = vpq_counts(table, gt_segments, pred_segments, categories, k)
        shorter = table.num_frames < k < WHOLE_VIDEO
        counts.append(PQCounts.zeros(categories) if shorter else pooled)
        short.append(pooled if shorter else PQCounts.zeros(categories))
    return VPQResult(tuple(windows), tuple(counts), tuple(short), dict(things))
