"""HOTA and OWTA over mask tracks (Luiten et al. 2021; Liu et al. 2022, "Opening up Open-World
Tracking"), following the TrackEval definitions so numbers compare with the BURST toolkit.

Per similarity threshold α ∈ {0.05, 0.10, …, 0.95}:

* Detections are matched per frame by the Hungarian algorithm on global-alignment × IoU, where
  the global alignment of a (gt track, predicted track) pair is a track-level Jaccard score of how
  often they overlap; a matched pair counts only if its IoU ≥ α.
* DetRe = TP / (TP + FN), DetPr = TP / (TP + FP), DetA = TP / (TP + FN + FP).
* AssA = (1/TP) Σ_{TP c} |TPA(c)| / (|TPA(c)| + |FNA(c)| + |FPA(c)|); AssRe / AssPr alike with
  only FNA / FPA in the denominator.
* HOTA = sqrt(DetA · AssA); OWTA = sqrt(DetRe · AssA) (false positives do not count, as
  unannotated objects are expected in the open world). LocA = mean IoU of the TPs.

Every reported number is the mean over the 19 thresholds. Sequences combine by summing TP / FN /
FP and weighting AssA, AssRe, AssPr and LocA by TP, as TrackEval does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from deva.errors import DevaError
from deva.eval.vpq import joint_counts

ALPHAS = np.arange(0.05, 0.99, 0.05)
"""The 19 IoU thresholds HOTA is averaged over."""

_EPS = np.finfo(float).eps


@dataclass(frozen=True)
class HotaFrame:
    """One frame: the gt and predicted track ids present and their (G, P) IoU matrix."""

    gt_ids: np.ndarray
    pred_ids: np.ndarray
    similarity: np.ndarray


@dataclass(frozen=True)
class HotaStats:
    """Per-threshold counts of one or more sequences; the association and localisation terms
    are kept as TP-weighted sums so that sequences add."""

    tp: np.ndarray
    fn: np.ndarray
    fp: np.ndarray
    ass_a_sum: np.ndarray
    ass_re_sum: np.ndarray
    ass_pr_sum: np.ndarray
    loc_a_sum: np.ndarray

    @staticmethod
    def zeros() -> HotaStats:
        z = np.zeros(len(ALPHAS))
        return HotaStats(z, z.copy(), z.copy(), z.copy(), z.copy(), z.copy(), z.copy())

    def __add__(self, other: HotaStats) -> HotaStats:
        return HotaStats(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))

    def _per_alpha(self, name: str) -> np.ndarray:
        tp, fn, fp = self.tp, self.fn, self.fp
        if name == "DetRe":
            return tp / np.maximum(1, tp + fn)
        if name == "DetPr":
            return tp / np.maximum(1, tp + fp)
        if name == "DetA":
            return tp / np.maximum(1, tp + fn + fp)
        if name == "AssA":
            return self.ass_a_sum / np.maximum(1, tp)
        if name == "AssRe":
            return self.ass_re_sum / np.maximum(1, tp)
        if name == "AssPr":
            return self.ass_pr_sum / np.maximum(1, tp)
        if name == "LocA":
            return np.where(tp > 0, self.loc_a_sum / np.maximum(tp, 1e-10), 1.0)
        if name == "HOTA":
            return np.sqrt(self._per_alpha("DetA") * self._per_alpha("AssA"))
        if name == "OWTA":
            return np.sqrt(self._per_alpha("DetRe") * self._per_alpha("AssA"))
        raise DevaError(f"unknown HOTA field {name!r}")

    def per_alpha(self, name: str) -> np.ndarray:
        """One of HOTA, DetA, AssA, DetRe, DetPr, AssRe, AssPr, LocA, OWTA per threshold."""
        return self._per_alpha(name)

    def score(self, name: str) -> float:
        """The field averaged over the thresholds (what tables report)."""
        return float(np.mean(self._per_alpha(name)))

    @property
    def num_gt_detections(self) -> int:
        return int(self.tp[0] + self.fn[0])


def hota_stats(frames: Sequence[HotaFrame]) -> HotaStats:
    """HOTA statistics of one sequence (track ids are local to the sequence)."""
    for t, f in enumerate(frames):
        if f.similarity.shape != (len(f.gt_ids), len(f.pred_ids)):
            raise DevaError(
                f"frame {t}: similarity {f.similarity.shape} does not match "
                f"{len(f.gt_ids)} gt and {len(f.pred_ids)} predicted ids"
            )
        if len(set(f.gt_ids.tolist())) != len(f.gt_ids):
            raise DevaError(f"frame {t}: a gt track id appears twice")
        if len(set(f.pred_ids.tolist())) != len(f.pred_ids):
            raise DevaError(f"frame {t}: a predicted track id appears twice")
    stats = HotaStats.zeros()
    gt_all = np.unique(np.concatenate([np.zeros(0, np.int64)] + [f.gt_ids for f in frames]))
    pred_all = np.unique(np.concatenate([np.zeros(0, np.int64)] + [f.pred_ids for f in frames]))
    n_gt_dets = sum(len(f.gt_ids) for f in frames)
    n_pred_dets = sum(len(f.pred_ids) for f in frames)
    ones = np.ones(len(ALPHAS))
    if n_pred_dets == 0 or n_gt_dets == 0:
        return HotaStats(
            stats.tp, n_gt_dets * ones, n_pred_dets * ones, *(stats.tp.copy() for _ in range(4))
        )
    frames_idx = [
        (np.searchsorted(gt_all, f.gt_ids), np.searchsorted(pred_all, f.pred_ids), f.similarity)
        for f in frames
    ]

    # Global alignment: how much each gt / predicted track pair overlaps over the sequence.
    potential = np.zeros((len(gt_all), len(pred_all)))
    gt_count = np.zeros(len(gt_all))
    pred_count = np.zeros(len(pred_all))
    for g, p, sim in frames_idx:
        denom = sim.sum(axis=0)[None, :] + sim.sum(axis=1)[:, None] - sim
        sim_iou = np.where(denom > _EPS, sim / np.where(denom > _EPS, denom, 1), 0.0)
        potential[g[:, None], p[None, :]] += sim_iou
        gt_count[g] += 1
        pred_count[p] += 1
    alignment = potential / (gt_count[:, None] + pred_count[None, :] - potential)

    tp, fn, fp, loc = (np.zeros(len(ALPHAS)) for _ in range(4))
    matches = np.zeros((len(ALPHAS), len(gt_all), len(pred_all)))
    for g, p, sim in frames_idx:
        if len(g) == 0 or len(p) == 0:
            fp += len(p)
            fn += len(g)
            continue
        rows, cols = linear_sum_assignment(-(alignment[g[:, None], p[None, :]] * sim))
        matched_sim = sim[rows, cols]
        for a, alpha in enumerate(ALPHAS):
            ok = matched_sim >= alpha - _EPS
            n = int(ok.sum())
            tp[a] += n
            fn[a] += len(g) - n
            fp[a] += len(p) - n
            loc[a] += matched_sim[ok].sum()
            matches[a, g[rows[ok]], p[cols[ok]]] += 1

    totals = gt_count[:, None] + pred_count[None, :]
    ass_a = (matches * matches / np.maximum(1, totals[None] - matches)).sum(axis=(1, 2))
    ass_re = (matches * matches / np.maximum(1, gt_count[None, :, None])).sum(axis=(1, 2))
    ass_pr = (matches * matches / np.maximum(1, pred_count[None, None, :])).sum(axis=(1, 2))
    # The per-sequence values TrackEval computes are (sum / max(1, TP)); store them times TP.
    scale = tp / np.maximum(1, tp)
    return HotaStats(tp, fn, fp, ass_a * scale, ass_re * scale, ass_pr * scale, loc)


def id_map_frames(gt: np.ndarray, pred: np.ndarray) -> list[HotaFrame]:
    """HOTA frames from (T, H, W) id maps (0 = background; objects do not overlap)."""
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.ndim != 3 or gt.shape != pred.shape:
        raise DevaError(
            f"gt and prediction must be equal (T, H, W) id maps, got {gt.shape} and {pred.shape}"
        )
    frames = []
    for g_map, p_map in zip(gt, pred, strict=True):
        g_vals, p_vals, joint = joint_counts(g_map, p_map)
        g_keep, p_keep = g_vals != 0, p_vals != 0
        inter = joint[np.ix_(g_keep, p_keep)].astype(np.float64)
        g_area = joint[g_keep].sum(axis=1)
        p_area = joint[:, p_keep].sum(axis=0)
        union = g_area[:, None] + p_area[None, :] - inter
        frames.append(HotaFrame(g_vals[g_keep], p_vals[p_keep], inter / np.maximum(union, 1)))
    return frames


def hota(gt: np.ndarray, pred: np.ndarray) -> HotaStats:
    """HOTA statistics of one sequence of (T, H, W) id maps; read ``.score("HOTA")`` etc."""
    return hota_stats(id_map_frames(gt, pred))


def combine(stats: Iterable[HotaStats]) -> HotaStats:
    """Sum per-sequence statistics (TrackEval's sequence combination)."""
    total = HotaStats.zeros()
    for s in stats:
        total = total + s
    return total
