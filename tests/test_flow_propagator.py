"""The optical-flow propagator: the shared contract, plus what is specific to flow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from propagator_contract import SCENE, PropagatorContract, iou, load_davis, make_scene, texture

from deva.errors import DevaError
from deva.propagation.flow import FlowPropagator


class TestFlowPropagatorContract(PropagatorContract):
    @pytest.fixture
    def make_propagator(self) -> Callable[[], FlowPropagator]:
        return FlowPropagator


def trail_and_iou(propagator: FlowPropagator) -> tuple[float, float]:
    """Propagate the square through a panning shot; return the share of a 6 px band behind it
    that reads as object, and the square's IoU, after 5 frames."""
    # A smooth background's flow is filled in from its surroundings, so the pixels it uncovers
    # get the background's motion and sample the square's old place: a trail. Seed 6 gives a
    # clear one (most seeds do; the trail's size depends on the texture).
    background = texture(128, 160 + 4 * 6, seed=6, low=60, amplitude=120, cells=((16, 1.0),))
    scene = make_scene(6, step=4, pan=4, shape=(128, 160), side=40, background=background)
    propagator.memorize(scene.images[0], scene.square[:1], [1])
    for frame in range(1, 6):
        labels = propagator.propagate(scene.images[frame]).argmax(axis=0)
    ys, xs = np.nonzero(scene.square[5])
    behind = np.zeros_like(scene.square[5])
    behind[ys.min() : ys.max() + 1, xs.min() - 6 : xs.min()] = True
    return float(np.mean(labels[behind] == 1)), iou(labels == 1, scene.square[5])


def test_occlusion_handling_removes_the_trail() -> None:
    trail, square_iou = trail_and_iou(FlowPropagator(occlusion_threshold=None))
    assert trail > 0.5  # measured 0.69, IoU 0.65
    handled_trail, handled_iou = trail_and_iou(FlowPropagator())
    assert handled_trail < 0.1  # measured 0.00, IoU 0.80
    assert handled_iou > square_iou + 0.1


def test_square_is_tracked_with_and_without_occlusion_handling() -> None:
    for propagator in (FlowPropagator(), FlowPropagator(occlusion_threshold=None)):
        propagator.memorize(SCENE.images[0], SCENE.square[:1], [1])
        for frame in range(1, 8):
            labels = propagator.propagate(SCENE.images[frame]).argmax(axis=0)
        assert iou(labels == 1, SCENE.square[7]) > 0.8


def test_blackswan_ten_frames(davis_root: Path) -> None:
    images, truth = load_davis(davis_root, "blackswan", 11)
    propagator = FlowPropagator()
    propagator.memorize(images[0], truth[0][None], [1])
    for frame in range(1, 11):
        probs = propagator.propagate(images[frame])
    # Measured 0.83 with the defaults, 0.89 with occlusion handling off: the strict check erodes
    # a little where flow is noisy, a trade that pays once detections repair the erosion.
    assert iou(probs.argmax(axis=0) == 1, truth[10]) > 0.8


def test_images_of_another_size_are_refused() -> None:
    propagator = FlowPropagator()
    propagator.memorize(SCENE.images[0], SCENE.masks(0), [1, 2])
    smaller = np.ascontiguousarray(SCENE.images[1, :64])
    with pytest.raises(DevaError, match="differs from this video"):
        propagator.propagate(smaller)
    with pytest.raises(DevaError, match="differs from this video"):
        propagator.align(smaller, np.zeros((1, 64, smaller.shape[1]), bool), smaller)
    with pytest.raises(DevaError, match="one size"):
        propagator.align(SCENE.images[0], SCENE.square[:1], smaller)


@pytest.mark.parametrize(
    ("masks", "ids", "message"),
    [
        (np.zeros((2, 10, 10), bool), [1, 2], "to match the image"),
        (np.zeros((2, 96, 128), bool), [1], "2 masks for 1 object ids"),
        (np.zeros((2, 96, 128), bool), [3, 3], "unique"),
    ],
    ids=["wrong size", "count mismatch", "duplicate ids"],
)
def test_bad_masks_are_refused(masks: np.ndarray, ids: list[int], message: str) -> None:
    with pytest.raises(DevaError, match=message):
        FlowPropagator().memorize(SCENE.images[0], masks, ids)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"preset": "turbo"}, "unknown DIS preset"),
        ({"flow_size": 8}, "flow_size"),
        ({"occlusion_threshold": -1.0}, "occlusion_threshold"),
        ({"finest_scale": -1}, "finest_scale"),
    ],
)
def test_bad_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(DevaError, match=message):
        FlowPropagator(**options)


def test_images_must_be_rgb_uint8() -> None:
    with pytest.raises(DevaError, match="uint8"):
        FlowPropagator().propagate(SCENE.images[0].astype(np.float32))
    with pytest.raises(DevaError, match="RGB"):
        FlowPropagator().propagate(SCENE.images[0, :, :, 0])


def test_overlapping_masks_share_pixels() -> None:
    propagator = FlowPropagator()
    both = np.stack([SCENE.square[0], SCENE.square[0]])
    propagator.memorize(SCENE.images[0], both, [1, 2])
    probs = propagator.propagate(SCENE.images[0])  # same frame: no motion
    inside = (
        SCENE.square[0]
        & np.roll(SCENE.square[0], 2, axis=(0, 1))
        & np.roll(SCENE.square[0], -2, axis=(0, 1))
    )
    np.testing.assert_allclose(probs[1:, inside], 0.5, atol=1e-3)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-4)


def test_small_images_work_and_tiny_ones_are_refused() -> None:
    small = np.ascontiguousarray(SCENE.images[0, :16, :20])
    mask = np.zeros((1, 16, 20), bool)
    mask[0, 4:12, 5:15] = True
    propagator = FlowPropagator()
    propagator.memorize(small, mask, [1])
    probs = propagator.propagate(small)  # the same frame again: zero flow, the mask comes back
    np.testing.assert_allclose(probs[1], mask[0], atol=1e-6)
    with pytest.raises(DevaError, match="too small"):
        FlowPropagator().propagate(np.zeros((8, 10, 3), np.uint8))


def test_min_fragment_removes_small_detached_pieces_only():
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    masks = np.zeros((1, 64, 64), bool)
    masks[0, 10:40, 10:40] = True  # main body: 900 px
    masks[0, 50:53, 50:53] = True  # detached speck: 9 px (1 % of the body)
    plain, cleaned = FlowPropagator(), FlowPropagator(min_fragment=0.2)
    for propagator in (plain, cleaned):
        propagator.propagate(image)
        propagator.memorize(image, masks, [1])
    kept = plain.propagate(image).argmax(0) == 1
    tidy = cleaned.propagate(image).argmax(0) == 1
    assert kept[51, 51] and not tidy[51, 51]
    assert tidy[20:30, 20:30].all()


def tiled_scene(frames: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """A panoptic clip: a textured square (label 3) moving right over two stuff regions (top 1,
    bottom 2) that tile the rest, while the camera pans left (new content enters on the right).
    Images (T, H, W, 3) uint8 and true labels (T, H, W)."""
    height, width, pan, step, side = 96, 128, 3, 4, 32
    wide = width + pan * frames
    background = texture(height, wide, seed=1)
    background[height // 2 :] = texture(height - height // 2, wide, seed=3, low=100)
    stuff = np.ones((height, wide), np.int32)
    stuff[height // 2 :] = 2
    patch = texture(side, side, seed=2, low=120, amplitude=120)
    images, truth = [], []
    for frame in range(frames):
        image = background[:, pan * frame : pan * frame + width].copy()
        labels = stuff[:, pan * frame : pan * frame + width].copy()
        y, x = 32, 16 + step * frame
        image[y : y + side, x : x + side] = patch
        labels[y : y + side, x : x + side] = 3
        images.append(image)
        truth.append(labels)
    return np.stack(images), np.stack(truth)


def track_tiled(propagator: FlowPropagator) -> list[np.ndarray]:
    images, truth = tiled_scene()
    propagator.memorize(images[0], truth[0][None] == np.arange(1, 4).reshape(3, 1, 1), [1, 2, 3])
    return [propagator.propagate(image).argmax(axis=0) for image in images[1:]]


def test_fill_unknown_labels_every_pixel_of_a_tiled_scene() -> None:
    _, truth = tiled_scene()
    plain, filled = track_tiled(FlowPropagator()), track_tiled(FlowPropagator(fill_unknown=True))
    last = truth[-1]
    for labels in filled:
        assert (labels > 0).all()
    unlabelled = np.mean(plain[-1] == 0)
    plain_iou = [iou(plain[-1] == k, last == k) for k in (1, 2, 3)]
    filled_iou = [iou(filled[-1] == k, last == k) for k in (1, 2, 3)]
    assert unlabelled > 0.1  # measured 0.24: entering and disoccluded content, no label
    # Measured stuff 0.74/0.75 -> 0.93/0.91; the moving square 0.90 -> 0.55: the band it
    # uncovers is nearest to the square and goes to it (mean IoU 0.800 -> 0.796).
    assert filled_iou[0] > plain_iou[0] + 0.1 and filled_iou[1] > plain_iou[1] + 0.1
    assert filled_iou[2] > 0.45


def test_fill_unknown_off_is_the_default() -> None:
    default, off = track_tiled(FlowPropagator()), track_tiled(FlowPropagator(fill_unknown=False))
    for a, b in zip(default, off, strict=True):
        np.testing.assert_array_equal(a, b)
