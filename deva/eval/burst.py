"""BURST open-world evaluation: HOTA / OWTA (``deva.eval.hota``) of mask tracks, split into
common, uncommon and all categories, as the BURST benchmark toolkit scores the open-world task.

Both files use the BURST annotation layout (one JSON for the whole split)::

    {"split": "val", "sequences": [{
        "dataset": "ArgoVerse", "seq_name": "...", "width": W, "height": H,
        "annotated_image_paths": ["frame0001.jpg", ...],
        "segmentations": [{"<track id>": {"rle": "<COCO RLE counts>", "score"?: s}, ...},
                          ... one dict per annotated image],
        "track_category_ids": {"<track id>": category, ...},      # ground truth
        "neg_category_ids"?: [...], "not_exhaustive_category_ids"?: [...]}, ...]}

The RLE ``counts`` are COCO compressed strings (utf-8) of an H×W mask. Sequences are matched by
(dataset, seq_name) and frames by image-name stem; predicted frames without ground truth are
skipped (results may have a higher frame rate) and gt frames without a prediction have no
detections. A gt sequence missing from the results, or a results sequence not in the gt, is an
error unless ``subset`` (then the sequences present in both are scored, and the report says so).

Protocol (the toolkit's bundled TrackEval, ``BURST_OW`` on ``burst_ow_base``): class-agnostic;
gt tracks of the 45 TAO-OW distractor categories are dropped; ``common`` keeps gt tracks of the 78
TAO categories that are COCO classes, ``uncommon`` the rest, ``all`` everything; at most
``max_detections`` (300) predictions per frame, highest score first (score 1 when absent). The
similarity is the IoU of each mask's bounding box (``iou="box"``): ``_load_raw_file`` fills the
detections with the annotations' ``bbox`` (``pycocotools.mask.toBbox`` of the RLE), so every
published BURST number is box IoU; ``iou="mask"`` is the intended mask IoU. Per frame and split,
predictions are dropped as the toolkit's preprocessing does: all of them on a frame without gt
of the split, and the ones left unmatched (Hungarian on IoU ≥ 0.5) in a sequence whose
``not_exhaustive_category_ids`` holds the category being evaluated. The toolkit evaluates every
detection as category 1 (``CLASS_AGNOSTIC_ID``), so that list applies when it contains 1;
``neg_category_ids`` has no effect (the toolkit never sees a prediction on a frame without gt).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

from deva.errors import DevaError
from deva.eval.hota import HotaFrame, HotaStats, combine, hota_stats
from deva.eval.selection import select
from deva.io import rle
from deva.io.json_file import read_json

SPLITS: tuple[str, ...] = ("all", "common", "uncommon")

Iou = Literal["box", "mask"]
IOUS: tuple[str, ...] = ("box", "mask")

CLASS_AGNOSTIC_ID = 1
"""The class id the toolkit gives every detection in the open-world task; the per-sequence
``neg_category_ids`` / ``not_exhaustive_category_ids`` are tested against it."""

_EPS = np.finfo(float).eps

COMMON_CATEGORY_IDS = frozenset(
    # TAO/LVIS ids of the 78 COCO classes present in TAO ("known" in TAO-OW; BURST "common").
    {4, 13, 34, 35, 36, 41, 45, 58, 60, 78, 79, 81, 91, 95, 99, 118, 126, 133, 139, 154, 174, 185,
     211, 221, 229, 235, 237, 276, 299, 347, 371, 382, 392, 428, 429, 452, 475, 480, 502, 544, 579,
     621, 625, 642, 699, 714, 717, 729, 747, 779, 805, 829, 852, 896, 926, 937, 961, 979, 980, 982,
     993, 1001, 1018, 1038, 1057, 1091, 1097, 1099, 1115, 1117, 1122, 1132, 1135, 1144, 1155, 1162,
     1215, 1229}
)  # fmt: skip

DISTRACTOR_CATEGORY_IDS = frozenset(
    # Categories left out of open-world evaluation ("Opening up Open-World Tracking").
    {20, 63, 108, 180, 188, 204, 212, 247, 303, 403, 407, 415, 490, 504, 507, 513, 529, 567, 569,
     588, 672, 691, 702, 708, 711, 720, 736, 737, 798, 813, 815, 827, 831, 851, 877, 883, 912, 971,
     976, 1130, 1133, 1134, 1169, 1184, 1220}
)  # fmt: skip


@dataclass(frozen=True)
class BurstSequenceScore:
    """HOTA statistics of one sequence per split."""

    name: str
    num_frames: int
    num_gt_tracks: int
    num_pred_tracks: int
    stats: dict[str, HotaStats]


@dataclass(frozen=True)
class BurstReport:
    """Per-sequence scores; split totals combine sequences as TrackEval does. ``notes`` are the
    header lines: the convention reproduced and which sequences were scored."""

    sequences: tuple[BurstSequenceScore, ...]
    iou: str = "box"
    notes: tuple[str, ...] = ()

    def total(self, split: str = "all") -> HotaStats:
        return combine(s.stats[split] for s in self.sequences)

    def summary(self) -> dict[str, dict[str, float]]:
        """split → {OWTA, HOTA, DetA, AssA, DetRe, DetPr, LocA} in percent."""
        fields = ("OWTA", "HOTA", "DetA", "AssA", "DetRe", "DetPr", "LocA")
        return {split: {f: 100 * self.total(split).score(f) for f in fields} for split in SPLITS}

    def to_markdown(self) -> str:
        """Header, per-sequence table (all categories), then OWTA / HOTA per split."""
        lines = [
            f"BURST open-world tracking (class-agnostic, {self.iou} IoU)",
            *self.notes,
            "",
            "| Sequence | Frames | GT tracks | Pred tracks | OWTA | HOTA | DetRe | AssA |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in self.sequences:
            st = s.stats["all"]
            lines.append(
                f"| {s.name} | {s.num_frames} | {s.num_gt_tracks} | {s.num_pred_tracks} | "
                f"{_pct(st, 'OWTA')} | {_pct(st, 'HOTA')} | {_pct(st, 'DetRe')} | "
                f"{_pct(st, 'AssA')} |"
            )
        lines += [
            "",
            "| Split | GT dets | OWTA | HOTA | DetA | AssA | DetRe | DetPr |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for split in SPLITS:
            st = self.total(split)
            lines.append(
                f"| {split} | {st.num_gt_detections} | **{_pct(st, 'OWTA')}** | "
                f"{_pct(st, 'HOTA')} | {_pct(st, 'DetA')} | {_pct(st, 'AssA')} | "
                f"{_pct(st, 'DetRe')} | {_pct(st, 'DetPr')} |"
            )
        return "\n".join(lines) + "\n"


def _pct(stats: HotaStats, field: str) -> str:
    value = stats.score(field)
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}"


def split_of(category_id: int) -> str | None:
    """``common``, ``uncommon``, or None for a distractor category (not evaluated)."""
    if category_id in DISTRACTOR_CATEGORY_IDS:
        return None
    return "common" if category_id in COMMON_CATEGORY_IDS else "uncommon"


def box_iou(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(G, P) IoU of (G, 4) and (P, 4) ``[x, y, w, h]`` boxes (pycocotools' ``bbIou``, no
    crowd): 0 where the boxes do not overlap, so also for an empty mask's ``[0, 0, 0, 0]``."""
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    w = np.minimum(gt[:, None, 0] + gt[:, None, 2], pred[None, :, 0] + pred[None, :, 2])
    w = w - np.maximum(gt[:, None, 0], pred[None, :, 0])
    h = np.minimum(gt[:, None, 1] + gt[:, None, 3], pred[None, :, 1] + pred[None, :, 3])
    h = h - np.maximum(gt[:, None, 1], pred[None, :, 1])
    inter = np.where((w > 0) & (h > 0), w * h, 0.0)
    union = (gt[:, 2] * gt[:, 3])[:, None] + (pred[:, 2] * pred[:, 3])[None, :] - inter
    return np.where(inter > 0, inter / np.where(inter > 0, union, 1.0), 0.0)


def kept_predictions(similarity: np.ndarray, *, not_exhaustive: bool = False) -> np.ndarray:
    """Which predictions of a frame the toolkit's preprocessing keeps, given their (G, P)
    similarity to the frame's gt of the evaluated split.

    On a frame without gt none (the toolkit skips detections on images without gt annotations,
    so a sequence's ``neg_category_ids`` never matter); if the class is not exhaustively
    labelled, those not matched to a gt (Hungarian on the similarity with values below 0.5 set
    to 0, a pair matched when above 0) are dropped.
    """
    num_gt, num_pred = similarity.shape
    if num_gt == 0:
        return np.zeros(num_pred, dtype=bool)
    if not not_exhaustive or num_pred == 0:
        return np.ones(num_pred, dtype=bool)
    scores = np.where(similarity < 0.5 - _EPS, 0.0, similarity)
    rows, cols = linear_sum_assignment(-scores)
    keep = np.zeros(num_pred, dtype=bool)
    keep[cols[scores[rows, cols] > _EPS]] = True
    return keep


def evaluate_burst(
    results_file: str | Path,
    gt_file: str | Path,
    *,
    max_detections: int = 300,
    iou: Iou = "box",
    subset: bool = False,
) -> BurstReport:
    """Score a BURST-layout results JSON against the BURST gt JSON (open-world protocol).

    iou: ``box`` (the toolkit's, default) or ``mask`` (the intended definition).
    subset: score only the gt sequences present in the results instead of stopping when some
        are missing or when a results sequence is not in the gt.
    """
    if iou not in IOUS:
        raise DevaError(f"unknown IoU {iou!r}; choose one of {', '.join(IOUS)}")
    mask_utils = rle.mask_api("BURST evaluation", extra="eval")

    results_file, gt_file = Path(results_file), Path(gt_file)
    gt_data = read_json(gt_file)
    gt = _sequences(gt_data, gt_file)
    if not gt:
        raise DevaError(f"{gt_file}: no sequences")
    pred_data = read_json(results_file)
    pred = _sequences(pred_data, results_file)
    splits = (gt_data.get("split"), pred_data.get("split"))
    if None not in splits and splits[0] != splits[1]:
        raise DevaError(
            f"{results_file}: results of split {splits[1]!r}, but {gt_file} is split {splits[0]!r}"
        )
    pred_by_key: dict[tuple[str, str], dict] = {}
    for seq in pred:
        key = _key(seq, results_file)
        if key in pred_by_key:
            raise DevaError(f"{results_file}: sequence {key[0]}/{key[1]} appears twice")
        pred_by_key[key] = seq
    gt_keys = [_key(s, gt_file) for s in gt]
    chosen = select(
        [f"{d}/{s}" for d, s in gt_keys],
        {f"{d}/{s}" for d, s in pred_by_key},
        results=str(results_file),
        source="the ground truth",
        subset=subset,
        hint="; the toolkit scores a missing sequence as empty: list it with empty frames for that",
    )

    scores = []
    not_exhaustive_count = 0
    for seq, key in zip(gt, gt_keys, strict=True):
        if f"{key[0]}/{key[1]}" not in chosen.names:
            continue
        where = f"{gt_file} (sequence {key[0]}/{key[1]})"
        height, width = _size(seq, where)
        paths, gt_frames = _frames(seq, where)
        categories = _track_categories(seq, where)
        not_exhaustive = CLASS_AGNOSTIC_ID in _id_list(seq, "not_exhaustive_category_ids", where)
        not_exhaustive_count += not_exhaustive
        pwhere = f"{results_file} (sequence {key[0]}/{key[1]})"
        ppaths, pframes = _frames(pred_by_key[key], pwhere)
        pred_frames = {Path(p).stem: f for p, f in zip(ppaths, pframes, strict=True)}
        per_split: dict[str, list[HotaFrame]] = {s: [] for s in SPLITS}
        gt_tracks: set[str] = set()
        pred_tracks: set[str] = set()
        for path, gt_frame in zip(paths, gt_frames, strict=True):
            frame_where = f"{where}, image {path}"
            gt_rles, gt_ids, gt_splits = [], [], []
            for tid, det in gt_frame.items():
                if tid not in categories:
                    raise DevaError(f"{frame_where}: track {tid} has no track_category_ids entry")
                split = split_of(categories[tid])
                if split is None:
                    continue
                gt_rles.append(_rle(det, height, width, frame_where, tid))
                gt_ids.append(_track_number(tid, frame_where))
                gt_splits.append(split)
                gt_tracks.add(tid)
            dets = pred_frames.get(Path(path).stem, {})
            ranked = sorted(dets.items(), key=lambda kv: -_score(kv[1], frame_where, kv[0]))
            ranked = ranked[:max_detections] if max_detections > 0 else ranked
            p_where = f"{pwhere}, image {path}"
            pred_rles = [_rle(det, height, width, p_where, tid) for tid, det in ranked]
            pred_ids = np.array([_track_number(t, p_where) for t, _ in ranked], dtype=np.int64)
            pred_tracks.update(t for t, _ in ranked)
            similarity = _similarity(mask_utils, gt_rles, pred_rles, iou)
            gt_ids_arr = np.array(gt_ids, dtype=np.int64)
            for split in SPLITS:
                rows = np.array([split in ("all", s) for s in gt_splits], dtype=bool)
                sim = similarity[rows]
                cols = kept_predictions(sim, not_exhaustive=not_exhaustive)
                per_split[split].append(HotaFrame(gt_ids_arr[rows], pred_ids[cols], sim[:, cols]))
        scores.append(
            BurstSequenceScore(
                name=f"{key[0]}/{key[1]}",
                num_frames=len(paths),
                num_gt_tracks=len(gt_tracks),
                num_pred_tracks=len(pred_tracks),
                stats={split: hota_stats(frames) for split, frames in per_split.items()},
            )
        )
    notes = (_describe(iou, not_exhaustive_count), chosen.header)
    return BurstReport(tuple(scores), iou=iou, notes=notes)


def _similarity(
    mask_utils: Any, gt_rles: list[dict], pred_rles: list[dict], iou: str
) -> np.ndarray:
    if not gt_rles or not pred_rles:
        return np.zeros((len(gt_rles), len(pred_rles)))
    if iou == "box":
        # The toolkit's format converter stores [int(v) for v in toBbox(rle)].
        gt_boxes = np.floor(mask_utils.toBbox(gt_rles))
        pred_boxes = np.floor(mask_utils.toBbox(pred_rles))
        return box_iou(gt_boxes, pred_boxes)
    overlaps = mask_utils.iou(gt_rles, pred_rles, [False] * len(pred_rles))
    return np.asarray(overlaps).reshape(len(gt_rles), len(pred_rles))


def _describe(iou: str, not_exhaustive: int) -> str:
    """The header line naming the convention, and how many sequences the category list hits."""
    if iou == "box":
        source = "BURST toolkit open-world (its TrackEval): IoU of the masks' bounding boxes"
    else:
        source = "not the toolkit's: mask IoU (the toolkit uses the masks' bounding boxes)"
    return (
        f"Convention: {source}; unmatched predictions dropped in {not_exhaustive} sequence(s) "
        f"whose not_exhaustive_category_ids hold class {CLASS_AGNOSTIC_ID} (the toolkit's "
        "class-agnostic rule), predictions on frames without gt dropped."
    )


def _id_list(seq: dict, field: str, where: str) -> set[int]:
    try:
        return {int(v) for v in seq.get(field) or []}
    except (TypeError, ValueError, OverflowError) as err:
        raise DevaError(f"{where}: '{field}' must be a list of category ids") from err


def _sequences(data: Any, path: Path) -> list[dict]:
    if not isinstance(data, dict) or not isinstance(data.get("sequences"), list):
        raise DevaError(f"{path}: not the BURST layout (needs a top-level 'sequences' list)")
    for i, seq in enumerate(data["sequences"]):
        if not isinstance(seq, dict):
            raise DevaError(f"{path}: sequences[{i}] is not an object")
    return data["sequences"]


def _key(seq: dict, path: Path) -> tuple[str, str]:
    try:
        return str(seq["dataset"]), str(seq["seq_name"])
    except KeyError as err:
        raise DevaError(f"{path}: every sequence needs 'dataset' and 'seq_name' ({err})") from err


def _size(seq: dict, where: str) -> tuple[int, int]:
    try:
        height, width = int(seq["height"]), int(seq["width"])
    except (KeyError, TypeError, ValueError, OverflowError) as err:  # inf sizes
        raise DevaError(f"{where}: needs integer 'height' and 'width' ({err!r})") from err
    if height <= 0 or width <= 0:
        raise DevaError(f"{where}: height and width must be positive")
    return height, width


def _frames(seq: dict, where: str) -> tuple[list[str], list[dict[str, dict]]]:
    paths = seq.get("annotated_image_paths")
    frames = seq.get("segmentations")
    if not isinstance(paths, list) or not isinstance(frames, list):
        raise DevaError(f"{where}: needs 'annotated_image_paths' and 'segmentations' lists")
    if len(paths) != len(frames):
        raise DevaError(
            f"{where}: {len(paths)} annotated_image_paths but {len(frames)} segmentations"
        )
    for path, frame in zip(paths, frames, strict=True):
        if not isinstance(frame, dict) or not all(isinstance(d, dict) for d in frame.values()):
            raise DevaError(
                f"{where}, image {path}: a segmentation entry must map track id to {{rle, ...}}"
            )
    return [str(p) for p in paths], frames


def _track_categories(seq: dict, where: str) -> dict[str, int]:
    try:
        return {str(k): int(v) for k, v in seq["track_category_ids"].items()}
    except (KeyError, AttributeError, TypeError, ValueError, OverflowError) as err:
        raise DevaError(f"{where}: needs 'track_category_ids' {{track id: category}}") from err


def _track_number(tid: str, where: str) -> int:
    try:
        return int(tid)
    except ValueError as err:
        raise DevaError(f"{where}: track id {tid!r} is not an integer") from err


def _score(det: dict, where: str, tid: str) -> float:
    try:
        return float(det.get("score", 1.0))
    except (TypeError, ValueError) as err:
        raise DevaError(f"{where}: track {tid} has a non-numeric score") from err


def _rle(det: dict, height: int, width: int, where: str, tid: str) -> dict:
    counts = det.get("rle")
    if not isinstance(counts, str):
        raise DevaError(f"{where}: track {tid} needs an 'rle' string (COCO compressed counts)")
    total = sum(rle.decode_runs(counts, f"{where}: track {tid}'s RLE"))
    if total != height * width:
        raise DevaError(f"{where}: track {tid}'s RLE covers {total} pixels, not {height}x{width}")
    return {"counts": counts, "size": [height, width]}
