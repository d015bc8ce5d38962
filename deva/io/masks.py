"""Id-map PNGs: palette / grayscale / 16-bit / RGB-encoded ids, read and written losslessly."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from deva.errors import DevaError
from deva.io.atomic import atomic_path


@cache
def davis_palette() -> np.ndarray:
    """(256, 3) uint8 PASCAL VOC / DAVIS colour map: id k gets the bit-interleaved colour of k."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[index] = (r, g, b)
    return palette


def read_id_png(path: str | Path) -> np.ndarray:
    """(H, W) int32 ids from a PNG: P/L/1 give the pixel index, I;16/I the 16/32-bit value,
    RGB(A) give R + 256·G + 65536·B (alpha ignored), as in the official DEVA layout."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("P", "L", "1"):
                return np.asarray(image, dtype=np.int32)
            if mode.startswith("I"):
                return np.asarray(image).astype(np.int32)
            if mode in ("RGB", "RGBA"):
                rgb = np.asarray(image.convert("RGB"), dtype=np.int32)
                return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
            if mode == "LA":
                return np.asarray(image.getchannel("L"), dtype=np.int32)
    except FileNotFoundError as err:
        raise DevaError(f"{path}: file not found") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DevaError(f"{path}: not a readable PNG ({err})") from err
    raise DevaError(f"{path}: unsupported PNG mode {mode!r} for an id map")


def encode_id_image(ids: np.ndarray) -> Image.Image:
    """The smallest lossless PNG for ``ids``: palette (<= 255), 16-bit (<= 65535), else RGB."""
    if ids.ndim != 2:
        raise DevaError(f"id map must be 2-D, got shape {ids.shape}")
    if ids.size and int(ids.min()) < 0:
        raise DevaError("id map has negative ids")
    largest = int(ids.max()) if ids.size else 0
    if largest <= 255:
        image = Image.fromarray(ids.astype(np.uint8)).convert("P")
        image.putpalette(davis_palette().tobytes())
        return image
    if largest <= 65535:
        return Image.fromarray(ids.astype(np.uint16))
    if largest >= 256**3:
        raise DevaError(f"id {largest} does not fit in a 24-bit RGB id PNG")
    rgb = np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb)


def write_id_png(path: str | Path, ids: np.ndarray) -> None:
    """Write ``ids`` atomically (see ``encode_id_image`` for the encoding)."""
    image = encode_id_image(ids)
    with atomic_path(path) as temp:
        image.save(temp, format="PNG")
