"""BURST open-world tracking (spec §4.2, §4.5): track every sequence from precomputed detections
and write per-sequence JSON with COCO RLE masks, then merge them into the BURST GT-json layout
that the official toolkit evaluates.

Input:  ``IMAGES/<dataset>/<seq>/<frame>.jpg`` (already subsampled every 3rd frame, as in the
        paper, or subsampled here with ``subsample_every=3``); detections
        ``DETS/<dataset>/<seq>/<frame>.png`` + JSON with scores.
Output: ``OUT/<dataset>/<seq>/<frame>.png`` (RGB ids) and ``OUT/<dataset>/<seq>/pred.json``:
        ``{"dataset", "seq_name", "segmentations": [{"file_name", "segmentations":
        [{"id", "score", "category_id", "rle": {"size", "counts"}}]}]}``, one entry per frame.
        With a GT json: ``OUT/burst_predictions.json``, the GT file whose sequences'
        ``segmentations`` (one {track id: {"rle", "score"}} per annotated frame) and
        ``track_category_ids`` are replaced by ours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deva.config import TrackerConfig
from deva.errors import DevaError
from deva.io import rle
from deva.io.atomic import ensure_writable_dir
from deva.io.json_file import read_json
from deva.propagation.base import Propagator
from deva.tasks.dataset import Detections, Progress, open_video, track_videos
from deva.tasks.outputs import write_json, write_rgb_ids
from deva.types import FrameResult, ObjectInfo

__all__ = ["MERGED", "merge_burst", "read_gt_sequences", "run_burst"]

MERGED = "burst_predictions.json"


def run_burst(
    images: str | Path,
    detections: str | Path,
    output: str | Path,
    *,
    propagator: Propagator,
    config: TrackerConfig | None = None,
    subsample_every: int = 1,
    gt_json: str | Path | None = None,
    allow_missing: bool = False,
    progress: Progress | None = None,
) -> int:
    """Track every sequence (those of ``gt_json`` if given, else every ``<dataset>/<seq>``
    folder of the detections); with ``gt_json`` also write the merged file. Returns frames."""
    images, output = Path(images), ensure_writable_dir(output)
    dets = Detections(detections, allow_missing=allow_missing)
    names = dets.videos(depth=2)
    if gt_json is not None:
        names = [f"{s['dataset']}/{s['seq_name']}" for s in read_gt_sequences(gt_json)]
    videos = [open_video(images, name, every=subsample_every) for name in names]
    written = 0
    config = config or TrackerConfig()
    for video, results in track_videos(videos, dets.segmenter, propagator, config, progress):
        folder = ensure_writable_dir(output / video.name)
        records = []
        for result in results:
            write_rgb_ids(folder / f"{result.name}.png", result.ids)
            records.append(_frame_record(video.file_name(result.frame_index), result))
        dataset, seq_name = video.name.split("/", 1)
        write_json(
            folder / "pred.json",
            {"dataset": dataset, "seq_name": seq_name, "segmentations": records},
        )
        written += len(records)
    if gt_json is not None:
        merge_burst(gt_json, output, output / MERGED)
    return written


def _frame_record(file_name: str, result: FrameResult) -> dict[str, Any]:
    segmentations = [
        {
            "id": obj.id,
            "score": obj.score,
            "category_id": obj.category_id,
            "rle": _object_rle(result, obj),
        }
        for obj in result.objects
        if obj.area > 0
    ]
    return {"file_name": file_name, "segmentations": segmentations}


def _object_rle(result: FrameResult, obj: ObjectInfo) -> dict[str, Any]:
    """COCO RLE of one object, from its box (thousands of objects per frame stay cheap)."""
    x, y, width, height = obj.bbox
    crop = result.ids[y : y + height, x : x + width] == obj.id
    return rle.encode_crop(crop, x, y, *result.ids.shape)


def read_gt_sequences(gt_json: str | Path) -> list[dict[str, Any]]:
    """The ``sequences`` of a BURST annotation file, checked for the keys we use."""
    path = Path(gt_json)
    return _checked_sequences(read_json(path), path)


def _checked_sequences(raw: Any, path: Path) -> list[dict[str, Any]]:
    sequences = raw.get("sequences") if isinstance(raw, dict) else None
    if not isinstance(sequences, list):
        raise DevaError(f"{path}: not a BURST annotation file (no 'sequences' list)")
    for position, sequence in enumerate(sequences):
        missing = [
            key
            for key in ("dataset", "seq_name", "annotated_image_paths")
            if not isinstance(sequence, dict) or key not in sequence
        ]
        if missing:
            raise DevaError(f"{path}: sequence {position} lacks {', '.join(missing)}")
    return sequences


def merge_burst(gt_json: str | Path, results: str | Path, output: str | Path) -> None:
    """Write the GT file with every sequence's ``segmentations`` and ``track_category_ids``
    replaced by the tracked ones from ``results/<dataset>/<seq>/pred.json``.

    Frames are matched by file stem (not by position), so results may contain more frames
    than are annotated; an annotated frame with no result is an error.
    """
    gt_path, results = Path(gt_json), Path(results)
    merged = read_json(gt_path)
    for sequence in _checked_sequences(merged, gt_path):
        pred_path = results / sequence["dataset"] / sequence["seq_name"] / "pred.json"
        frames = _prediction_frames(pred_path)
        segmentations, categories = [], {}
        for image_path in sequence["annotated_image_paths"]:
            stem = Path(image_path).stem
            if stem not in frames:
                raise DevaError(
                    f"{pred_path}: no result for annotated frame {image_path!r}; every "
                    "annotated frame must be tracked (check the subsampling)"
                )
            tracks = {}
            for segment in frames[stem]:
                track = str(segment["id"])
                tracks[track] = {"rle": segment["rle"]["counts"]}
                if segment.get("score") is not None:  # no score: omitted, not null
                    tracks[track]["score"] = segment["score"]
                if segment.get("category_id") is not None or track not in categories:
                    categories[track] = segment.get("category_id") or 0
            segmentations.append(tracks)
        sequence["segmentations"] = segmentations
        sequence["track_category_ids"] = categories
    write_json(output, merged)


def _prediction_frames(path: Path) -> dict[str, list[dict[str, Any]]]:
    raw = read_json(path)
    frames = raw.get("segmentations") if isinstance(raw, dict) else None
    if not isinstance(frames, list):
        raise DevaError(f"{path}: expected {{'segmentations': [...]}} (deva's BURST output)")
    out = {}
    for position, frame in enumerate(frames):
        try:
            segments = frame["segmentations"]
            for segment in segments:
                segment["id"], segment["rle"]["counts"]  # noqa: B018 - presence check
            out[Path(frame["file_name"]).stem] = segments
        except (KeyError, TypeError) as err:
            raise DevaError(f"{path}: frame {position} is malformed (missing {err})") from None
    return out
