"""Weight-free default image segmenter: moving objects from camera-compensated optical flow.

``MotionSegmenter`` needs no model weights, so deva works out of the box; it finds whatever
moves independently of the camera. Per frame ``t``:

1. ``observe`` keeps the last ``max(frame_gaps) + 1`` frames as small grayscale images (short
   side ``flow_size``), so memory is bounded whatever the video length.
2. ``segment`` computes DIS optical flow (OpenCV, "medium" preset at the finest scale) from frame
   ``t`` back to frame ``t - g`` for each gap ``g`` in ``frame_gaps``. The flow lives on frame
   ``t``'s grid, so the mask is aligned with frame ``t``.
3. The camera (background) motion is a homography fitted robustly (MAGSAC++, then RANSAC, then
   an affine, then a median translation) to a grid of flow correspondences. The residual is the
   measured flow minus the flow that homography induces.
4. A pixel moves when its residual exceeds an adaptive threshold: median + ``noise_k`` x MAD of
   the residual magnitudes, never below ``min_residual`` pixels (at flow resolution). Two vetoes
   remove the usual halo around movers: a pixel the camera model already explains
   photometrically (mean absolute difference after warping the earlier frame with the homography
   no more than ``photo_margin`` gray levels worse than after warping it with the flow) is not
   moving, and on pairs with gap >= 2 neither is a pixel whose forward-backward flow is
   inconsistent by more than ``occlusion_tol`` pixels + 5% of its flow (disocclusions behind a
   mover, water, flicker). Pixels the homography maps outside the earlier frame (just entered
   the view) are not moving. The pairs' evidence (residual / threshold) is averaged.
5. Opening, closing and a 1-pixel erosion, connected components; components smaller than
   ``min_area_fraction`` of the frame are dropped and holes are filled. Each component is one
   segment (score = r / (1 + r) for its mean normalised residual r, category ``None``). A guided
   filter on the native-resolution image (radius ``refine_radius`` flow pixels) snaps the
   upsampled masks to image edges.

The first frame (no history) gives an empty segmentation. The ``unsegmented`` hint of the
protocol is ignored: motion evidence is computed on the whole frame either way, and the fusion
decides what is new.

Unsupervised quality on six DAVIS-2016 clips (IoU of the union of segments with the annotated
foreground, every frame but the first; ``bench/motion_quality.py``): blackswan 0.65, bmx-trees
0.42, breakdance 0.56, camel 0.70, car-roundabout 0.80, dog 0.79; mean 0.65. About 70 ms per
segmented 854x480 frame on two CPU cores (three DIS flows); ``observe`` alone is under 1 ms, so
segmenting only every k-th frame costs proportionally less.

Where it fails (it is a motion cue, not an object model):

- Objects that do not move relative to the compensated background are invisible: a paused
  animal, a parked car, a body part held still. The tracker's propagation has to carry them.
- Other movers are segmented too, wanted or not: spectators, a passing car, shadows and
  reflections moving with the object (the swan's reflection and wake, the camel's shadow).
- Strong parallax (near background while the camera translates, e.g. tree trunks close to a
  tracking camera) does not fit one homography and creates false positives; the same holds for
  non-rigid background (water, smoke, foliage in wind, screens) that survives the vetoes.
- Textureless, thin or very fast parts (a uniform flank, bicycle wheels, a whirling leg) give
  weak or inconsistent flow: masks become partial or fragmented. Small fast movers keep a halo
  on their trailing side (bmx-trees is the weakest clip for this reason).
- Touching movers come out as one segment, one mover split by an occluder as several: it
  segments motion, not instances.
- A mover covering most of the frame can be taken for the background by the robust fit.

It is deterministic: the robust fits use OpenCV's fixed seeds and no state but the frame
history is kept, so the same frames give the same output.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from deva.errors import DevaError
from deva.types import Segmentation, SegmentInfo

_MIN_FLOW_SIDE = 16  # DIS needs a few 8x8 patches; smaller frames give an empty segmentation
_GRID_STEP = 8  # spacing (flow pixels) of the correspondences for the camera fit
_FIT_THRESHOLD = 1.0  # inlier tolerance (flow pixels) of the camera fit
_PHOTO_WINDOW = 7  # box (flow pixels) over which photometric errors are averaged
_OCCLUSION_RELATIVE = 0.05  # forward-backward tolerance grows with the flow magnitude
_OPEN_RADIUS = 1
_CLOSE_RADIUS = 3
_ERODE_RADIUS = 1  # DIS spreads motion ~1 patch pixel past object edges
_GUIDED_EPS = 1e-3  # guided-filter regulariser for a [0, 1] grayscale guide


@dataclass(frozen=True)
class _Observed:
    frame_index: int
    native_shape: tuple[int, int]
    gray: np.ndarray  # (h, w) uint8 at flow resolution


class MotionSegmenter:
    """Segments what moves independently of the camera (see the module docstring).

    Implements ``SequentialSegmenter``: the tracker calls ``observe`` on every frame in order,
    then ``segment`` on the frames it wants segmented. ``segment`` observes the frame itself when
    that was not done, so consecutive ``segment`` calls alone work too.
    """

    def __init__(
        self,
        *,
        flow_size: int = 240,
        frame_gaps: tuple[int, ...] = (1, 2),
        noise_k: float = 3.0,
        min_residual: float = 1.0,
        photo_margin: float | None = 2.0,
        occlusion_tol: float | None = 0.25,
        min_area_fraction: float = 0.002,
        refine_radius: int = 8,
        max_segments: int = 16,
    ) -> None:
        """Configure the segmenter; defaults were tuned on DAVIS-2016 (see module docstring).

        flow_size: short side (pixels) at which flow is computed; larger is slower and finer.
        frame_gaps: earlier frames (t - g) compared with frame t; several gaps catch slow movers.
        noise_k: MAD multiplier of the adaptive residual threshold.
        min_residual: lowest residual (flow pixels) that counts as motion.
        photo_margin: gray levels by which the camera model must explain a pixel worse than the
            flow to keep it moving; None disables the veto.
        occlusion_tol: forward-backward flow tolerance (flow pixels) on pairs with gap >= 2;
            None disables the veto (and saves one flow computation per pair).
        min_area_fraction: smallest segment, as a fraction of the frame area.
        refine_radius: guided-filter radius (flow pixels) for edge snapping; 0 disables it.
        max_segments: at most this many segments (the largest) per frame.
        """
        if flow_size < _MIN_FLOW_SIDE:
            raise DevaError(f"flow_size must be at least {_MIN_FLOW_SIDE} pixels, got {flow_size}")
        if not frame_gaps or any(int(g) != g or g < 1 for g in frame_gaps):
            raise DevaError(f"frame_gaps must be positive integers, got {frame_gaps}")
        if noise_k < 0 or min_residual <= 0:
            raise DevaError(
                f"noise_k must be >= 0 and min_residual > 0, got {noise_k} and {min_residual}"
            )
        if not 0.0 <= min_area_fraction < 1.0:
            raise DevaError(f"min_area_fraction must be in [0, 1), got {min_area_fraction}")
        if refine_radius < 0 or max_segments < 1:
            raise DevaError(
                f"refine_radius must be >= 0 and max_segments >= 1, "
                f"got {refine_radius} and {max_segments}"
            )
        self.flow_size = flow_size
        self.frame_gaps = tuple(sorted({int(g) for g in frame_gaps}))
        self.noise_k = noise_k
        self.min_residual = min_residual
        self.photo_margin = photo_margin
        self.occlusion_tol = occlusion_tol
        self.min_area_fraction = min_area_fraction
        self.refine_radius = refine_radius
        self.max_segments = max_segments
        self._history: deque[_Observed] = deque(maxlen=max(self.frame_gaps) + 1)
        # MEDIUM at the finest scale: the coarser default scale smears motion ~2x wider.
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._flow.setFinestScale(0)

    def reset(self) -> None:
        """Forget the frame history (start of a new video)."""
        self._history.clear()

    def state_dict(self) -> dict[str, object]:
        """The frame history, for resumable runs."""
        return {"history": list(self._history)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._history.clear()
        self._history.extend(state["history"])

    def observe(self, image: np.ndarray, *, frame_index: int) -> None:
        """Remember a small grayscale copy of the frame for later flow computation."""
        native = _check_image(image)
        if self._history:
            last = self._history[-1]
            if last.native_shape != native or frame_index < last.frame_index:
                self._history.clear()  # a new video or a jump back: old frames are unrelated
            elif frame_index == last.frame_index:
                self._history.pop()  # observed again: keep the newest copy only
        h, w = _flow_shape(native, self.flow_size)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if (h, w) != native:
            gray = cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA)
        self._history.append(_Observed(frame_index, native, gray))

    def segment(
        self,
        image: np.ndarray,
        *,
        frame_index: int,
        unsegmented: np.ndarray | None = None,
    ) -> Segmentation:
        """Moving-object segments of the frame; ``unsegmented`` is ignored (see module doc)."""
        native = _check_image(image)
        if not self._history or self._history[-1].frame_index != frame_index:
            self.observe(image, frame_index=frame_index)
        current = self._history[-1]
        if min(current.gray.shape) < _MIN_FLOW_SIDE:
            return Segmentation.empty(*native)
        earlier = {o.frame_index: o for o in list(self._history)[:-1]}
        evidence = [
            self._evidence(current.gray, earlier[frame_index - gap].gray, gap)
            for gap in self.frame_gaps
            if frame_index - gap in earlier
        ]
        if not evidence:
            return Segmentation.empty(*native)
        ratio = np.mean(evidence, axis=0)
        return self._segments(ratio, image)

    def _evidence(self, current: np.ndarray, previous: np.ndarray, gap: int) -> np.ndarray:
        """Residual flow magnitude over the adaptive threshold, vetoed (< 1) where not moving."""
        flow = self._flow.calc(current, previous, None)
        h, w = current.shape
        grid = _pixel_grid(h, w)
        camera = _camera_model(flow)
        points = grid.reshape(-1, 1, 2)
        if camera.shape == (3, 3):
            mapped = cv2.perspectiveTransform(points, camera).reshape(h, w, 2)
        else:
            mapped = cv2.transform(points, camera).reshape(h, w, 2)
        mapped = np.nan_to_num(mapped, nan=-1.0, posinf=-1.0, neginf=-1.0)
        magnitude = np.linalg.norm(flow - (mapped - grid), axis=-1)
        inside = (
            (mapped[..., 0] >= 0)
            & (mapped[..., 0] <= w - 1)
            & (mapped[..., 1] >= 0)
            & (mapped[..., 1] <= h - 1)
        )
        magnitude[~inside] = 0.0
        values = magnitude[inside] if inside.any() else magnitude.ravel()
        median = float(np.median(values))
        mad = float(np.median(np.abs(values - median)))
        threshold = max(self.min_residual, median + self.noise_k * 1.4826 * mad)
        ratio = magnitude / threshold
        still = np.zeros((h, w), dtype=bool)
        along_flow = grid + flow
        if self.photo_margin is not None:
            # The flow always matches at least as well as the camera model; where it is not
            # clearly better, the "motion" is DIS smearing a mover's flow onto background.
            cur = current.astype(np.float32)
            by_camera = _warp(previous, mapped).astype(np.float32)
            by_flow = _warp(previous, along_flow).astype(np.float32)
            box = (_PHOTO_WINDOW, _PHOTO_WINDOW)
            camera_error = cv2.blur(np.abs(cur - by_camera), box)
            flow_error = cv2.blur(np.abs(cur - by_flow), box)
            still |= camera_error <= flow_error + self.photo_margin
        if self.occlusion_tol is not None and gap >= 2:
            # Only on longer gaps: there disocclusions are wide, while on gap 1 the check mostly
            # removes fast articulated parts whose flow is inconsistent but real.
            forward = self._flow.calc(previous, current, None)
            back_and_forth = flow + _warp(forward, along_flow)
            error = np.linalg.norm(back_and_forth, axis=-1)
            speed = np.linalg.norm(flow, axis=-1)
            still |= error > self.occlusion_tol + _OCCLUSION_RELATIVE * speed
        return np.where(still, np.minimum(ratio, 0.99), ratio)

    def _segments(self, ratio: np.ndarray, image: np.ndarray) -> Segmentation:
        """Clean the moving mask, split it into components, refine them at native size."""
        h, w = ratio.shape
        native = (int(image.shape[0]), int(image.shape[1]))
        mask = (ratio >= 1.0).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _disk(_OPEN_RADIUS))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _disk(_CLOSE_RADIUS))
        mask = cv2.erode(mask, _disk(_ERODE_RADIUS))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        min_area = max(1.0, self.min_area_fraction * h * w)
        areas = stats[:, cv2.CC_STAT_AREA]
        kept = sorted(
            (k for k in range(1, count) if areas[k] >= min_area), key=lambda k: (-int(areas[k]), k)
        )[: self.max_segments]
        small = np.zeros((h, w), dtype=np.int32)
        infos = []
        for new_id, k in enumerate(kept, start=1):
            component = _fill_holes(labels == k) & (small == 0)
            small[component] = new_id
            mean_ratio = float(ratio[component].mean())
            infos.append(SegmentInfo(id=new_id, score=mean_ratio / (1.0 + mean_ratio)))
        if not infos:
            return Segmentation.empty(*native)
        if self.refine_radius > 0:
            scale = max(native[0] / h, native[1] / w)
            radius = max(1, round(self.refine_radius * scale))
            ids = _guided_labels(small, image, len(infos), radius)
        elif (h, w) == native:
            ids = small
        else:
            ids = cv2.resize(small, (native[1], native[0]), interpolation=cv2.INTER_NEAREST)
        present = set(np.unique(ids).tolist())
        return Segmentation(ids=ids, segments=tuple(s for s in infos if s.id in present))


def _camera_model(flow: np.ndarray) -> np.ndarray:
    """A (3, 3) homography, or a (2, 3) affine / translation, mapping current to earlier pixels."""
    h, w = flow.shape[:2]
    offset = _GRID_STEP // 2
    ys, xs = np.mgrid[offset:h:_GRID_STEP, offset:w:_GRID_STEP]
    src = np.stack([xs.ravel(), ys.ravel()], axis=-1).astype(np.float32)
    dst = src + flow[ys.ravel(), xs.ravel()]
    if len(src) >= 8:
        for method in (cv2.USAC_MAGSAC, cv2.RANSAC):
            try:
                homography, _ = cv2.findHomography(src, dst, method, _FIT_THRESHOLD)
            except cv2.error:
                homography = None
            if homography is not None and np.isfinite(homography).all():
                return homography
        affine, _ = cv2.estimateAffine2D(
            src, dst, method=cv2.RANSAC, ransacReprojThreshold=_FIT_THRESHOLD
        )
        if affine is not None and np.isfinite(affine).all():
            return affine
    shift = np.median(dst - src, axis=0) if len(src) else np.zeros(2)
    return np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]], dtype=np.float64)


def _guided_labels(small: np.ndarray, image: np.ndarray, count: int, radius: int) -> np.ndarray:
    """Native-size labels: each low-res component upsampled and snapped to image edges.

    A guided filter (He et al.) per component, on a crop around it; a pixel takes the label
    whose filtered mask is highest, if above 0.5.
    """
    native_h, native_w = image.shape[:2]
    h, w = small.shape
    guide = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    best = np.full((native_h, native_w), 0.5, dtype=np.float32)
    ids = np.zeros((native_h, native_w), dtype=np.int32)
    box = (2 * radius + 1, 2 * radius + 1)
    sy, sx = native_h / h, native_w / w
    for label in range(1, count + 1):
        ys, xs = np.nonzero(small == label)
        if len(ys) == 0:
            continue
        margin = 2 * radius + 2
        y0 = max(0, int(ys.min() * sy) - margin)
        y1 = min(native_h, int((ys.max() + 1) * sy) + margin)
        x0 = max(0, int(xs.min() * sx) - margin)
        x1 = min(native_w, int((xs.max() + 1) * sx) + margin)
        # Upsample the whole-frame component so crops align exactly with the native grid.
        component = (small == label).astype(np.float32)
        soft = cv2.resize(component, (native_w, native_h), interpolation=cv2.INTER_LINEAR)
        soft = soft[y0:y1, x0:x1]
        g = guide[y0:y1, x0:x1]
        mean_g = cv2.blur(g, box)
        var_g = cv2.blur(g * g, box) - mean_g * mean_g
        mean_p = cv2.blur(soft, box)
        a = (cv2.blur(g * soft, box) - mean_g * mean_p) / (var_g + _GUIDED_EPS)
        b = mean_p - a * mean_g
        filtered = cv2.blur(a, box) * g + cv2.blur(b, box)
        wins = filtered > best[y0:y1, x0:x1]
        ids[y0:y1, x0:x1][wins] = label
        best[y0:y1, x0:x1][wins] = filtered[wins]
    return ids


def _warp(source: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """``source`` sampled at (x, y) ``coords`` (bilinear, border replicated)."""
    return cv2.remap(
        source,
        np.ascontiguousarray(coords[..., 0]),
        np.ascontiguousarray(coords[..., 1]),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def _pixel_grid(h: int, w: int) -> np.ndarray:
    """(h, w, 2) float32 pixel coordinates (x, y)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([xs, ys], axis=-1)


def _fill_holes(component: np.ndarray) -> np.ndarray:
    """The component with every region it encloses filled (flood fill from the border)."""
    padded = np.pad(component.astype(np.uint8), 1)
    mask = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), dtype=np.uint8)
    cv2.floodFill(padded, mask, (0, 0), 1)
    return component | (padded[1:-1, 1:-1] == 0)


def _disk(radius: int) -> np.ndarray:
    size = 2 * radius + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def _flow_shape(native: tuple[int, int], flow_size: int) -> tuple[int, int]:
    """Flow resolution: short side ``flow_size`` (never upscaled), aspect ratio kept."""
    h, w = native
    scale = min(1.0, flow_size / min(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def _check_image(image: np.ndarray) -> tuple[int, int]:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise DevaError(f"image must be an (H, W, 3) RGB array, got shape {shape}")
    if image.dtype != np.uint8:
        raise DevaError(f"image must be uint8, got dtype {image.dtype}")
    return int(image.shape[0]), int(image.shape[1])
