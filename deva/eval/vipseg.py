"""VIPSeg video panoptic evaluation: VPQ (``deva.eval.vpq``) and STQ (``deva.eval.stq``) over a
results folder in the official submission layout.

Ground truth (the VIPSeg toolkit's converted layout, ``VIPSeg_720P``):

* ``<gt>/panomasksRGB/<video>/<frame>.png`` (or ``<gt>/<video>/<frame>.png``): RGB panoptic ids,
  id = R + 256·G + 65536·B, 0 = VOID;
* a JSON (``--gt-json``; default the one ``panoptic_gt_VIPSeg_*.json`` in ``<gt>`` or its parent):
  ``{"categories": [{"id", "isthing", ...}], "videos": [{"video_id", "images": [{"file_name"}]}],
  "annotations": [{"video_id", "annotations": [{"segments_info": [{"id", "category_id",
  "iscrowd"?}]}, ...one per image]}]}``.

Results (what ``deva track --task vipseg`` writes, spec §4.3):

* ``<results>/pan_pred/<video>/<frame>.png``: RGB ids, named like the gt PNGs (the gt
  ``file_name`` with a ``.png`` suffix);
* ``<results>/pred.json``: ``{"annotations": [{"video_id", "annotations": [{"file_name"?,
  "segments_info": [{"id", "category_id", ...}]}, ...]}]}``. Frames are matched to the gt frames
  by ``file_name`` stem when given, otherwise by position. Every non-zero id in a PNG must be
  listed in its frame's ``segments_info``; an id must keep one category over the video.

STQ labels follow the toolkit: class = category, instance = order of first appearance of the id in
the video's JSON, unlisted pixels are the ignore class. Deliberate difference: instances are
numbered from 1 (the toolkit numbers from 0, which makes the video's first listed segment, if a
thing, count as crowd in deeplab2's STQ); gt segments with ``iscrowd`` get instance 0 (crowd).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deva.errors import DevaError
from deva.eval.selection import listing, select
from deva.eval.stq import BIT_SHIFT, IGNORE_LABEL, STQStats, stq_result, stq_stats_from_counts
from deva.eval.vpq import (
    DEFAULT_SUMMARY,
    DEFAULT_WINDOWS,
    SHORT_VIDEOS,
    SUMMARIES,
    VOID,
    WHOLE_VIDEO,
    PairTable,
    SegmentInfo,
    ShortVideos,
    VPQResult,
    vpq_from_table,
)
from deva.io.json_file import read_json
from deva.io.masks import read_id_png


@dataclass(frozen=True)
class VipsegVideoScore:
    """One video's VPQ counts and STQ statistics."""

    name: str
    num_frames: int
    vpq: VPQResult
    stq: STQStats


@dataclass(frozen=True)
class VipsegReport:
    """Per-video scores; the dataset numbers pool the counts of all videos (as the toolkit).

    windows: the per-window VPQs shown, with ``short_videos`` for videos shorter than a window;
    notes: header lines (the conventions, and which videos were scored).
    """

    videos: tuple[VipsegVideoScore, ...]
    windows: tuple[int, ...]
    short_videos: ShortVideos = "whole"
    notes: tuple[str, ...] = ()

    @property
    def pooled_vpq(self) -> VPQResult:
        total = self.videos[0].vpq
        for video in self.videos[1:]:
            total = total + video.vpq
        return total

    def summary(self) -> dict[str, float]:
        """In percent: VPQ (all / thing / stuff) by the default summary (DEVA paper), the same as
        VPQ_vipseg* by the VIPSeg toolkit's, per-window VPQ^k, and STQ / AQ / SQ."""
        pooled = self.pooled_vpq
        stq = stq_result([v.stq for v in self.videos])
        out = {}
        for name in SUMMARIES:
            key = "VPQ" if name == DEFAULT_SUMMARY else f"VPQ_{name}"
            out[key] = 100 * pooled.summary(name)
            out[f"{key}_th"] = 100 * pooled.summary(name, True)
            out[f"{key}_st"] = 100 * pooled.summary(name, False)
        for k in self.windows:
            out[f"VPQ^{_window_name(k)}"] = 100 * pooled.window(k, None, self.short_videos).pq
        out.update(STQ=100 * stq.stq, AQ=100 * stq.aq, SQ=100 * stq.sq)
        return out

    def to_markdown(self) -> str:
        """Header, per-video table (VPQ, STQ), the pooled dataset line, both summary VPQs and the
        per-window VPQs."""
        short = {"whole": "scored as one whole-clip window (DEVA)", "skip": "skipped (VIPSeg)"}
        lines = [
            "VIPSeg video panoptic segmentation",
            f"Convention: VPQ = {SUMMARIES[DEFAULT_SUMMARY].source} (default; the "
            "VIPSeg toolkit's summary is printed below).",
            f"Per-window VPQ^k: a video shorter than k frames is {short[self.short_videos]}.",
            "STQ: deeplab2's formula as VIPSeg's eval_stq_vspw.py, but instances numbered from 1 "
            "(the toolkit numbers from 0, so a video's first listed segment, if a thing, drops "
            "out of its AQ as crowd).",
            *self.notes,
            "",
            "| Video | Frames | VPQ | VPQ th | VPQ st | STQ | AQ | SQ |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for v in self.videos:
            s = stq_result([v.stq])
            lines.append(
                f"| {v.name} | {v.num_frames} | {_pct(v.vpq.summary())} | "
                f"{_pct(v.vpq.summary(isthing=True))} | {_pct(v.vpq.summary(isthing=False))} | "
                f"{_pct(s.stq)} | {_pct(s.aq)} | {_pct(s.sq)} |"
            )
        pooled = self.pooled_vpq
        total = stq_result([v.stq for v in self.videos])
        frames = sum(v.num_frames for v in self.videos)
        lines.append(
            f"| **All ({len(self.videos)})** | {frames} | **{_pct(pooled.summary())}** | "
            f"{_pct(pooled.summary(isthing=True))} | {_pct(pooled.summary(isthing=False))} | "
            f"**{_pct(total.stq)}** | {_pct(total.aq)} | {_pct(total.sq)} |"
        )
        lines += ["", "| Summary | VPQ | VPQ th | VPQ st |", "|---|---:|---:|---:|"]
        for name, conv in SUMMARIES.items():
            default = " (default)" if name == DEFAULT_SUMMARY else ""
            lines.append(
                f"| {conv.source}{default} | {_pct(pooled.summary(name))} | "
                f"{_pct(pooled.summary(name, True))} | {_pct(pooled.summary(name, False))} |"
            )
        lines += ["", "| Window | VPQ | VPQ th | VPQ st |", "|---|---:|---:|---:|"]
        for k in self.windows:
            row = [pooled.window(k, t, self.short_videos).pq for t in (None, True, False)]
            lines.append(f"| {_window_name(k)} | {' | '.join(_pct(v) for v in row)} |")
        return "\n".join(lines) + "\n"


def _window_name(k: int) -> str:
    return "∞" if k >= WHOLE_VIDEO else str(k)


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}"


def evaluate_vipseg(
    results_dir: str | Path,
    gt_dir: str | Path,
    *,
    gt_json: str | Path | None = None,
    videos: Sequence[str] | None = None,
    subset: bool = False,
    windows: Sequence[int] = DEFAULT_WINDOWS,
    short_videos: ShortVideos = "whole",
) -> VipsegReport:
    """Score ``results_dir`` (``pred.json`` + ``pan_pred/``) against the VIPSeg ground truth.

    videos: the gt videos to score (default: all of them; each must have results, and every
        video of ``pred.json`` must be in the gt, unless ``subset``: then the gt videos with
        results are scored and the report says which were left out).
    windows: VPQ window lengths in frames shown per window (999 = the whole clip); the windows
        of both summaries are evaluated in any case.
    short_videos: the per-window table's convention for a video shorter than a window.
    """
    if short_videos not in SHORT_VIDEOS:
        raise DevaError(
            f"unknown short-video convention {short_videos!r}; choose {', '.join(SHORT_VIDEOS)}"
        )
    if not windows:
        raise DevaError("no VPQ windows given")
    if min(windows) < 1:
        raise DevaError(f"VPQ windows must be >= 1 frame, got {min(windows)}")
    results_dir = Path(results_dir)
    gt_dir = Path(gt_dir)
    if not results_dir.is_dir():
        raise DevaError(f"{results_dir}: results folder not found")
    if not gt_dir.is_dir():
        raise DevaError(f"{gt_dir}: ground-truth folder not found")
    masks_dir = gt_dir / "panomasksRGB" if (gt_dir / "panomasksRGB").is_dir() else gt_dir
    gt_json_path = Path(gt_json) if gt_json is not None else _find_gt_json(gt_dir)
    gt = read_json(gt_json_path)
    things = _categories(gt, gt_json_path)
    gt_videos = _gt_videos(gt, gt_json_path)

    pred_json_path = results_dir / "pred.json"
    pred_frames = _pred_annotations(read_json(pred_json_path), pred_json_path)
    pan_pred = results_dir / "pan_pred"
    if not pan_pred.is_dir():
        raise DevaError(f"{pan_pred}: prediction PNG folder not found")

    if videos is None:
        if not gt_videos:
            raise DevaError(f"{gt_json_path}: no videos to evaluate")
        chosen = select(
            list(gt_videos),
            set(pred_frames),
            results=str(pred_json_path),
            source=str(gt_json_path),
            subset=subset,
            noun="video",
        )
        names, scope = list(chosen.names), chosen.header
    else:
        names = list(videos)
        if not names:
            raise DevaError(f"{gt_json_path}: no videos to evaluate")
        for name in names:
            if name not in gt_videos:
                raise DevaError(f"{gt_json_path}: video {name!r} not in the ground truth")
            if name not in pred_frames:
                raise DevaError(f"{pred_json_path}: no predictions for video {name!r}")
        scope = f"Videos: {len(names)} chosen of {len(gt_videos)} ({listing(names)})."
    num_classes = max(things) + 1
    thing_ids = [c for c, t in things.items() if t]
    if num_classes > IGNORE_LABEL:
        raise DevaError(f"{gt_json_path}: category ids must be below {IGNORE_LABEL} for STQ")
    needed = {WHOLE_VIDEO, *(k for conv in SUMMARIES.values() for k in conv.windows)}
    evaluated = tuple(sorted(set(windows) | needed))

    scores = []
    for name in names:
        files, gt_infos = gt_videos[name]
        pred_infos = _match_frames(name, files, pred_frames[name], pred_json_path)
        gt_segments = _video_segments(gt_infos, f"{gt_json_path} (video {name!r})")
        pred_segments = _video_segments(pred_infos, f"{pred_json_path} (video {name!r})")
        table = PairTable(_read_pairs(masks_dir / name, pan_pred / name, files, pred_infos))
        result = vpq_from_table(table, gt_segments, pred_segments, things, evaluated)
        gt_labels = _stq_labels(table.gt_ids, gt_infos, gt_segments, crowd_aware=True)
        pred_labels = _stq_labels(table.pred_ids, pred_infos, pred_segments, crowd_aware=False)
        whole = table.window(0, table.num_frames)
        rows, cols = np.nonzero(whole)
        stats = stq_stats_from_counts(
            gt_labels[rows],
            pred_labels[cols],
            whole[rows, cols],
            num_frames=table.num_frames,
            num_classes=num_classes,
            things=thing_ids,
        )
        scores.append(VipsegVideoScore(name, table.num_frames, result, stats))
    longest = max(k for k in windows if k < WHOLE_VIDEO) if min(windows) < WHOLE_VIDEO else 0
    shorter = sum(v.num_frames < longest for v in scores)
    notes = [scope]
    if shorter:
        notes.append(f"{shorter} video(s) have fewer frames than the longest window ({longest}).")
    return VipsegReport(tuple(scores), tuple(windows), short_videos, tuple(notes))


def _find_gt_json(gt_dir: Path) -> Path:
    for folder in (gt_dir, gt_dir.parent):
        found = sorted(folder.glob("panoptic_gt_VIPSeg_*.json"))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise DevaError(
                f"{folder}: several panoptic_gt_VIPSeg_*.json files; choose one with --gt-json"
            )
    raise DevaError(
        f"{gt_dir}: no panoptic_gt_VIPSeg_*.json found here or in the parent; pass --gt-json"
    )


def _categories(gt: Any, path: Path) -> dict[int, bool]:
    try:
        cats = {int(c["id"]): bool(c["isthing"]) for c in gt["categories"]}
    except (KeyError, TypeError, ValueError, OverflowError) as err:  # inf ids
        raise DevaError(
            f"{path}: 'categories' must be a list of {{id, isthing}} objects ({err!r})"
        ) from err
    if not cats:
        raise DevaError(f"{path}: no categories")
    if min(cats) < 0:
        raise DevaError(f"{path}: category ids must be >= 0")
    return cats


def _gt_videos(gt: Any, path: Path) -> dict[str, tuple[list[str], list[list[dict]]]]:
    """video id → (frame file names, per-frame segments_info)."""
    try:
        annotations = {str(a["video_id"]): a["annotations"] for a in gt["annotations"]}
        out = {}
        for video in gt["videos"]:
            name = str(video["video_id"])
            files = [str(image["file_name"]) for image in video["images"]]
            if name not in annotations:
                raise DevaError(f"{path}: video {name!r} has no entry in 'annotations'")
            frames = annotations[name]
            if len(frames) != len(files):
                raise DevaError(
                    f"{path}: video {name!r} lists {len(files)} images but "
                    f"{len(frames)} annotations"
                )
            out[name] = (files, [_segments_info(f, path) for f in frames])
    except (KeyError, TypeError) as err:
        raise DevaError(
            f"{path}: not the VIPSeg panoptic gt layout (needs 'videos' with 'images' and "
            f"'annotations' with per-frame 'segments_info'; {err!r})"
        ) from err
    return out


def _segments_info(frame: Any, path: Path) -> list[dict]:
    try:
        info = frame["segments_info"]
        return [
            {
                "id": int(s["id"]),
                "category_id": int(s["category_id"]),
                "iscrowd": bool(s.get("iscrowd", 0)),
            }
            for s in info
        ]
    except (KeyError, TypeError, ValueError, OverflowError) as err:  # inf ids
        raise DevaError(
            f"{path}: every frame needs 'segments_info': [{{id, category_id}}, ...] ({err!r})"
        ) from err


def _pred_annotations(pred: Any, path: Path) -> dict[str, list[tuple[str | None, list[dict]]]]:
    """video id → per-frame (file name or None, segments_info)."""
    try:
        out = {}
        for video in pred["annotations"]:
            out[str(video["video_id"])] = [
                (
                    str(f["file_name"]) if f.get("file_name") is not None else None,
                    _segments_info(f, path),
                )
                for f in video["annotations"]
            ]
    except (KeyError, TypeError, AttributeError) as err:
        raise DevaError(
            f"{path}: not the VIPSeg prediction layout (needs 'annotations': [{{video_id, "
            f"annotations: [{{segments_info}}, ...]}}]; {err!r})"
        ) from err
    return out


def _match_frames(
    name: str, files: list[str], pred: list[tuple[str | None, list[dict]]], path: Path
) -> list[list[dict]]:
    if all(f is not None for f, _ in pred):
        by_stem = {Path(f).stem: info for f, info in pred if f is not None}
        missing = [f for f in files if Path(f).stem not in by_stem]
        if missing:
            raise DevaError(f"{path}: video {name!r} has no prediction for frame {missing[0]}")
        return [by_stem[Path(f).stem] for f in files]
    if len(pred) != len(files):
        raise DevaError(
            f"{path}: video {name!r} has {len(pred)} predicted frames without file names for "
            f"{len(files)} gt frames"
        )
    return [info for _, info in pred]


def _video_segments(frames: list[list[dict]], where: str) -> dict[int, SegmentInfo]:
    segments: dict[int, SegmentInfo] = {}
    for info in frames:
        for s in info:
            seg = SegmentInfo(s["category_id"], s["iscrowd"])
            old = segments.setdefault(s["id"], seg)
            if old.category_id != seg.category_id:
                raise DevaError(
                    f"{where}: segment id {s['id']} has category {old.category_id} and "
                    f"{seg.category_id}; an id must keep one category (VIPSeg stuff merging "
                    "gives changed things a new id)"
                )
    return segments


def _read_pairs(
    gt_folder: Path, pred_folder: Path, files: list[str], pred_infos: list[list[dict]]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for file, info in zip(files, pred_infos, strict=True):
        stem = Path(file).stem
        gt = read_id_png(gt_folder / f"{stem}.png")
        pred_path = pred_folder / f"{stem}.png"
        pred = read_id_png(pred_path)
        if pred.shape != gt.shape:
            raise DevaError(f"{pred_path}: size {pred.shape} differs from the gt {gt.shape}")
        listed = {s["id"] for s in info}
        present = np.unique(pred)
        unlisted = [int(i) for i in present.tolist() if i != VOID and i not in listed]
        if unlisted:
            raise DevaError(
                f"{pred_path}: segment id {unlisted[0]} is in the PNG but not in the frame's "
                "segments_info in pred.json"
            )
        yield gt, pred


def _stq_labels(
    ids: np.ndarray,
    frames: list[list[dict]],
    segments: Mapping[int, SegmentInfo],
    *,
    crowd_aware: bool,
) -> np.ndarray:
    """STQ label (class << 16 | instance) for each id; unlisted ids and VOID are ignore."""
    order: dict[int, int] = {}
    for info in frames:
        for s in info:
            order.setdefault(s["id"], len(order) + 1)
    labels = np.empty(len(ids), dtype=np.int64)
    ignore = IGNORE_LABEL << BIT_SHIFT
    for i, sid in enumerate(ids.tolist()):
        seg = segments.get(sid)
        if sid == VOID or seg is None:
            labels[i] = ignore
            continue
        instance = 0 if crowd_aware and seg.iscrowd else order[sid]
        labels[i] = (seg.category_id << BIT_SHIFT) + min(instance, (1 << BIT_SHIFT) - 1)
    return labels
