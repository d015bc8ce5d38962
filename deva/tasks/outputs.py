"""Benchmark output encodings (spec §4.5): RGB id PNGs, 0/255 PNGs, palette PNGs, JSON (COCO
RLE: ``deva.io.rle``); every file written atomically. Also a compact in-memory id map for
two-pass tasks."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from deva.errors import DevaError
from deva.io.atomic import atomic_path
from deva.io.masks import davis_palette


def rgb_ids(ids: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 with R = id mod 256, G = (id ÷ 256) mod 256, B = id ÷ 65536."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= 256**3):
        raise DevaError(f"ids must lie in [0, 256³) for an RGB id PNG, got max {ids.max()}")
    return np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)


def write_rgb_ids(path: str | Path, ids: np.ndarray) -> None:
    """24-bit RGB id PNG (the long-id layout of VIPSeg and BURST), whatever the ids' size."""
    _save(path, Image.fromarray(rgb_ids(ids)))


def write_palette_ids(path: str | Path, ids: np.ndarray) -> None:
    """8-bit palette PNG with the DAVIS colour map (ids 0..255)."""
    if ids.size and int(ids.max()) > 255:
        raise DevaError(f"{path}: id {int(ids.max())} does not fit a palette PNG (max 255)")
    image = Image.fromarray(np.asarray(ids, dtype=np.uint8), mode="L").convert("P")
    image.putpalette(davis_palette().tobytes())
    _save(path, image)


def write_binary(path: str | Path, mask: np.ndarray) -> None:
    """8-bit grayscale PNG, 255 on the mask and 0 elsewhere."""
    _save(path, Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L"))


def write_json(path: str | Path, value: Any) -> None:
    with atomic_path(path) as temp:
        temp.write_text(json.dumps(value), encoding="utf-8")


@dataclass(frozen=True)
class PackedIds:
    """An id map kept compressed in memory (zlib) between the two passes of a task."""

    shape: tuple[int, int]
    data: bytes

    @classmethod
    def pack(cls, ids: np.ndarray) -> PackedIds:
        flat = np.ascontiguousarray(ids, dtype=np.int32)
        return cls((int(ids.shape[0]), int(ids.shape[1])), zlib.compress(flat.tobytes(), 1))

    def unpack(self) -> np.ndarray:
        return np.frombuffer(zlib.decompress(self.data), dtype=np.int32).reshape(self.shape)


def relabel(ids: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """``ids`` with every id in ``mapping`` replaced and every other non-zero id set to 0."""
    values, inverse = np.unique(ids, return_inverse=True)
    new = np.asarray([mapping.get(int(v), 0) for v in values], dtype=np.int32)
    return new[inverse].reshape(ids.shape)


def _save(path: str | Path, image: Image.Image) -> None:
    with atomic_path(path) as temp:
        image.save(temp, format="PNG")
