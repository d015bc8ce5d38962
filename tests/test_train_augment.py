"""Training augmentations: every geometric step moves the image and its masks together."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from deva.train import augment as A

SHAPE = (200, 260)


def scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A dark textured background with a bright textured off-centre rectangle (id 1): the pixel
    brightness says which object a pixel belongs to, whatever the colour jitter does."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 70, size=(*SHAPE, 3)).astype(np.uint8)
    ids = np.zeros(SHAPE, dtype=np.uint16)
    ids[40:150, 30:150] = 1
    image[ids == 1] = rng.integers(200, 256, size=(int((ids == 1).sum()), 3))
    return image, ids


def bright(image: np.ndarray) -> np.ndarray:
    """Pixels that came from the rectangle (uint8 or [0, 1] float images)."""
    scale = 255.0 if image.dtype == np.uint8 else 1.0
    return A.gray(image.astype(np.float32) / scale) > 0.62


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of a and b away from b's edges (a 2-pixel band, where resampling mixes colours)."""
    kernel = np.ones((5, 5), np.uint8)
    grown = cv2.dilate(b.astype(np.uint8), kernel) > 0
    shrunk = cv2.erode(b.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE) > 0
    keep = ~(grown & ~shrunk)
    a, b = a & keep, b & keep
    return float((a & b).sum()) / max(1, int((a | b).sum()))


def assert_aligned(image: np.ndarray, ids: np.ndarray) -> None:
    mask = ids == 1
    assert mask.sum() > 200, "the object left the frame; pick another seed"
    assert iou(bright(image), mask) > 0.95


def test_alignment_check_catches_a_mask_warped_differently() -> None:
    image, ids = scene()
    rng = np.random.default_rng(0)
    matrix = A.random_affine(rng, SHAPE, degrees=20, scale=(0.8, 1.2), shear=10)
    warped, _ = A.warp(image, ids, matrix, SHAPE)
    _, other_ids = A.warp(image, ids, A.translation(6, 4) @ matrix, SHAPE)
    assert iou(bright(warped), other_ids == 1) < 0.9


@pytest.mark.parametrize("seed", range(4))
def test_affine_keeps_mask_on_object(seed: int) -> None:
    image, ids = scene(seed)
    rng = np.random.default_rng(seed)
    matrix = A.random_affine(rng, SHAPE, degrees=25, scale=(0.5, 2.0), shear=20)
    assert_aligned(*A.warp(image, ids, matrix, SHAPE))


def test_flip_moves_object_to_the_other_side() -> None:
    image, ids = scene()
    warped, warped_ids = A.warp(image, ids, A.hflip_matrix(SHAPE[1]), SHAPE)
    assert_aligned(warped, warped_ids)
    np.testing.assert_array_equal(warped_ids, ids[:, ::-1])


def test_strong_shrink_takes_the_antialiased_path_and_stays_aligned() -> None:
    image, ids = scene()
    big = np.kron(image, np.ones((4, 4, 1), dtype=np.uint8))
    big_ids = np.kron(ids, np.ones((4, 4), dtype=np.uint16))
    matrix = A.resize_matrix(big.shape[:2], SHAPE)
    warped, warped_ids = A.warp(big, big_ids, matrix, SHAPE)
    assert_aligned(warped, warped_ids)
    assert iou(warped_ids == 1, ids == 1) > 0.98


@pytest.mark.parametrize("seed", range(3))
def test_crops_keep_mask_on_object(seed: int) -> None:
    image, ids = scene(seed)
    rng = np.random.default_rng(seed)
    box = A.random_resized_crop_box(rng, SHAPE, scale=(0.5, 1.0))
    assert_aligned(*A.warp(image, ids, A.crop_matrix(box, 128), (128, 128)))
    assert_aligned(*A.warp(image, ids, A.crop_matrix((20, 30, 150, 140), 96), (96, 96)))


def test_random_resized_crop_box_stays_inside_the_image() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        x0, y0, w, h = A.random_resized_crop_box(rng, SHAPE, scale=(0.16, 2.0))
        assert x0 >= 0 and y0 >= 0 and w > 0 and h > 0
        assert x0 + w <= SHAPE[1] and y0 + h <= SHAPE[0]


@pytest.mark.parametrize("seed", range(3))
def test_tps_keeps_mask_on_object_and_really_warps(seed: int) -> None:
    image, ids = scene(seed)
    maps = A.random_tps_maps(np.random.default_rng(seed), SHAPE, sigma=0.1)
    warped, warped_ids = A.remap(image, ids, maps)
    assert_aligned(warped, warped_ids)
    assert (warped_ids != ids).sum() > 100


def test_tps_without_displacement_is_the_identity() -> None:
    map_x, map_y = A.random_tps_maps(np.random.default_rng(0), SHAPE, sigma=0.0)
    ys, xs = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    assert np.abs(map_x - xs).max() < 1e-2 and np.abs(map_y - ys).max() < 1e-2


@pytest.mark.parametrize("seed", range(6))
def test_static_pipeline_frames_stay_aligned(seed: int) -> None:
    image, ids = scene(seed)
    rng = np.random.default_rng(seed)
    frames = A.static_sequence(rng, image, ids, size=96, num_frames=3, tps_probability=1.0)
    checked = 0
    for pixels, frame_ids in frames:
        assert pixels.shape == (96, 96, 3) and pixels.dtype == np.float32
        assert frame_ids.shape == (96, 96)
        assert pixels.min() >= 0.0 and pixels.max() <= 1.0
        if (frame_ids == 1).sum() > 200:
            assert_aligned(pixels, frame_ids)
            checked += 1
    assert checked >= 1


@pytest.mark.parametrize("seed", range(6))
def test_video_stable_transform_is_one_warp_for_all_frames(seed: int) -> None:
    image, ids = scene(seed)
    moved = np.roll(image, 12, axis=1), np.roll(ids, 12, axis=1)
    rng = np.random.default_rng(seed)
    frames = A.video_sequence(rng, [(image, ids), moved, (image, ids)], size=96)
    for pixels, frame_ids in frames:
        if (frame_ids == 1).sum() > 200:
            assert_aligned(pixels, frame_ids)
    # the same input frame gives the same output: one geometric + colour transform per sequence
    np.testing.assert_array_equal(frames[0][1], frames[2][1])
    np.testing.assert_array_equal(frames[0][0], frames[2][0])


def test_jitter_identity_grayscale_and_normalise() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((8, 9, 3)).astype(np.float32)
    np.testing.assert_allclose(A.apply_jitter(image, A.Jitter()), image)
    jittered = A.apply_jitter(image, A.random_jitter(rng, 0.1, 0.05, 0.05, 0.05))
    assert jittered.shape == image.shape and not np.allclose(jittered, image)
    assert jittered.min() >= 0.0 and jittered.max() <= 1.0
    grey = A.to_grayscale(image)
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    chw = A.normalise(image)
    assert chw.shape == (3, 8, 9)
    back = chw.transpose(1, 2, 0) * np.array(A.IMAGENET_STD) + np.array(A.IMAGENET_MEAN)
    np.testing.assert_allclose(back, image, atol=1e-5)
