"""Overlay of tracked ids on a frame: tinted objects, thin outlines and the id written inside.

Built for streaming a video preview (~30 fps at 854x480), so per-object work is limited to each
object's bounding box and the whole-image work is a handful of vectorised passes.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from deva.errors import DevaError
from deva.io.masks import davis_palette

_FONT = cv2.FONT_HERSHEY_SIMPLEX
# Above this many pixels a mask is downscaled before the distance transform: the label only
# needs a point near the centre of the thickest part, not the exact maximum.
_DISTANCE_MAX_PIXELS = 128 * 128
LABELS: tuple[str, ...] = ("both", "id", "name", "none")


@dataclass(frozen=True)
class OverlayStyle:
    """How the overlay video draws objects.

    alpha: tint strength, 0 (no tint: with contours, an outline-only view) to 1 (solid colour).
    contours: outline each object in a darker shade of its colour (wider on large frames).
    labels: the text on each object: ``both`` (id and category name when known), ``id``,
        ``name`` (the category name, the id when there is none) or ``none``.
    """

    alpha: float = 0.5
    contours: bool = True
    labels: str = "both"

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise DevaError(f"--overlay-alpha must be within [0, 1], got {self.alpha}")
        if self.labels not in LABELS:
            raise DevaError(f"unknown labels {self.labels!r}; available: {', '.join(LABELS)}")

    def label(self, object_id: int, category: str | None) -> str | None:
        """The text drawn on an object, None for none."""
        if self.labels == "none":
            return None
        if self.labels == "id" or category is None:
            return str(object_id)
        return category if self.labels == "name" else f"{object_id} {category}"


def id_colour(object_id: int) -> tuple[int, int, int]:
    """The (r, g, b) colour of an id: DAVIS palette below 256, a stable bright hash colour above.

    The palette keeps colours identical to DAVIS tools for small ids; the hash keeps large ids
    (e.g. panoptic-style ids) distinguishable and the same on every run and machine.
    """
    object_id = int(object_id)
    if object_id < 0:
        raise DevaError(f"object ids must be non-negative, got {object_id}")
    if object_id < 256:
        r, g, b = davis_palette()[object_id]
        return (int(r), int(g), int(b))
    # splitmix64 finaliser: neighbouring ids get unrelated hues.
    z = (object_id * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    z ^= z >> 31
    hue = (z & 0xFFFF) / 0x10000
    saturation = 0.65 + 0.35 * ((z >> 16) & 0xFF) / 255
    value = 0.85 + 0.15 * ((z >> 24) & 0xFF) / 255
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return (round(r * 255), round(g * 255), round(b * 255))


def label_point(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the pixel deepest inside ``mask`` (the distance-transform maximum).

    Unlike the centroid, this lies inside the object even for rings and U shapes. The image
    border counts as an edge so the point stays away from it too. Large masks are downscaled
    first: a coarse maximum is enough to place a label and keeps this cheap.
    """
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        raise DevaError("cannot place a label on an empty mask")
    y0, x0 = int(ys.min()), int(xs.min())
    crop = np.ascontiguousarray(mask[y0 : int(ys.max()) + 1, x0 : int(xs.max()) + 1], np.uint8)
    return _deepest_point(crop, x0, y0)


def _deepest_point(crop: np.ndarray, x0: int, y0: int) -> tuple[int, int]:
    """label_point on a (h, w) uint8 0/1 crop whose top-left is (x0, y0) in the image."""
    height, width = crop.shape
    scale = min(1.0, float(np.sqrt(_DISTANCE_MAX_PIXELS / (height * width))))
    work = crop
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        work = cv2.resize(crop, size, interpolation=cv2.INTER_NEAREST)
        if not work.any():  # a thin object vanished when shrunk: use the full resolution
            work, scale = crop, 1.0
    padded = cv2.copyMakeBorder(work, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, 3)
    _, _, _, (px, py) = cv2.minMaxLoc(distance)
    if scale == 1.0:
        return (x0 + px - 1, y0 + py - 1)
    # Map back to full resolution and snap to the nearest object pixel of the crop.
    cx = min(width - 1, int((px - 1 + 0.5) * width / work.shape[1]))
    cy = min(height - 1, int((py - 1 + 0.5) * height / work.shape[0]))
    if not crop[cy, cx]:
        ys, xs = np.nonzero(crop)
        nearest = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
        cy, cx = int(ys[nearest]), int(xs[nearest])
    return (x0 + cx, y0 + cy)


def overlay(
    image: np.ndarray,
    ids: np.ndarray,
    *,
    alpha: float = 0.5,
    draw_ids: bool = True,
    labels: Mapping[int, str | None] | None = None,
    contours: bool = True,
) -> np.ndarray:
    """A copy of RGB ``image`` with every non-zero id of ``ids`` tinted, outlined and labelled.

    Background (id 0) pixels are left exactly as they were; only the id/label text may cross
    an object's edge. ``labels`` maps ids to the text drawn (default: the id itself; None: no
    text). The text is white with a black outline, readable on light and dark objects alike.
    Hershey fonts only draw ASCII; other characters show as ``?``.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise DevaError(f"overlay needs an (H, W, 3) image, got {_describe(image)}")
    if image.dtype != np.uint8:
        raise DevaError(f"overlay needs a uint8 image, got dtype {image.dtype}")
    if not isinstance(ids, np.ndarray) or ids.shape != image.shape[:2]:
        raise DevaError(
            f"overlay: id map {_describe(ids)} does not match image size {image.shape[:2]}"
        )
    if not np.issubdtype(ids.dtype, np.integer):
        raise DevaError(f"overlay needs an integer id map, got dtype {ids.dtype}")
    if not 0.0 <= alpha <= 1.0:
        raise DevaError(f"overlay alpha must be within [0, 1], got {alpha}")

    out = np.array(image, copy=True, order="C")
    object_ids, compact = _compact_ids(ids)
    if not object_ids:
        return out
    colours = np.array([(0, 0, 0)] + [id_colour(i) for i in object_ids], dtype=np.uint8)
    mask = (compact != 0).view(np.uint8)

    # Blend: one weighted sum over the whole image, copied onto object pixels only.
    tint = np.take(colours, compact, axis=0)
    blended = cv2.addWeighted(np.ascontiguousarray(image), 1.0 - alpha, tint, alpha, 0.0)
    out = cv2.copyTo(blended, mask, out)

    boxes = ndimage.find_objects(compact)
    height, width = ids.shape
    line = max(1, round(min(height, width) / 480))
    crops = []
    for label, box in enumerate(boxes, start=1):
        if box is None:
            continue
        # One pixel of margin so contours and the distance transform see the object's edge.
        ys = slice(max(box[0].start - 1, 0), box[0].stop + 1)
        xs = slice(max(box[1].start - 1, 0), box[1].stop + 1)
        crop = (compact[ys, xs] == label).astype(np.uint8)
        crops.append((label, crop, xs.start, ys.start))
        if contours:
            _outline(out, crop, xs.start, ys.start, colours[label], line)

    if draw_ids:
        font_scale = max(0.45, min(height, width) / 800)
        thickness = max(1, round(font_scale * 1.5))
        for label, crop, x0, y0 in crops:
            object_id = object_ids[label - 1]
            text = labels.get(object_id, str(object_id)) if labels else str(object_id)
            if text is None:
                continue
            cx, cy = _deepest_point(crop, x0, y0)
            _put_text_centred(out, str(text), cx, cy, font_scale, thickness)
    return out


def _outline(
    out: np.ndarray, crop: np.ndarray, x0: int, y0: int, colour: np.ndarray, width: int
) -> None:
    """Draw the object's outline ``width`` pixels wide, inside the object only: the pixels of
    ``crop`` (a 0/1 object crop at (x0, y0)) within ``width`` of its edge take the outline
    colour, so the background stays untouched."""
    shade = _outline_colour(colour)
    if width == 1:
        found, _ = cv2.findContours(crop, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0))
        # LINE_8 through the contour pixels, which are object pixels: the background stays put.
        cv2.drawContours(out, found, -1, tuple(int(c) for c in shade), 1, cv2.LINE_8)
        return
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    inner = cv2.erode(crop, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    edge = (crop > inner).view(bool)
    region = out[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]]
    region[edge] = shade


def _compact_ids(ids: np.ndarray) -> tuple[list[int], np.ndarray]:
    """(present non-zero ids in increasing order, (H, W) int32 map of 0 and 1..n indices)."""
    if ids.size == 0:
        return [], np.zeros(ids.shape, np.int32)
    low, high = int(ids.min()), int(ids.max())
    if low < 0:
        raise DevaError(f"overlay: id map has negative ids (min {low})")
    if high == 0:
        return [], np.zeros(ids.shape, np.int32)
    if high < 1 << 16:  # small ids: a counting pass and a lookup table, no sort
        present = np.flatnonzero(
            np.bincount(ids.ravel().astype(np.intp, copy=False), minlength=high + 1)
        )
        present = present[present != 0]
        lut = np.zeros(high + 1, np.int32)
        lut[present] = np.arange(1, len(present) + 1, dtype=np.int32)
        return [int(i) for i in present], lut[ids]
    # Large ids: sort out the distinct values (with 0 first), then index by binary search.
    values = np.union1d(np.unique(ids), [0]).astype(ids.dtype)
    return [int(i) for i in values[1:]], np.searchsorted(values, ids).astype(np.int32)


def _outline_colour(colour: np.ndarray) -> np.ndarray:
    """A darker shade of the object's colour: visible against both the tint and the image."""
    return (colour.astype(np.float32) * 0.55).astype(np.uint8)


def _put_text_centred(
    out: np.ndarray, text: str, cx: int, cy: int, font_scale: float, thickness: int
) -> None:
    """White text with a black outline centred on (cx, cy), shifted to stay inside the image.

    The outline is the text's mask dilated by ``2 * thickness`` pixels (at least 2) and drawn
    first, so the text reads on white, black and busy backgrounds alike.
    """
    border = max(2, 2 * thickness)
    (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, font_scale, thickness)
    glyphs = np.zeros((text_h + baseline + 2 * border, text_w + 2 * border), np.uint8)
    cv2.putText(
        glyphs, text, (border, border + text_h), _FONT, font_scale, 255, thickness, cv2.LINE_AA
    )
    halo = cv2.dilate(glyphs, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * border + 1,) * 2))
    height, width = out.shape[:2]
    box_h, box_w = glyphs.shape
    x = min(max(cx - box_w // 2, 0), max(width - box_w, 0))
    y = min(max(cy - box_h // 2, 0), max(height - box_h, 0))
    h, w = min(box_h, height - y), min(box_w, width - x)
    region = out[y : y + h, x : x + w].astype(np.float32)
    dark = halo[:h, :w, None].astype(np.float32) / 255
    light = glyphs[:h, :w, None].astype(np.float32) / 255
    region *= 1.0 - dark
    region += (255.0 - region) * light
    out[y : y + h, x : x + w] = np.clip(region + 0.5, 0, 255).astype(np.uint8)


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape}"
    return type(value).__name__
