"""A built-in clip for ``deva demo``: textured objects moving over a slowly panning background.

Rendered, not downloaded, so the demo works offline; the true masks come with it for tests and
benchmarks. ``iter_demo`` streams any number of frames in constant memory (the motion is
periodic), which the bounded-memory benchmark relies on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

#: Frames of one period of the object paths and of the back-and-forth camera pan.
PERIOD = 120


@dataclass(frozen=True)
class DemoClip:
    """frames: (T, H, W, 3) uint8 RGB; masks: (T, H, W) int32 true object ids (0 = background)."""

    frames: np.ndarray
    masks: np.ndarray


def render_demo_clip(num_frames: int = 60, height: int = 360, width: int = 640) -> np.ndarray:
    """The demo frames, (T, H, W, 3) uint8 RGB."""
    return render_demo(num_frames, height, width).frames


def render_demo(num_frames: int = 60, height: int = 360, width: int = 640) -> DemoClip:
    """The demo frames and their true masks, in memory (use ``iter_demo`` for long streams)."""
    pairs = list(iter_demo(num_frames, height, width))
    return DemoClip(np.stack([f for f, _ in pairs]), np.stack([m for _, m in pairs]))


def iter_demo(
    num_frames: int, height: int = 360, width: int = 640, seed: int = 7
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(frame, true ids) pairs: three textured shapes (the third enters at frame 30 of each
    period) over a background panning right then back, one pixel per frame."""
    rng = np.random.default_rng(seed)
    travel = PERIOD // 2
    background = _texture(rng, height, width + travel, scale=9.0)
    scale = min(height, width) / 360
    shapes = [
        (_disk(int(90 * scale)), (255, 80, 60), 3.0),
        (np.ones((int(80 * scale), int(110 * scale)), bool), (60, 120, 255), 2.0),
        (_triangle(int(100 * scale)), (80, 230, 90), 4.0),
    ]
    textures = [_texture(rng, *shape.shape, scale=s, tint=tint) for shape, tint, s in shapes]
    for t in range(num_frames):
        offset = travel - abs(t % PERIOD - travel)
        frame = background[:, offset : offset + width].copy()
        ids = np.zeros((height, width), np.int32)
        for object_id, position in enumerate(_positions(t, height, width), start=1):
            if position is not None:
                shape = shapes[object_id - 1][0]
                _paste(frame, ids, textures[object_id - 1], shape, position, object_id)
        yield frame, ids


def _positions(t: int, height: int, width: int) -> list[tuple[float, float] | None]:
    phase = 2 * np.pi * (t % PERIOD) / PERIOD
    return [
        (width * (0.4 + 0.3 * np.sin(phase)), height * (0.15 + 0.1 * np.sin(2 * phase))),
        (width * (0.45 - 0.25 * np.sin(phase)), height * (0.6 + 0.08 * np.cos(phase))),
        (width * (0.8 - 0.4 * (t % PERIOD - 30) / 90), height * (0.3 + 0.2 * np.sin(phase)))
        if t % PERIOD >= 30
        else None,
    ]


def _texture(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    scale: float,
    tint: tuple[int, int, int] = (160, 150, 140),
) -> np.ndarray:
    """Smooth colour blobs plus fine grain, so optical flow has something to lock on to."""
    smooth = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), scale)
    smooth = (smooth - smooth.min()) / max(float(smooth.max() - smooth.min()), 1e-6)
    grain = cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), 1.0)
    image = 0.55 * smooth + 0.45 * grain[..., None]
    return np.clip(image * np.asarray(tint, np.float32) * 1.4, 0, 255).astype(np.uint8)


def _disk(size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 <= (size / 2) ** 2


def _triangle(size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    points = np.array([[size // 2, 0], [size - 1, size - 1], [0, size - 1]], np.int32)
    cv2.fillPoly(mask, [points], 1)
    return mask.astype(bool)


def _paste(
    frame: np.ndarray,
    ids: np.ndarray,
    texture: np.ndarray,
    shape: np.ndarray,
    position: tuple[float, float],
    object_id: int,
) -> None:
    """Paste a shape centred at ``position`` (x, y), clipped to the frame."""
    h, w = shape.shape
    x, y = int(round(position[0] - w / 2)), int(round(position[1] - h / 2))
    y0, x0 = max(y, 0), max(x, 0)
    y1, x1 = min(y + h, frame.shape[0]), min(x + w, frame.shape[1])
    if y1 <= y0 or x1 <= x0:
        return
    crop = shape[y0 - y : y1 - y, x0 - x : x1 - x]
    frame[y0:y1, x0:x1][crop] = texture[y0 - y : y1 - y, x0 - x : x1 - x][crop]
    ids[y0:y1, x0:x1][crop] = object_id
