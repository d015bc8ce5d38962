"""Convert a ``deva track`` output folder to the formats other tools read: COCO-RLE video JSON
(YouTube-VIS style), MOTS txt (KITTI MOTS / MOTSChallenge) and CVAT for video 1.1 XML.

Every exporter reads the masks/ PNGs one frame at a time and writes its file atomically. Each
track has one category and one score: the object's values on the last frame it appears in
(the tracker's running vote, so the best informed). Objects without a category get the
``object`` category (id 1, or one above the largest known id when other objects have ids).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from deva.errors import DevaError
from deva.io import rle
from deva.io.atomic import atomic_path
from deva.io.masks import read_id_png
from deva.io.paths import why_missing
from deva.io.writer import ANNOTATIONS, INCOMPLETE_ANNOTATIONS

Format = Literal["coco", "mots", "cvat"]
FORMATS: tuple[str, ...] = ("coco", "mots", "cvat")
DEFAULT_NAMES = {"coco": "coco.json", "mots": "mots.txt", "cvat": "cvat.xml"}
UNKNOWN_CATEGORY = "object"
MOTS_CLASS_FACTOR = 1000  # MOTS object id = class_id * 1000 + instance id


@dataclass(frozen=True)
class Track:
    """One object over the whole run: its id, final category and score."""

    id: int
    category_id: int | None
    category: str | None
    score: float | None


@dataclass(frozen=True)
class RunFrame:
    """One output frame: its index, name and (H, W) int32 id map."""

    index: int
    name: str
    ids: np.ndarray


class TrackingRun:
    """A finished ``deva track`` output folder (masks/ + annotations.json), read lazily.
    ``name``: the tracked video's (from annotations.json), else the folder's."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        data = _read_annotations(self.folder)
        records = data["frames"]
        given = data.get("input")
        recorded = given.get("name") if isinstance(given, dict) else None
        self.name = str(recorded) if recorded else self.folder.resolve().name
        self._frames: list[tuple[int, str]] = []
        tracks: dict[int, Track] = {}
        for number, record in enumerate(records):
            try:
                index, name = int(record["frame_index"]), str(record["file_name"])
                for obj in record["objects"]:
                    object_id = int(obj["id"])
                    previous = tracks.get(object_id)
                    category_id = obj.get("category_id")
                    score = obj.get("score")
                    tracks[object_id] = Track(
                        object_id,
                        category_id if category_id is not None else _get(previous, "category_id"),
                        obj.get("category", _get(previous, "category")),
                        score if score is not None else _get(previous, "score"),
                    )
            except (KeyError, TypeError, ValueError, OverflowError) as err:  # inf ids
                raise DevaError(
                    f"{self.folder / ANNOTATIONS}: frame record {number} is malformed ({err!r})"
                ) from err
            mask = self.folder / "masks" / f"{name}.png"
            if not mask.is_file():
                raise DevaError(f"{mask}: missing (annotations.json lists frame {name!r})")
            self._frames.append((index, name))
        if not self._frames:
            raise DevaError(f"{self.folder / ANNOTATIONS}: the run has no frames")
        self.tracks = dict(sorted(tracks.items()))
        first = read_id_png(self.mask_path(self._frames[0][1]))
        self.height, self.width = int(first.shape[0]), int(first.shape[1])

    @property
    def num_frames(self) -> int:
        return len(self._frames)

    @property
    def frame_names(self) -> list[str]:
        return [name for _, name in self._frames]

    def mask_path(self, name: str) -> Path:
        return self.folder / "masks" / f"{name}.png"

    def frames(self) -> Iterator[RunFrame]:
        """Every frame's id map, in order; all must have the first one's size."""
        for index, name in self._frames:
            ids = read_id_png(self.mask_path(name))
            if ids.shape != (self.height, self.width):
                raise DevaError(
                    f"{self.mask_path(name)}: mask is {ids.shape[1]}x{ids.shape[0]}, the first "
                    f"is {self.width}x{self.height}"
                )
            yield RunFrame(index, name, ids)


def read_runs(folder: str | Path) -> list[TrackingRun]:
    """One run for a ``deva track`` output; every video's run for a ``deva batch`` output."""
    root = Path(folder)
    if not root.is_dir():
        raise DevaError(f"{root}: {'not a folder' if root.exists() else why_missing(root)}")
    if (root / ANNOTATIONS).exists() or (root / INCOMPLETE_ANNOTATIONS).exists():
        return [TrackingRun(root)]
    videos = sorted(p.parent for p in root.glob(f"*/{ANNOTATIONS}"))
    if not videos:
        raise DevaError(
            f"{root}: not a deva track output (no {ANNOTATIONS}) nor a deva batch output "
            f"(no <video>/{ANNOTATIONS})"
        )
    return [TrackingRun(v) for v in videos]


def export_results(
    results: str | Path, format: str, output: str | Path | None = None
) -> tuple[Path, int]:
    """Write ``results`` (a run folder; for coco also a batch folder) as ``format``.

    output: the file to write; default ``<results>/coco.json`` / ``mots.txt`` / ``cvat.xml``.
    Returns the file written and the number of videos in it.
    """
    if format not in FORMATS:
        raise DevaError(f"unknown export format {format!r}; available: {', '.join(FORMATS)}")
    runs = read_runs(results)
    if format != "coco" and len(runs) > 1:
        raise DevaError(
            f"{results}: a batch output with {len(runs)} videos; {format} holds one video, so "
            f"export each one, e.g. deva export --format {format} {runs[0].folder}"
        )
    target = Path(output) if output is not None else Path(results) / DEFAULT_NAMES[format]
    if target.is_dir():
        raise DevaError(f"{target}: is a folder; give the file to write with -o")
    if not target.parent.is_dir():
        raise DevaError(f"{target.parent}: the output's folder does not exist")
    with atomic_path(target) as temp:
        if format == "coco":
            temp.write_text(json.dumps(to_coco(runs)), encoding="utf-8")
        elif format == "mots":
            with temp.open("w", encoding="utf-8") as lines:
                for line in mots_lines(runs[0]):
                    lines.write(line + "\n")
        else:
            tree = ET.ElementTree(to_cvat(runs[0]))
            ET.indent(tree)
            tree.write(temp, encoding="utf-8", xml_declaration=True)
    return target, len(runs)


# ---------------------------------------------------------------------------------------------
# COCO-RLE video JSON (YouTube-VIS layout)


def to_coco(runs: Sequence[TrackingRun]) -> dict[str, Any]:
    """YouTube-VIS style: ``videos``, ``categories`` and one annotation per track with
    per-frame ``segmentations`` (COCO compressed RLE, utf-8 counts; None where the object is
    absent), ``areas`` and ``bboxes`` ([x, y, w, h]). Annotation ids run over all videos;
    ``deva_id`` keeps the track's id in its own run."""
    names, unknown = _categories([t for run in runs for t in run.tracks.values()])
    videos: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for video_id, run in enumerate(runs, start=1):
        videos.append(
            {
                "id": video_id,
                "name": run.name,
                "width": run.width,
                "height": run.height,
                "length": run.num_frames,
                "file_names": run.frame_names,
            }
        )
        tracks = run.tracks
        rows: dict[int, dict[str, list]] = {
            t: {"segmentations": [], "areas": [], "bboxes": []} for t in tracks
        }
        for frame in run.frames():
            boxes = _boxes(frame, run)
            for object_id, row in rows.items():
                box = boxes.get(object_id)
                if box is None:
                    row["segmentations"].append(None)
                    row["areas"].append(None)
                    row["bboxes"].append(None)
                    continue
                x, y, w, h = box
                crop = frame.ids[y : y + h, x : x + w] == object_id
                row["segmentations"].append(rle.encode_crop(crop, x, y, run.height, run.width))
                row["areas"].append(int(crop.sum()))
                row["bboxes"].append(list(box))
        for object_id, row in rows.items():
            track = tracks[object_id]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "video_id": video_id,
                    "deva_id": object_id,
                    "category_id": _category_of(track, unknown),
                    "score": track.score if track.score is not None else 1.0,
                    "iscrowd": 0,
                    "height": run.height,
                    "width": run.width,
                    "length": 1,
                    **row,
                }
            )
    categories = [
        {"id": cid, "name": name, "supercategory": name} for cid, name in sorted(names.items())
    ]
    return {
        "info": {"description": "deva tracking results", "format": "youtube-vis"},
        "videos": videos,
        "categories": categories,
        "annotations": annotations,
    }


# ---------------------------------------------------------------------------------------------
# MOTS txt


def mots_lines(run: TrackingRun) -> Iterator[str]:
    """``frame object_id class_id height width rle`` per object per frame (KITTI MOTS /
    MOTSChallenge txt). class_id is the track's category id (unknown: 1); object_id is
    class_id * 1000 + the deva id, or + 1, 2, ... in order of first appearance when some deva
    id is 1000 or more. Frames count from 0, as the frame indices of the run."""
    tracks = run.tracks
    instance = _mots_instances(run)
    classes = {}
    for object_id, track in tracks.items():
        category = track.category_id
        classes[object_id] = category if category is not None and category > 0 else 1
    for frame in run.frames():
        for object_id, (x, y, w, h) in sorted(_boxes(frame, run).items()):
            crop = frame.ids[y : y + h, x : x + w] == object_id
            counts = rle.encode_crop(crop, x, y, run.height, run.width)["counts"]
            class_id = classes[object_id]
            mots_id = class_id * MOTS_CLASS_FACTOR + instance[object_id]
            yield f"{frame.index} {mots_id} {class_id} {run.height} {run.width} {counts}"


def _mots_instances(run: TrackingRun) -> dict[int, int]:
    ids = list(run.tracks)
    if not ids or max(ids) < MOTS_CLASS_FACTOR:
        return {i: i for i in ids}
    if len(ids) >= MOTS_CLASS_FACTOR:
        raise DevaError(
            f"{run.folder}: {len(ids)} tracks, but MOTS ids hold at most "
            f"{MOTS_CLASS_FACTOR - 1} instances per class"
        )
    return {object_id: rank for rank, object_id in enumerate(ids, start=1)}


# ---------------------------------------------------------------------------------------------
# CVAT for video 1.1


def to_cvat(run: TrackingRun) -> ET.Element:
    """CVAT for video 1.1: one ``<track id=deva id label source="auto">`` per object holding a
    ``<mask>`` keyframe on every frame it appears (``rle`` = run lengths over its bounding box,
    row by row, starting with a run of 0s; ``left``/``top``/``width``/``height`` = the box) and
    an ``outside="1"`` mask on the first frame after each appearance ends. CVAT 2.x imports
    these as mask tracks (masks are not interpolated: every frame is a keyframe)."""
    names, unknown = _categories(list(run.tracks.values()))
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    task = ET.SubElement(ET.SubElement(root, "meta"), "task")
    for tag, text in (
        ("name", run.name),
        ("size", str(run.num_frames)),
        ("mode", "interpolation"),
        ("overlap", "0"),
        ("flipped", "False"),
        ("start_frame", "0"),
        ("stop_frame", str(run.num_frames - 1)),
    ):
        ET.SubElement(task, tag).text = text
    labels = ET.SubElement(task, "labels")
    for name in sorted(set(names.values())):
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = name
        ET.SubElement(label, "type").text = "mask"
        ET.SubElement(label, "attributes")
    size = ET.SubElement(task, "original_size")
    ET.SubElement(size, "width").text = str(run.width)
    ET.SubElement(size, "height").text = str(run.height)

    elements = {
        object_id: ET.SubElement(
            root,
            "track",
            {"id": str(object_id), "label": names[_category_of(track, unknown)], "source": "auto"},
        )
        for object_id, track in run.tracks.items()
    }
    last: dict[int, dict[str, str]] = {}
    for position, frame in enumerate(run.frames()):
        boxes = _boxes(frame, run)
        for object_id, element in elements.items():
            box = boxes.get(object_id)
            if box is not None:
                x, y, w, h = box
                crop = frame.ids[y : y + h, x : x + w] == object_id
                shape = {
                    "rle": ", ".join(str(n) for n in cvat_rle(crop)),
                    "left": str(x),
                    "top": str(y),
                    "width": str(w),
                    "height": str(h),
                }
                ET.SubElement(element, "mask", _cvat_attrs(position, outside=False, shape=shape))
                last[object_id] = shape
            elif object_id in last:  # the appearance ended on the previous frame
                shape = last.pop(object_id)
                ET.SubElement(element, "mask", _cvat_attrs(position, outside=True, shape=shape))
    return root


def cvat_rle(mask: np.ndarray) -> list[int]:
    """Run lengths of a 2-D bool mask read row by row, alternating 0s and 1s, 0s first (a
    leading run of 0 when the first pixel is set), as CVAT's mask ``rle``."""
    flat = np.asarray(mask, dtype=bool).ravel()
    if flat.size == 0:
        return []
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
    return [0, *runs] if flat[0] else runs


def _cvat_attrs(frame: int, *, outside: bool, shape: dict[str, str]) -> dict[str, str]:
    return {
        "frame": str(frame),
        "keyframe": "1",
        "outside": "1" if outside else "0",
        "occluded": "0",
        **shape,
        "z_order": "0",
    }


# ---------------------------------------------------------------------------------------------
# Shared


def _read_annotations(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise DevaError(f"{folder}: {'not a folder' if folder.exists() else why_missing(folder)}")
    path = folder / ANNOTATIONS
    if not path.is_file():
        if (folder / INCOMPLETE_ANNOTATIONS).is_file():
            raise DevaError(
                f"{folder}: the run did not finish (only {INCOMPLETE_ANNOTATIONS}); "
                "track the video again"
            )
        raise DevaError(f"{folder}: not a deva track output (no {ANNOTATIONS})")
    if not (folder / "masks").is_dir():
        raise DevaError(f"{folder}: not a deva track output (no masks/ folder)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DevaError(f"{path}: unreadable ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise DevaError(f'{path}: not deva annotations (no "frames" list)')
    return data


def _categories(tracks: Sequence[Track]) -> tuple[dict[int, str], int]:
    """Category id -> name for every track, and the id given to tracks without a category."""
    names: dict[int, str] = {}
    for track in tracks:
        if track.category_id is not None:
            name = track.category or f"category {track.category_id}"
            names.setdefault(track.category_id, name)
    unknown = max(names, default=0) + 1
    if any(t.category_id is None for t in tracks) or not names:
        names[unknown] = UNKNOWN_CATEGORY
    return names, unknown


def _category_of(track: Track, unknown: int) -> int:
    return track.category_id if track.category_id is not None else unknown


def _boxes(frame: RunFrame, run: TrackingRun) -> dict[int, tuple[int, int, int, int]]:
    """(x, y, w, h) of every object present in the frame."""
    present = np.unique(frame.ids)
    present = present[present != 0]
    if present.size == 0:
        return {}
    unknown = [int(i) for i in present if int(i) not in run.tracks]
    if unknown:
        raise DevaError(
            f"{run.mask_path(frame.name)}: ids {unknown[:5]} are not in {ANNOTATIONS}; the "
            "masks and annotations are from different runs"
        )
    dense = np.searchsorted(present, frame.ids) + 1
    dense[frame.ids == 0] = 0
    boxes = {}
    for object_id, found in zip(present.tolist(), ndimage.find_objects(dense), strict=True):
        rows, cols = found
        boxes[object_id] = (cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start)
    return boxes


def _get(track: Track | None, attribute: str) -> Any:
    return getattr(track, attribute) if track is not None else None
