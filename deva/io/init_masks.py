"""Given object masks for semi-supervised VOS: DAVIS-style palette PNGs named like the frames.

A mask may be given on the first frame or on any later frame where a new object appears; its
pixel values are the object ids the output keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from deva.errors import DevaError
from deva.io.masks import read_id_png
from deva.types import Frame


class InitMasks:
    """Looks up ``<folder>/<frame name>.png`` for each frame; frames without one get None."""

    def __init__(self, folder: str | Path, *, frame_name: Callable[[int], str] | None = None):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DevaError(f"init-masks folder {self.folder} does not exist")
        self._names = {p.stem for p in self.folder.glob("*.png")}
        if not self._names:
            raise DevaError(f"init-masks folder {self.folder} has no .png masks")
        self._frame_name = frame_name

    def __call__(self, frame: Frame) -> np.ndarray | None:
        """(H, W) int32 object ids given for this frame, or None."""
        name = self._frame_name(frame.index) if self._frame_name else frame.name
        if name not in self._names:
            return None
        path = self.folder / f"{name}.png"
        ids = read_id_png(path)
        if ids.shape != frame.shape:
            raise DevaError(
                f"{path}: mask is {ids.shape[1]}x{ids.shape[0]} but the frame is "
                f"{frame.shape[1]}x{frame.shape[0]}"
            )
        return ids
