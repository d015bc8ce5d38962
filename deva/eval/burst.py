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
skipped (results may have a higher frame rate), gt frames without a prediction have no detections,
and a gt sequence missing from the results is scored as empty.

Protocol (TrackEval's BURST open-world dataset): class-agnostic; gt tracks of the 45 TAO-OW
distractor categories are dropped; ``common`` keeps gt tracks of the 78 TAO categories that are
COCO classes, ``uncommon`` the rest, ``all`` everything; at most ``max_detections`` (300)
predictions per frame, highest score first (score 1 when absent); predictions on frames that have
no gt of the evaluated split are dropped. Deliberate difference: the toolkit's class-agnostic code
tests the negative / not-exhaustive category lists against class id 1; deva does not use them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deva.errors import DevaError
from deva.eval.hota import HotaFrame, HotaStats, combine, hota_stats
from deva.io import rle
from deva.io.json_file import read_json

SPLITS: tuple[str, ...] = ("all", "common", "uncommon")

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
    has_prediction: bool


@dataclass(frozen=True)
class BurstReport:
    """Per-sequence scores; split totals combine sequences as TrackEval does."""

    sequences: tuple[BurstSequenceScore, ...]

    def total(self, split: str = "all") -> HotaStats:
        return combine(s.stats[split] for s in self.sequences)

    def summary(self) -> dict[str, dict[str, float]]:
        """split → {OWTA, HOTA, DetA, AssA, DetRe, DetPr, LocA} in percent."""
        fields = ("OWTA", "HOTA", "DetA", "AssA", "DetRe", "DetPr", "LocA")
        return {split: {f: 100 * self.total(split).score(f) for f in fields} for split in SPLITS}

    def to_markdown(self) -> str:
        """Per-sequence table (all categories), then OWTA / HOTA per split."""
        lines = [
            "BURST open-world tracking (class-agnostic, mask IoU)",
            "",
            "| Sequence | Frames | GT tracks | Pred tracks | OWTA | HOTA | DetRe | AssA |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in self.sequences:
            st = s.stats["all"]
            empty = "" if s.has_prediction else " (no results)"
            lines.append(
                f"| {s.name}{empty} | {s.num_frames} | {s.num_gt_tracks} | {s.num_pred_tracks} | "
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
        missing = sum(not s.has_prediction for s in self.sequences)
        if missing:
            lines += ["", f"{missing} sequence(s) had no results and were scored as empty."]
        return "\n".join(lines) + "\n"


def _pct(stats: HotaStats, field: str) -> str:
    value = stats.score(field)
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}"


def split_of(category_id: int) -> str | None:
    """``common``, ``uncommon``, or None for a distractor category (not evaluated)."""
    if category_id in DISTRACTOR_CATEGORY_IDS:
        return None
    return "common" if category_id in COMMON_CATEGORY_IDS else "uncommon"


def evaluate_burst(
    results_file: str | Path,
    gt_file: str | Path,
    *,
    max_detections: int = 300,
) -> BurstReport:
    """Score a BURST-layout results JSON against the BURST gt JSON (open-world protocol)."""
    mask_utils = rle.mask_api("BURST evaluation", extra="eval")

    results_file, gt_file = Path(results_file), Path(gt_file)
    gt = _sequences(read_json(gt_file), gt_file)
    pred = _sequences(read_json(results_file), results_file)
    pred_by_key = {_key(s, results_file): s for s in pred}
    gt_keys = [_key(s, gt_file) for s in gt]
    if not gt:
        raise DevaError(f"{gt_file}: no sequences")
    if pred and not set(pred_by_key) & set(gt_keys):
        raise DevaError(
            f"{results_file}: no sequence matches the ground truth (sequences are matched by "
            "dataset and seq_name)"
        )
    scores = []
    for seq, key in zip(gt, gt_keys, strict=True):
        where = f"{gt_file} (sequence {key[0]}/{key[1]})"
        height, width = _size(seq, where)
        paths, gt_frames = _frames(seq, where)
        categories = _track_categories(seq, where)
        pred_seq = pred_by_key.get(key)
        pred_frames: dict[str, dict[str, dict]] = {}
        pred_tracks: set[str] = set()
        if pred_seq is not None:
            pwhere = f"{results_file} (sequence {key[0]}/{key[1]})"
            ppaths, pframes = _frames(pred_seq, pwhere)
            pred_frames = {Path(p).stem: f for p, f in zip(ppaths, pframes, strict=True)}
        per_split: dict[str, list[HotaFrame]] = {s: [] for s in SPLITS}
        gt_tracks: set[str] = set()
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
            p_where = f"{results_file} (sequence {key[0]}/{key[1]}), image {path}"
            pred_rles = [_rle(det, height, width, p_where, tid) for tid, det in ranked]
            pred_ids = np.array([_track_number(t, p_where) for t, _ in ranked], dtype=np.int64)
            pred_tracks.update(t for t, _ in ranked)
            if gt_rles and pred_rles:
                iou = np.asarray(mask_utils.iou(gt_rles, pred_rles, [False] * len(pred_rles)))
            else:
                iou = np.zeros((len(gt_rles), len(pred_rles)))
            iou = iou.reshape(len(gt_rles), len(pred_rles))
            gt_ids_arr = np.array(gt_ids, dtype=np.int64)
            for split in SPLITS:
                keep = np.array([split in ("all", s) for s in gt_splits], dtype=bool)
                if keep.any():
                    per_split[split].append(HotaFrame(gt_ids_arr[keep], pred_ids, iou[keep]))
                else:
                    empty = np.zeros((0, 0))
                    per_split[split].append(HotaFrame(gt_ids_arr[:0], pred_ids[:0], empty))
        scores.append(
            BurstSequenceScore(
                name=f"{key[0]}/{key[1]}",
                num_frames=len(paths),
                num_gt_tracks=len(gt_tracks),
                num_pred_tracks=len(pred_tracks),
                stats={split: hota_stats(frames) for split, frames in per_split.items()},
                has_prediction=pred_seq is not None,
            )
        )
    return BurstReport(tuple(scores))


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
