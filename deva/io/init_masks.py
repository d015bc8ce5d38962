"""Given object masks for semi-supervised VOS: DAVIS-style palette PNGs named like the frames.

A mask may be given on the first frame or on any later frame where a new object appears; its
pixel values are the object ids the output keeps. A palette mask re-saved as RGB (as many image
editors export it) is mapped back through the DAVIS palette; other RGB colours are an error,
since their ids would be guesses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from deva.errors import DevaError
from deva.io.masks import davis_palette, read_id_png
from deva.io.paths import why_missing
from deva.types import Frame

log = logging.getLogger(__name__)


class InitMasks:
    """Looks up ``<folder>/<frame name>.png`` for each frame; frames without one get None.

    num_frames: when known, the masks are checked up front against the frame names, so a
        folder whose names match no frame fails at once instead of tracking nothing.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        frame_name: Callable[[int], str] | None = None,
        num_frames: int | None = None,
    ):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            problem = "is not a folder" if self.folder.exists() else why_missing(self.folder)
            raise DevaError(f"init-masks folder {self.folder}: {problem}")
        self._names = {p.stem for p in self.folder.glob("*.png")}
        if not self._names:
            raise DevaError(f"init-masks folder {self.folder} has no .png masks")
        self._frame_name = frame_name
        if frame_name is not None and num_frames is not None:
            self._check_names({frame_name(i) for i in range(num_frames)})

    def __call__(self, frame: Frame) -> np.ndarray | None:
        """(H, W) int32 object ids given for this frame, or None."""
        name = self._frame_name(frame.index) if self._frame_name else frame.name
        if name not in self._names:
            return None
        path = self.folder / f"{name}.png"
        ids = read_mask(path)
        if ids.shape != frame.shape:
            raise DevaError(
                f"{path}: mask is {ids.shape[1]}x{ids.shape[0]} but the frame is "
                f"{frame.shape[1]}x{frame.shape[0]}"
            )
        return ids

    def _check_names(self, frame_names: set[str]) -> None:
        unused = sorted(self._names - frame_names)
        if len(unused) == len(self._names):
            examples = ", ".join(f"{n}.png" for n in sorted(frame_names)[:3])
            raise DevaError(
                f"init-masks folder {self.folder}: no mask is named like a frame (found "
                f"{', '.join(f'{n}.png' for n in unused[:3])}; expected names such as {examples})"
            )
        if unused:
            log.warning(
                "init-masks folder %s: %d masks match no frame and are ignored (%s)",
                self.folder,
                len(unused),
                ", ".join(f"{n}.png" for n in unused[:5]),
            )


def read_mask(path: str | Path) -> np.ndarray:
    """(H, W) int32 object ids of one given mask: the pixel values of a palette, grayscale or
    16-bit PNG; an RGB(A) PNG must use DAVIS palette colours only, which map to their index."""
    path = Path(path)
    ids = read_id_png(path)
    with Image.open(path) as image:  # decoded fine above: only the header is read here
        mode = image.mode
    if mode not in ("RGB", "RGBA"):
        return ids
    codes, indices = _palette_codes()
    position = np.minimum(np.searchsorted(codes, ids), len(codes) - 1)
    known = codes[position] == ids
    if not known.all():
        value = int(ids[~known][0])
        r, g, b = ((value >> shift) & 255 for shift in (0, 8, 16))
        raise DevaError(
            f"{path}: RGB mask with colour ({r}, {g}, {b}), which is no DAVIS palette colour; "
            "give init masks as palette or grayscale PNGs whose pixel values are object ids"
        )
    return indices[position]


@cache
def _palette_codes() -> tuple[np.ndarray, np.ndarray]:
    """The DAVIS colours as RGB id codes (R + 256 G + 65536 B), sorted, and their indices."""
    palette = davis_palette().astype(np.int64)
    codes = palette[:, 0] + 256 * palette[:, 1] + 65536 * palette[:, 2]
    order = np.argsort(codes)
    return codes[order], order.astype(np.int32)
