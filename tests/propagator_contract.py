"""The behaviour every ``Propagator`` must show, as a mix-in test class.

Use it from a test module with a ``Test*`` subclass that provides a factory of fresh instances:

    class TestMyPropagatorContract(PropagatorContract):
        @pytest.fixture
        def make_propagator(self):
            return lambda: MyPropagator(device="cpu")

The checks run on a generated scene (a textured square sliding right over a textured background,
so the true position is known in every frame) and on real DAVIS frames (``davis_root`` fixture).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from deva.propagation.base import Propagator

HEIGHT, WIDTH = 96, 128
SIDE = 32  # of the moving square, px
STEP = 3  # px to the right per frame
START = (30, 20)  # (y, x) of the square's top-left corner in frame 0
STATIC_BOX = (10, 90, 60, 120)  # (y0, x0, y1, x1) of a still second object, clear of the square


@dataclass(frozen=True)
class Scene:
    """A generated clip: images (T, H, W, 3) uint8 and the square's true masks (T, H, W) bool."""

    images: np.ndarray
    square: np.ndarray
    static: np.ndarray  # (H, W) bool, a second object that does not move

    def masks(self, frame: int) -> np.ndarray:
        """(2, H, W) bool: the square and the static object at ``frame``."""
        return np.stack([self.square[frame], self.static])


def texture(
    height: int,
    width: int,
    seed: int,
    *,
    low: int = 20,
    amplitude: int = 150,
    cells: tuple[tuple[int, float], ...] = ((16, 0.5), (6, 0.3), (2, 0.2)),
) -> np.ndarray:
    """(H, W, 3) uint8 in [low, low + amplitude]: random blotches at the given (cell size px,
    weight) scales. Something for any matcher to lock on to, and no periodic pattern that
    could be matched at the wrong shift."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.float32)
    for cell, weight in cells:
        coarse = rng.random((height // cell + 2, width // cell + 2, 3)).astype(np.float32)
        image += weight * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return (np.clip(image, 0.0, 1.0) * amplitude + low).astype(np.uint8)


def make_scene(
    num_frames: int = 8,
    *,
    step: int = STEP,
    pan: int = 0,
    shape: tuple[int, int] = (HEIGHT, WIDTH),
    side: int = SIDE,
    background: np.ndarray | None = None,
) -> Scene:
    """The square moves ``step`` px right per frame while the background slides ``pan`` px left
    (a panning camera). ``background`` must be ``pan * num_frames`` px wider than ``shape``."""
    height, width = shape
    if background is None:
        background = texture(height, width + pan * num_frames, seed=1)
    patch = texture(side, side, seed=2, low=120, amplitude=120)
    images, squares = [], []
    for frame in range(num_frames):
        y, x = START[0], START[1] + step * frame
        image = background[:, pan * frame : pan * frame + width].copy()
        image[y : y + side, x : x + side] = patch
        square = np.zeros((height, width), bool)
        square[y : y + side, x : x + side] = True
        images.append(image)
        squares.append(square)
    static = np.zeros((height, width), bool)
    y0, x0, y1, x1 = STATIC_BOX
    static[y0:y1, x0:x1] = True
    return Scene(np.stack(images), np.stack(squares), static)


SCENE = make_scene()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def load_davis(root: Path, sequence: str, frames: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The first ``frames`` RGB images and (H, W) bool ground-truth masks of a DAVIS-16 clip."""
    images, masks = [], []
    for index in range(frames):
        name = f"{index:05d}"
        jpeg = root / "JPEGImages" / "480p" / sequence / f"{name}.jpg"
        images.append(np.asarray(Image.open(jpeg).convert("RGB")))
        masks.append(
            np.asarray(Image.open(root / "Annotations" / "480p" / sequence / f"{name}.png")) > 0
        )
    return images, masks


def check_probabilities(probs: np.ndarray, num_objects: int, shape: tuple[int, int]) -> None:
    assert probs.shape == (1 + num_objects, *shape)
    assert probs.dtype == np.float32
    assert probs.min() >= 0.0
    assert probs.max() <= 1.0
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-4)


class PropagatorContract:
    """Contract tests; a subclass supplies ``make_propagator`` (a zero-argument factory)."""

    @pytest.fixture
    def make_propagator(self) -> Callable[[], Propagator]:
        pytest.fail("a subclass must provide the make_propagator fixture")

    @pytest.fixture
    def propagator(self, make_propagator: Callable[[], Propagator]) -> Propagator:
        return make_propagator()

    def test_satisfies_the_protocol(self, propagator: Propagator) -> None:
        assert isinstance(propagator, Propagator)
        assert propagator.object_ids == []

    def test_empty_memory_is_all_background(self, propagator: Propagator) -> None:
        for frame in range(2):
            probs = propagator.propagate(SCENE.images[frame])
            assert probs.shape == (1, HEIGHT, WIDTH)
            assert probs.dtype == np.float32
            assert np.all(probs == 1.0)
        assert propagator.object_ids == []

    def test_probabilities_are_well_formed(self, propagator: Propagator) -> None:
        propagator.memorize(SCENE.images[0], SCENE.masks(0), [4, 9])
        assert propagator.object_ids == [4, 9]
        for frame in range(1, 4):
            check_probabilities(propagator.propagate(SCENE.images[frame]), 2, (HEIGHT, WIDTH))
        assert propagator.object_ids == [4, 9]

    def test_channels_follow_object_ids(self, make_propagator: Callable[[], Propagator]) -> None:
        for ids, square_channel, static_channel in (([7, 3], 1, 2), ([3, 7], 2, 1)):
            propagator = make_propagator()
            masks = SCENE.masks(0) if square_channel == 1 else SCENE.masks(0)[::-1]
            propagator.memorize(SCENE.images[0], masks, ids)
            assert propagator.object_ids == ids
            labels = propagator.propagate(SCENE.images[1]).argmax(axis=0)
            assert iou(labels == square_channel, SCENE.square[1]) > 0.7
            assert iou(labels == static_channel, SCENE.static) > 0.7

    def test_tracks_a_moving_square(self, propagator: Propagator) -> None:
        propagator.memorize(SCENE.images[0], SCENE.masks(0), [1, 2])
        for frame in range(1, 6):
            labels = propagator.propagate(SCENE.images[frame]).argmax(axis=0)
        # After 5 frames the square moved 15 px; a propagator that stands still scores ~0.36.
        assert iou(labels == 1, SCENE.square[5]) > 0.7
        assert iou(labels == 2, SCENE.static) > 0.7

    def test_align_moves_masks_to_the_destination(self, propagator: Propagator) -> None:
        probs = propagator.align(SCENE.images[0], SCENE.square[:1], SCENE.images[3])
        check_probabilities(probs, 1, (HEIGHT, WIDTH))
        assert iou(probs.argmax(axis=0) == 1, SCENE.square[3]) > 0.7
        # align on an empty propagator leaves it empty
        assert propagator.object_ids == []
        assert propagator.propagate(SCENE.images[4]).shape == (1, HEIGHT, WIDTH)

    def test_align_leaves_memory_untouched(self, make_propagator: Callable[[], Propagator]) -> None:
        used, twin = make_propagator(), make_propagator()
        for propagator in (used, twin):
            propagator.memorize(SCENE.images[0], SCENE.masks(0), [1, 2])
            propagator.propagate(SCENE.images[1])
        used.align(SCENE.images[5], SCENE.static[None], SCENE.images[7])
        assert used.object_ids == twin.object_ids == [1, 2]
        for frame in (2, 3):
            np.testing.assert_allclose(
                used.propagate(SCENE.images[frame]), twin.propagate(SCENE.images[frame]), atol=1e-5
            )

    def test_forget_drops_channels_and_keeps_order(self, propagator: Propagator) -> None:
        third = np.zeros((HEIGHT, WIDTH), bool)
        third[75:90, 5:40] = True
        propagator.memorize(
            SCENE.images[0], np.stack([SCENE.square[0], SCENE.static, third]), [5, 6, 8]
        )
        propagator.forget([6, 99])  # 99 is unknown: ignored
        assert propagator.object_ids == [5, 8]
        probs = propagator.propagate(SCENE.images[1])
        check_probabilities(probs, 2, (HEIGHT, WIDTH))
        labels = probs.argmax(axis=0)
        assert iou(labels == 1, SCENE.square[1]) > 0.7
        assert iou(labels == 2, third) > 0.7
        assert np.mean(labels[SCENE.static] == 0) > 0.9  # the forgotten object became background
        propagator.forget([5, 8])
        assert propagator.object_ids == []
        assert np.all(propagator.propagate(SCENE.images[2]) == 1.0)

    def test_reset_empties_and_allows_a_new_size(self, propagator: Propagator) -> None:
        propagator.memorize(SCENE.images[0], SCENE.masks(0), [1, 2])
        propagator.propagate(SCENE.images[1])
        propagator.reset()
        assert propagator.object_ids == []
        assert np.all(propagator.propagate(SCENE.images[2]) == 1.0)
        propagator.reset()
        smaller = np.ascontiguousarray(SCENE.images[3, :64, :80])
        assert propagator.propagate(smaller).shape == (1, 64, 80)

    def test_memorize_replaces_ids_and_order(self, propagator: Propagator) -> None:
        propagator.memorize(SCENE.images[0], SCENE.masks(0), [1, 2])
        propagator.propagate(SCENE.images[1])
        newcomer = np.zeros((HEIGHT, WIDTH), bool)
        newcomer[70:90, 10:30] = True
        masks = np.stack([SCENE.static, newcomer])
        propagator.memorize(SCENE.images[1], masks, [2, 5])  # 1 dropped, 2 kept, 5 new
        assert propagator.object_ids == [2, 5]
        labels = propagator.propagate(SCENE.images[2]).argmax(axis=0)
        assert iou(labels == 1, SCENE.static) > 0.7
        assert iou(labels == 2, newcomer) > 0.7
        assert np.mean(labels[SCENE.square[2]] == 0) > 0.9  # the dropped square is background

    def test_memorize_nothing(self, propagator: Propagator) -> None:
        propagator.memorize(SCENE.images[0], SCENE.masks(0), [1, 2])
        propagator.memorize(SCENE.images[1], np.zeros((0, HEIGHT, WIDTH), bool), [])
        assert propagator.object_ids == []
        probs = propagator.propagate(SCENE.images[2])
        assert probs.shape == (1, HEIGHT, WIDTH)
        assert np.all(probs == 1.0)

    def test_real_frames(self, propagator: Propagator, davis_root: Path) -> None:
        images, truth = load_davis(davis_root, "blackswan", 6)
        height, width = truth[0].shape
        left = truth[0].copy()
        left[:, width // 2 :] = False
        right = truth[0] & ~left
        propagator.memorize(images[0], np.stack([left, right]), [1, 2])
        for frame in range(1, 6):
            probs = propagator.propagate(images[frame])
            check_probabilities(probs, 2, (height, width))
        assert iou(probs.argmax(axis=0) > 0, truth[5]) > 0.7
