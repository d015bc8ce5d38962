"""STQ, segmentation and tracking quality (Weber et al. 2021), with deeplab2's formula.

Labels are panoptic maps ``class << bit_shift | instance`` (VIPSeg: 16 bits, ignore class 255).

* AQ (association) looks only at thing classes. A thing pixel with instance 0 is crowd and is
  left out of the gt tubes and of the predictions alike. For every gt tube g and predicted tube p
  (a predicted label value on thing pixels, so a track that changes class is two tubes) over the
  whole video: TPA = |g ∩ p|, IoU = TPA / (|g| + |p| - TPA). AQ = Σ_g (1/|g|) Σ_p TPA·IoU, divided
  by the number of gt tubes (over all videos when pooled).
* SQ is the class mean IoU of the semantic confusion over the whole video (pooled over videos).
  Gt ignore pixels are dropped; a prediction of the ignore class on a labelled pixel is a miss
  for that class. As in deeplab2, the ignore column then also counts as a class of IoU 0 in the
  mean (so leaving labelled pixels unpredicted costs more than the pixels alone).
* STQ = sqrt(AQ · SQ).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from deva.errors import DevaError

IGNORE_LABEL = 255
BIT_SHIFT = 16


@dataclass(frozen=True)
class STQStats:
    """Sufficient statistics of one video: the semantic confusion (gt rows, prediction
    columns; the last index is the ignore class) and the tube areas and overlaps for AQ."""

    confusion: np.ndarray
    gt_sizes: dict[int, int]
    pred_sizes: dict[int, int]
    overlaps: dict[tuple[int, int], int]
    num_frames: int

    @property
    def aq_sum(self) -> float:
        """Σ_g (1/|g|) Σ_p TPA·IoU (not yet divided by the number of gt tubes)."""
        total = 0.0
        for (g, p), tpa in self.overlaps.items():
            gt_size, pred_size = self.gt_sizes[g], self.pred_sizes[p]
            total += tpa * (tpa / (gt_size + pred_size - tpa)) / gt_size
        return total

    @property
    def num_tubes(self) -> int:
        return len(self.gt_sizes)


@dataclass(frozen=True)
class STQResult:
    """STQ, AQ and SQ (mean IoU) as fractions in [0, 1]; AQ is NaN without gt thing tubes."""

    stq: float
    aq: float
    sq: float


def stq_stats(
    frames: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    num_classes: int,
    things: Sequence[int],
    ignore_label: int = IGNORE_LABEL,
    bit_shift: int = BIT_SHIFT,
) -> STQStats:
    """Statistics of one video from its (gt, prediction) panoptic label maps, frame by frame."""
    gts, preds, weights = [], [], []
    for t, (gt, pred) in enumerate(frames):
        gt = np.asarray(gt, dtype=np.int64)
        pred = np.asarray(pred, dtype=np.int64)
        if gt.shape != pred.shape:
            raise DevaError(f"frame {t}: gt {gt.shape} and prediction {pred.shape} differ")
        pairs, counts = np.unique(
            np.stack([gt.ravel(), pred.ravel()], axis=1), axis=0, return_counts=True
        )
        gts.append(pairs[:, 0])
        preds.append(pairs[:, 1])
        weights.append(counts)
    if not weights:
        raise DevaError("no frames to evaluate")
    return stq_stats_from_counts(
        np.concatenate(gts),
        np.concatenate(preds),
        np.concatenate(weights),
        num_frames=len(weights),
        num_classes=num_classes,
        things=things,
        ignore_label=ignore_label,
        bit_shift=bit_shift,
    )


def stq_stats_from_counts(
    gt: np.ndarray,
    pred: np.ndarray,
    count: np.ndarray,
    *,
    num_frames: int,
    num_classes: int,
    things: Sequence[int],
    ignore_label: int = IGNORE_LABEL,
    bit_shift: int = BIT_SHIFT,
) -> STQStats:
    """Statistics of one video from (gt label, predicted label, pixel count) triples, e.g. a
    video's joint label histogram: ``count[i]`` pixels have labels ``gt[i]`` and ``pred[i]``."""
    if ignore_label < num_classes:
        raise DevaError(f"ignore label {ignore_label} must be >= num_classes {num_classes}")
    gt = np.asarray(gt, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    count = np.asarray(count, dtype=np.int64)
    gt_class, pred_class = gt >> bit_shift, pred >> bit_shift
    for name, cls in (("ground-truth", gt_class), ("predicted", pred_class)):
        bad = (cls != ignore_label) & ((cls < 0) | (cls >= num_classes))
        if bad.any():
            raise DevaError(
                f"{name} class {int(cls[bad][0])} outside 0..{num_classes - 1} "
                f"(and not the ignore label {ignore_label})"
            )
    size = num_classes + 1
    gt_c = np.where(gt_class == ignore_label, num_classes, gt_class)
    pred_c = np.where(pred_class == ignore_label, num_classes, pred_class)
    confusion = (
        np.bincount(gt_c * size + pred_c, weights=count, minlength=size * size)
        .reshape(size, size)
        .astype(np.int64)
    )

    thing_classes = np.asarray(sorted(set(things)), dtype=np.int64)
    gt_thing = np.isin(gt_class, thing_classes)
    crowd = gt_thing & ((gt & ((1 << bit_shift) - 1)) == 0)
    gt_mask = gt_thing & ~crowd
    pred_mask = np.isin(pred_class, thing_classes) & ~crowd
    both = gt_mask & pred_mask
    return STQStats(
        confusion=confusion,
        gt_sizes=_sum_by(gt[gt_mask], count[gt_mask]),
        pred_sizes=_sum_by(pred[pred_mask], count[pred_mask]),
        overlaps=_sum_by_pair(gt[both], pred[both], count[both]),
        num_frames=num_frames,
    )


def _sum_by(keys: np.ndarray, count: np.ndarray) -> dict[int, int]:
    values, inverse = np.unique(keys, return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=count, minlength=len(values))
    return {int(v): int(s) for v, s in zip(values.tolist(), sums.tolist(), strict=True)}


def _sum_by_pair(a: np.ndarray, b: np.ndarray, count: np.ndarray) -> dict[tuple[int, int], int]:
    if a.size == 0:
        return {}
    pairs, inverse = np.unique(np.stack([a, b], axis=1), axis=0, return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=count, minlength=len(pairs))
    return {
        (int(g), int(p)): int(s) for (g, p), s in zip(pairs.tolist(), sums.tolist(), strict=True)
    }


def mean_iou(confusion: np.ndarray) -> float:
    """deeplab2's mean IoU: gt ignore row dropped, classes with a non-empty union averaged
    (the ignore column included, with IoU 0, when something was predicted as ignore)."""
    confusion = confusion.copy()
    confusion[-1, :] = 0
    inter = np.diag(confusion).astype(np.float64)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - inter
    seen = union > 0
    if not seen.any():
        return math.nan
    return float(np.sum(inter[seen] / union[seen]) / seen.sum())


def stq_result(stats: Sequence[STQStats]) -> STQResult:
    """STQ pooled over videos: AQ over all gt tubes, SQ from the summed confusion."""
    if not stats:
        raise DevaError("no videos to evaluate")
    tubes = sum(s.num_tubes for s in stats)
    aq = sum(s.aq_sum for s in stats) / tubes if tubes else math.nan
    sq = mean_iou(sum(s.confusion for s in stats))
    return STQResult(stq=math.sqrt(aq * sq) if tubes else math.nan, aq=aq, sq=sq)


def stq(
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    num_classes: int,
    things: Sequence[int],
    ignore_label: int = IGNORE_LABEL,
    bit_shift: int = BIT_SHIFT,
) -> STQResult:
    """STQ of one video of (T, H, W) panoptic label maps (``class << bit_shift | instance``)."""
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.ndim != 3 or gt.shape != pred.shape:
        raise DevaError(
            f"gt and prediction must be equal (T, H, W) label maps, got {gt.shape} and {pred.shape}"
        )
    stats = stq_stats(
        zip(gt, pred, strict=True),
        num_classes=num_classes,
        things=things,
        ignore_label=ignore_label,
        bit_shift=bit_shift,
    )
    return stq_result([stats])


def panoptic_label(
    category: np.ndarray, instance: np.ndarray, bit_shift: int = BIT_SHIFT
) -> np.ndarray:
    """``category << bit_shift | instance`` as int64 (helper for building STQ inputs)."""
    return (np.asarray(category, dtype=np.int64) << bit_shift) + np.asarray(instance, np.int64)
