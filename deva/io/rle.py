"""COCO run-length encoding: masks to COCO compressed RLE (via pycocotools) and the counts
strings back to run lengths, checked (pycocotools does not check them and can loop forever on
a malformed one). One place for the exports, the task runners and the BURST evaluator."""

from __future__ import annotations

from typing import Any

import numpy as np

from deva.errors import DevaError, install_hint


def mask_api(purpose: str = "COCO RLE output", extra: str = "export") -> Any:
    """pycocotools' ``mask`` module; without it, a DevaError naming the extra that installs it."""
    try:
        from pycocotools import mask
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise DevaError(f"{purpose} needs pycocotools: {install_hint(extra)}") from err
    return mask


def encode(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE of an (H, W) mask (nonzero = on): ``{"size": [H, W], "counts": str}``."""
    encoded = mask_api().encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("utf-8")}


def encode_crop(crop: np.ndarray, x: int, y: int, height: int, width: int) -> dict[str, Any]:
    """``encode`` of an (height, width) mask that is 0 outside ``crop``, whose top-left pixel
    is (x, y): the work follows the crop, not the frame (thousands of objects per frame)."""
    crop = np.asarray(crop, dtype=bool)
    rows, cols = np.nonzero(crop.T)  # column-major, as COCO runs go
    on = (cols + y) + (rows + x) * height  # flat column-major positions, ascending
    if len(on) == 0:
        runs = [height * width]
    else:
        breaks = np.flatnonzero(np.diff(on) != 1) + 1
        starts = on[np.concatenate(([0], breaks))]
        stops = on[np.concatenate((breaks - 1, [len(on) - 1]))] + 1
        edges = np.column_stack((starts, stops)).ravel()
        runs = np.diff(np.concatenate(([0], edges, [height * width]))).tolist()
        if runs[-1] == 0:
            runs.pop()
    return {"size": [int(height), int(width)], "counts": _compress(runs)}


def _compress(runs: list[int]) -> str:
    """COCO's compressed counts string of run lengths (pycocotools' rleToString)."""
    out = []
    for position, run in enumerate(runs):
        value = run - runs[position - 2] if position > 2 else run
        more = True
        while more:
            chunk = value & 0x1F
            value >>= 5
            more = value != -1 if chunk & 0x10 else value != 0
            out.append(chr((chunk | 0x20 if more else chunk) + 48))
    return "".join(out)


def encode_counts(mask: np.ndarray) -> str:
    """Only the compressed counts string of ``encode`` (what BURST and MOTS store)."""
    return encode(mask)["counts"]


def decode_runs(counts: str, what: str = "RLE") -> list[int]:
    """Run lengths (0s first, then alternating) of a COCO compressed counts string; ``what``
    names the string in the DevaError a malformed one raises."""
    runs: list[int] = []
    pos = 0
    while pos < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(counts):
                raise DevaError(f"{what} string ends inside a number")
            c = ord(counts[pos]) - 48
            if not 0 <= c < 64:
                raise DevaError(f"{what} has an invalid character")
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            pos += 1
            shift += 1
            if not more and c & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            raise DevaError(f"{what} has a negative run length")
        runs.append(value)
    return runs
