"""objects/<id>/<frame>.png: one binary mask sequence per tracked object (``--save per-object``).

Written after tracking from masks/ and annotations.json, so every object's folder holds every
frame of the run (an empty mask where the object is absent): a complete image sequence that
compositing and editing tools import as a matte. 8-bit grayscale, 255 on the object.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from deva.errors import DevaError
from deva.io.atomic import atomic_path, write_errors
from deva.io.masks import read_id_png
from deva.io.run_folder import ANNOTATIONS, MASKS, OBJECTS


def write_object_masks(run: str | Path, on_frame: Callable[[], None] | None = None) -> int:
    """Write ``run/objects/<id>/<frame>.png`` for every object of the finished run ``run``;
    returns the number of objects. Memory: one frame's id map at a time."""
    folder = Path(run)
    records = _frame_records(folder / ANNOTATIONS)
    ids = sorted({int(o["id"]) for record in records for o in record["objects"]})
    for object_id in ids:
        (folder / OBJECTS / str(object_id)).mkdir(parents=True, exist_ok=True)
    empty: dict[tuple[int, int], bytes] = {}
    for record in records:
        name = str(record["file_name"])
        frame = read_id_png(folder / MASKS / f"{name}.png")
        if frame.shape not in empty:
            empty[frame.shape] = _png(np.zeros(frame.shape, np.uint8))
        present = {int(o["id"]): o.get("bbox") for o in record["objects"]}
        for object_id in ids:
            box = present.get(object_id)
            data = empty[frame.shape] if box is None else _png(_binary(frame, object_id, box))
            path = folder / OBJECTS / str(object_id) / f"{name}.png"
            with write_errors(path), atomic_path(path) as temp:
                temp.write_bytes(data)
        if on_frame is not None:
            on_frame()
    return len(ids)


def _frame_records(annotations: Path) -> list[dict]:
    try:
        frames = json.loads(annotations.read_text(encoding="utf-8"))["frames"]
    except (OSError, ValueError, KeyError) as err:
        raise DevaError(f"{annotations}: cannot read the run's annotations ({err})") from err
    return frames


def _binary(ids: np.ndarray, object_id: int, bbox: list[int]) -> np.ndarray:
    """255 on ``object_id``: compared inside its box only (cheap with many objects)."""
    x, y, w, h = (int(v) for v in bbox)
    mask = np.zeros(ids.shape, np.uint8)
    region = ids[y : y + h, x : x + w]
    mask[y : y + h, x : x + w] = np.where(region == object_id, 255, 0)
    return mask


def _png(mask: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", mask)
    if not ok:
        raise DevaError("cannot encode an object mask as PNG")
    return data.tobytes()
