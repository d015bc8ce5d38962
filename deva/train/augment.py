"""Training augmentations of spec §7 on numpy arrays, with OpenCV: image and id map move together.

All geometric steps of one frame are composed into a single 3×3 matrix, so every frame is
resampled once: the image bicubically (fill = ImageNet mean colour), the id map by nearest
neighbour (fill = 0) through the very same matrix, so a pixel's object and its colour always come
from the same source point. Random parameters come from the caller's ``numpy.random.Generator``,
never from global state, so a sample is a pure function of its seed.

Coordinates are pixel indices (pixel centres at integers), as OpenCV's warps use them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MEAN_FILL = (124, 116, 104)  # the ImageNet mean as uint8 RGB: what uncovered pixels get

Shape = tuple[int, int]  # (height, width)


# ---------------------------------------------------------------------------------------------
# Matrices (3×3 homogeneous, mapping source pixel coordinates to output pixel coordinates)


def translation(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def scaling(sx: float, sy: float) -> np.ndarray:
    return np.array([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])


def hflip_matrix(width: int) -> np.ndarray:
    """Mirror left-right: column x goes to column width - 1 - x."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def affine_about_centre(
    shape: Shape, *, angle: float = 0.0, scale: float = 1.0, shear: float = 0.0
) -> np.ndarray:
    """Rotate by ``angle`` degrees, scale, and shear along x by ``shear`` degrees around the image
    centre; the canvas keeps its size (as torchvision's RandomAffine)."""
    cy, cx = (shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0
    a = math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)
    rotate = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    shear_x = np.array([[1.0, math.tan(math.radians(shear)), 0.0], [0.0, 1.0, 0.0], [0, 0, 1]])
    return translation(cx, cy) @ rotate @ shear_x @ scaling(scale, scale) @ translation(-cx, -cy)


def resize_matrix(source: Shape, target: Shape) -> np.ndarray:
    """Stretch ``source`` onto ``target`` with pixel areas (not centres) lined up."""
    fy, fx = target[0] / source[0], target[1] / source[1]
    return translation(0.5 * fx - 0.5, 0.5 * fy - 0.5) @ scaling(fx, fy)


def crop_matrix(box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """Map the crop window ``box`` = (x0, y0, width, height) onto a size×size output."""
    x0, y0, w, h = box
    fx, fy = size / w, size / h
    return translation(0.5 * fx - 0.5, 0.5 * fy - 0.5) @ scaling(fx, fy) @ translation(-x0, -y0)


def random_affine(
    rng: np.random.Generator,
    shape: Shape,
    *,
    degrees: float,
    scale: tuple[float, float] = (1.0, 1.0),
    shear: float = 0.0,
) -> np.ndarray:
    """RandomAffine(degrees, scale, shear): angle and x-shear uniform in ±, scale uniform."""
    return affine_about_centre(
        shape,
        angle=float(rng.uniform(-degrees, degrees)),
        scale=float(rng.uniform(*scale)),
        shear=float(rng.uniform(-shear, shear)),
    )


def random_resized_crop_box(
    rng: np.random.Generator,
    shape: Shape,
    *,
    scale: tuple[float, float],
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[float, float, float, float]:
    """A crop window as torchvision's RandomResizedCrop picks it: area fraction in ``scale``,
    log-uniform aspect ``ratio``, 10 tries to fit inside the image, else a centre crop."""
    height, width = shape
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * float(rng.uniform(*scale))
        aspect = math.exp(float(rng.uniform(*log_ratio)))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            y0 = int(rng.integers(0, height - h + 1))
            x0 = int(rng.integers(0, width - w + 1))
            return (x0, y0, w, h)
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        w, h = width, height
    return ((width - w) // 2, (height - h) // 2, w, h)


# ---------------------------------------------------------------------------------------------
# Resampling


def warp(
    image: np.ndarray, ids: np.ndarray, matrix: np.ndarray, out_shape: Shape
) -> tuple[np.ndarray, np.ndarray]:
    """Resample an (H, W, 3) uint8 image and its (H, W) uint16 id map through ``matrix``.

    Strong shrinking first area-averages the image (anti-aliasing, as a PIL resize would); the id
    map is always sampled from the original at the same points, so both stay aligned.
    """
    size = (out_shape[1], out_shape[0])
    shrink = math.sqrt(abs(float(np.linalg.det(matrix[:2, :2]))))
    source, image_matrix = image, matrix
    if shrink < 0.5:
        small = (max(1, round(image.shape[0] * shrink)), max(1, round(image.shape[1] * shrink)))
        source = cv2.resize(image, (small[1], small[0]), interpolation=cv2.INTER_AREA)
        image_matrix = matrix @ np.linalg.inv(resize_matrix(image.shape[:2], small))
    warped = cv2.warpAffine(
        source,
        image_matrix[:2],
        size,
        flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=MEAN_FILL,
    )
    warped_ids = cv2.warpAffine(
        ids,
        matrix[:2],
        size,
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return warped, warped_ids


def random_tps_maps(
    rng: np.random.Generator, shape: Shape, *, points: int = 12, sigma: float = 0.02
) -> tuple[np.ndarray, np.ndarray]:
    """Sampling maps of a thin-plate-spline warp: ``points`` random control points in [-1, 1]²,
    each displaced by N(0, sigma) in normalised units; smooth in between."""
    height, width = shape
    ctrl = rng.uniform(-1.0, 1.0, size=(points, 2))
    moved = ctrl + rng.normal(0.0, sigma, size=(points, 2))
    kernel = _tps_kernel(ctrl, ctrl) + 1e-6 * np.eye(points)
    poly = np.concatenate([np.ones((points, 1)), ctrl], axis=1)
    system = np.zeros((points + 3, points + 3))
    system[:points, :points] = kernel
    system[:points, points:] = poly
    system[points:, :points] = poly.T
    rhs = np.zeros((points + 3, 2))
    rhs[:points] = moved
    coef = np.linalg.lstsq(system, rhs, rcond=None)[0]
    # the affine part exactly at every pixel; the smooth radial part on a 4× coarser grid
    xs, ys = np.linspace(-1.0, 1.0, width), np.linspace(-1.0, 1.0, height)
    coarse = (max(2, -(-height // 4)), max(2, -(-width // 4)))
    cxs = _coarse_points(width, coarse[1])
    cys = _coarse_points(height, coarse[0])
    grid = np.stack(np.meshgrid(cxs, cys, indexing="xy"), axis=-1).reshape(-1, 2)
    radial = (_tps_kernel(grid, ctrl) @ coef[:points]).reshape(*coarse, 2).astype(np.float32)
    radial = cv2.resize(radial, (width, height), interpolation=cv2.INTER_LINEAR)
    linear_x = (
        coef[points, 0] + xs[None, :] * coef[points + 1, 0] + ys[:, None] * coef[points + 2, 0]
    )
    linear_y = (
        coef[points, 1] + xs[None, :] * coef[points + 1, 1] + ys[:, None] * coef[points + 2, 1]
    )
    map_x = ((linear_x + radial[..., 0] + 1.0) * (width - 1) / 2.0).astype(np.float32)
    map_y = ((linear_y + radial[..., 1] + 1.0) * (height - 1) / 2.0).astype(np.float32)
    return map_x, map_y


def _coarse_points(length: int, count: int) -> np.ndarray:
    """Normalised positions of the samples cv2.resize interpolates from when going count->length."""
    fine = (np.arange(count) + 0.5) * length / count - 0.5
    return 2.0 * fine / (length - 1) - 1.0


def _tps_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return squared * np.log(squared + 1e-12)


def remap(
    image: np.ndarray, ids: np.ndarray, maps: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Resample image (bicubic) and id map (nearest) at the same source points."""
    map_x, map_y = maps
    warped = cv2.remap(image, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    warped_ids = cv2.remap(ids, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    return warped, warped_ids


# ---------------------------------------------------------------------------------------------
# Colour


@dataclass(frozen=True)
class Jitter:
    """Sampled ColorJitter factors and their order; apply the same to every frame of a group."""

    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0
    order: tuple[int, ...] = (0, 1, 2, 3)


def random_jitter(
    rng: np.random.Generator,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float = 0.0,
) -> Jitter:
    """ColorJitter: each factor uniform in [1 - x, 1 + x] (hue in ±x turns), random order."""
    return Jitter(
        brightness=float(rng.uniform(1 - brightness, 1 + brightness)),
        contrast=float(rng.uniform(1 - contrast, 1 + contrast)),
        saturation=float(rng.uniform(1 - saturation, 1 + saturation)),
        hue=float(rng.uniform(-hue, hue)),
        order=tuple(int(i) for i in rng.permutation(4)),
    )


def apply_jitter(image: np.ndarray, jitter: Jitter) -> np.ndarray:
    """Apply ``jitter`` to an (H, W, 3) float32 RGB image in [0, 1]."""
    for step in jitter.order:
        if step == 0 and jitter.brightness != 1.0:
            image = np.clip(image * jitter.brightness, 0.0, 1.0)
        elif step == 1 and jitter.contrast != 1.0:
            mean = float(gray(image).mean())
            image = np.clip((image - mean) * jitter.contrast + mean, 0.0, 1.0)
        elif step == 2 and jitter.saturation != 1.0:
            grey = gray(image)[..., None]
            image = np.clip((image - grey) * jitter.saturation + grey, 0.0, 1.0)
        elif step == 3 and jitter.hue != 0.0:
            hsv = cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2HSV)
            hsv[..., 0] = np.mod(hsv[..., 0] + 360.0 * jitter.hue, 360.0)
            image = np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0.0, 1.0)
    return image.astype(np.float32, copy=False)


def gray(image: np.ndarray) -> np.ndarray:
    """(H, W) luma of an RGB float image (ITU-R 601 weights, as torchvision)."""
    return image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114


def to_grayscale(image: np.ndarray) -> np.ndarray:
    return np.repeat(gray(image)[..., None], 3, axis=2).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The two §7 pipelines

Frames = list[tuple[np.ndarray, np.ndarray]]  # [(image float32 HWC in [0, 1], ids uint16 HW)]


def static_sequence(
    rng: np.random.Generator,
    image: np.ndarray,
    ids: np.ndarray,
    *,
    size: int = 384,
    num_frames: int = 3,
    tps_probability: float = 0.33,
) -> Frames:
    """Stage 0: turn one image + id map into ``num_frames`` synthetic size×size frames.

    Per sequence: scale 0.5–2 + h-flip, jitter (0.1, 0.05, 0.05, 0.05), 5 % grayscale.
    Per frame: affine (±20°, scale 0.5–2, shear 10, fill mean), resize short side to ``size``,
    random size×size crop (mean padding), jitter (0.1, 0.05, 0.05), TPS warp with p = 0.33.
    """
    shape = (int(image.shape[0]), int(image.shape[1]))
    sequence = affine_about_centre(shape, scale=float(rng.uniform(0.5, 2.0)))
    if rng.random() < 0.5:
        sequence = sequence @ hflip_matrix(shape[1])
    sequence_jitter = random_jitter(rng, 0.1, 0.05, 0.05, 0.05)
    grayscale = rng.random() < 0.05
    short = size / min(shape)
    canvas = (max(size, round(shape[0] * short)), max(size, round(shape[1] * short)))
    frames: Frames = []
    for _ in range(num_frames):
        per_frame = random_affine(rng, shape, degrees=20, scale=(0.5, 2.0), shear=10)
        y0 = int(rng.integers(0, canvas[0] - size + 1))
        x0 = int(rng.integers(0, canvas[1] - size + 1))
        matrix = translation(-x0, -y0) @ resize_matrix(shape, canvas) @ per_frame @ sequence
        out, out_ids = warp(image, ids, matrix, (size, size))
        if rng.random() < tps_probability:
            out, out_ids = remap(out, out_ids, random_tps_maps(rng, (size, size)))
        pixels = apply_jitter(out.astype(np.float32) / 255.0, random_jitter(rng, 0.1, 0.05, 0.05))
        pixels = apply_jitter(pixels, sequence_jitter)
        frames.append((to_grayscale(pixels) if grayscale else pixels, out_ids))
    return frames


def video_sequence(
    rng: np.random.Generator,
    frames: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    size: int = 384,
) -> Frames:
    """Stage 3 "stable" augmentation: one geometric transform for the whole sequence (h-flip,
    affine ±25° shear 20, random-resized-crop scale 0.16–2.0 to size×size), one jitter
    (0.1, 0.03, 0.03) then (0.1, 0.05, 0.05) for all frames (the official per-frame jitter is
    re-seeded identically per frame), 5 % grayscale. All frames must have the same shape."""
    shape = (int(frames[0][0].shape[0]), int(frames[0][0].shape[1]))
    geometry = random_affine(rng, shape, degrees=25, shear=20)
    if rng.random() < 0.5:
        geometry = geometry @ hflip_matrix(shape[1])
    box = random_resized_crop_box(rng, shape, scale=(0.16, 2.0))
    matrix = crop_matrix(box, size) @ geometry
    jitters = (random_jitter(rng, 0.1, 0.03, 0.03), random_jitter(rng, 0.1, 0.05, 0.05))
    grayscale = rng.random() < 0.05
    out: Frames = []
    for image, ids in frames:
        warped, warped_ids = warp(image, ids, matrix, (size, size))
        pixels = warped.astype(np.float32) / 255.0
        for jitter in jitters:
            pixels = apply_jitter(pixels, jitter)
        out.append((to_grayscale(pixels) if grayscale else pixels, warped_ids))
    return out


def normalise(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) float RGB in [0, 1] -> (3, H, W) float32 ImageNet-normalised."""
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(IMAGENET_STD, dtype=np.float32)
    return np.ascontiguousarray(((image - mean) / std).transpose(2, 0, 1), dtype=np.float32)
