"""Noisy detections made from ground truth (deva.eval.noise) and the IoU baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import DAVIS
from PIL import Image

from deva.errors import DevaError
from deva.eval.baseline import track_by_detection
from deva.eval.noise import NoiseModel, make_noisy_detection, write_noisy_detections
from deva.io.masks import read_id_png, write_id_png
from deva.types import Segmentation

CLEAN = NoiseModel.clean()


def _disk(height: int, width: int, cy: float, cx: float, radius: float) -> np.ndarray:
    ys, xs = np.mgrid[:height, :width]
    return (ys - cy) ** 2 + (xs - cx) ** 2 <= radius**2


def _three_objects() -> np.ndarray:
    """60×80 ground truth: a disk (1), a rectangle (2), a small square (5); the rest background."""
    gt = np.zeros((60, 80), dtype=np.int32)
    gt[_disk(60, 80, 20, 20, 12)] = 1
    gt[35:55, 40:75] = 2
    gt[5:12, 60:67] = 5
    return gt


def _bijection(gt: np.ndarray, ids: np.ndarray) -> dict[int, int]:
    """{gt id: detected id} if ``ids`` is ``gt`` with its ids renamed one-to-one, else fail."""
    assert ((gt == 0) == (ids == 0)).all()
    pairs = {(int(g), int(d)) for g, d in zip(gt.ravel(), ids.ravel(), strict=True) if g}
    mapping = dict(pairs)
    assert len(mapping) == len(pairs), f"a gt object got several ids: {sorted(pairs)}"
    assert len(set(mapping.values())) == len(mapping), f"two objects share an id: {mapping}"
    return mapping


# --- noise model -------------------------------------------------------------------------------


def test_clean_model_gives_the_ground_truth_with_shuffled_ids() -> None:
    gt = _three_objects()
    mappings = set()
    for seed in range(20):
        detection = make_noisy_detection(gt, np.random.default_rng(seed), CLEAN)
        mapping = _bijection(gt, detection.ids)
        assert sorted(mapping.values()) == [1, 2, 3]
        assert [s.id for s in detection.segments] == [1, 2, 3]
        assert all(s.category_id is None and 0.0 <= s.score <= 1.0 for s in detection.segments)
        mappings.add(tuple(sorted(mapping.items())))
    assert len(mappings) >= 4, "ids must be shuffled in every frame, not kept in gt order"


def test_miss_prob_one_detects_nothing() -> None:
    model = NoiseModel(miss_prob=1.0, split_prob=1.0, false_positive_rate=0.0, boundary_noise=3.0)
    detection = make_noisy_detection(_three_objects(), np.random.default_rng(0), model)
    assert not detection.ids.any()
    assert detection.segments == ()


def test_split_cuts_an_object_into_two_halves_that_cover_it() -> None:
    gt = _disk(40, 40, 19.5, 19.5, 14).astype(np.int32)
    model = NoiseModel(miss_prob=0.0, split_prob=1.0, false_positive_rate=0.0, boundary_noise=0.0)
    for seed in range(10):
        detection = make_noisy_detection(gt, np.random.default_rng(seed), model)
        assert sorted(s.id for s in detection.segments) == [1, 2]
        assert ((detection.ids > 0) == (gt > 0)).all()  # the union is exactly the object
        areas = [int((detection.ids == k).sum()) for k in (1, 2)]
        # A line through the centre of a disk halves it (up to the pixels on the line).
        assert all(0.4 < a / gt.sum() < 0.6 for a in areas), areas


def test_false_positives_are_extra_segments_on_background_only() -> None:
    gt = _three_objects()
    area_range = (0.01, 0.05)
    model = NoiseModel(
        miss_prob=0.0,
        split_prob=0.0,
        false_positive_rate=3.0,
        false_positive_area=area_range,
        boundary_noise=0.0,
    )
    num_false = 0
    true_scores, false_scores = [], []
    for seed in range(30):
        detection = make_noisy_detection(gt, np.random.default_rng(seed), model)
        mapping = _bijection_on_objects(gt, detection.ids)
        scores = {s.id: s.score for s in detection.segments}
        for segment_id, score in scores.items():
            if segment_id in mapping.values():
                true_scores.append(score)
                continue
            blob = detection.ids == segment_id
            assert not (blob & (gt > 0)).any(), "a false positive covers a true object"
            assert blob.sum() <= 2.5 * area_range[1] * gt.size  # star polygons reach ~2x
            false_scores.append(score)
            num_false += 1
    assert 30 * 3.0 * 0.6 < num_false <= 30 * 3.0 * 1.4
    assert np.mean(true_scores) > np.mean(false_scores) + 0.2


def _bijection_on_objects(gt: np.ndarray, ids: np.ndarray) -> dict[int, int]:
    """Like ``_bijection`` but only inside the objects (false positives may sit outside)."""
    inside = gt > 0
    return _bijection(gt[inside].reshape(1, -1), ids[inside].reshape(1, -1))


def test_boundary_noise_moves_edges_by_a_few_pixels() -> None:
    gt = _disk(100, 100, 50, 50, 30).astype(np.int32)
    model = NoiseModel(miss_prob=0.0, split_prob=0.0, false_positive_rate=0.0, boundary_noise=3.0)
    ious = []
    for seed in range(10):
        detected = make_noisy_detection(gt, np.random.default_rng(seed), model).ids > 0
        ious.append((detected & (gt > 0)).sum() / (detected | (gt > 0)).sum())
        # Nothing moves farther than offset + jag = 2 * boundary_noise (+1 for rounding).
        assert not (detected & ~_disk(100, 100, 50, 50, 37)).any()
        assert not (_disk(100, 100, 50, 50, 23) & ~detected).any()
    assert min(ious) > 0.7 and max(ious) < 0.99


def test_same_seed_same_detection_other_seed_differs() -> None:
    gt = _three_objects()
    model = NoiseModel(miss_prob=0.2, split_prob=0.5, false_positive_rate=2.0)
    first = make_noisy_detection(gt, np.random.default_rng(7), model)
    again = make_noisy_detection(gt, np.random.default_rng(7), model)
    assert np.array_equal(first.ids, again.ids) and first.segments == again.segments
    others = [make_noisy_detection(gt, np.random.default_rng(s), model) for s in range(8, 12)]
    assert any(not np.array_equal(first.ids, other.ids) for other in others)


@pytest.mark.parametrize(
    "field, value",
    [("miss_prob", -0.1), ("split_prob", 1.5), ("false_positive_rate", -1.0),
     ("boundary_noise", -2.0), ("false_positive_area", (0.1, 0.01))],
)  # fmt: skip
def test_invalid_noise_model_is_rejected(field: str, value: object) -> None:
    with pytest.raises(DevaError, match=field):
        NoiseModel(**{field: value})


def test_written_detections_round_trip(tmp_path: Path) -> None:
    gt_dir, out_dir = tmp_path / "gt" / "clip", tmp_path / "det"
    gt_dir.mkdir(parents=True)
    gt = _three_objects()
    names = ["00000", "00001", "00002"]
    for name in names:
        write_id_png(gt_dir / f"{name}.png", gt)
    model = NoiseModel(miss_prob=0.3, split_prob=0.5, false_positive_rate=2.0)

    assert write_noisy_detections(gt_dir, out_dir, model, seed=3) == 3
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        [f"{n}.png" for n in names] + [f"{n}.json" for n in names]
    )
    first = {}
    for name in names:
        with Image.open(out_dir / f"{name}.png") as image:
            assert image.mode == "P"
        ids = read_id_png(out_dir / f"{name}.png")
        listing = json.loads((out_dir / f"{name}.json").read_text())
        assert sorted(entry["id"] for entry in listing) == [int(i) for i in np.unique(ids) if i]
        assert all(set(entry) == {"id", "score"} for entry in listing)
        first[name] = ids
    assert not all(np.array_equal(first["00000"], first[n]) for n in names[1:])

    write_noisy_detections(gt_dir, tmp_path / "again", model, seed=3)
    for name in names:
        assert np.array_equal(first[name], read_id_png(tmp_path / "again" / f"{name}.png"))


def test_write_needs_ground_truth_files(tmp_path: Path) -> None:
    with pytest.raises(DevaError, match="no ground-truth"):
        write_noisy_detections(tmp_path, tmp_path / "out", NoiseModel(), seed=0)


def test_noise_statistics_on_real_davis_masks() -> None:
    model = NoiseModel(miss_prob=0.3, split_prob=0.4, false_positive_rate=2.0, boundary_noise=2.0)
    paths = sorted((DAVIS / "Annotations" / "480p" / "blackswan").glob("*.png"))[:50]
    assert len(paths) == 50
    misses = splits = false_positives = 0
    true_scores, false_scores, ious = [], [], []
    for index, path in enumerate(paths):
        gt = read_id_png(path) > 0
        detection = make_noisy_detection(gt.astype(np.int32), np.random.default_rng(index), model)
        true_ids = []
        for segment in detection.segments:
            segment_mask = detection.ids == segment.id
            if (segment_mask & gt).any():
                true_ids.append(segment.id)
                true_scores.append(segment.score)
            else:
                false_positives += 1
                false_scores.append(segment.score)
        if not true_ids:
            misses += 1
            continue
        splits += len(true_ids) == 2
        detected = np.isin(detection.ids, true_ids)
        ious.append((detected & gt).sum() / (detected | gt).sum())
    assert abs(misses / 50 - 0.3) < 0.15
    assert abs(splits / (50 - misses) - 0.4) < 0.2
    assert abs(false_positives / 50 - 2.0) < 0.6
    assert np.mean(true_scores) > np.mean(false_scores) + 0.2
    assert 0.85 < np.mean(ious) < 0.995  # boundaries are off by a few pixels, not destroyed


# --- tracking-by-detection baseline ------------------------------------------------------------


def _frames(*maps: str) -> list[Segmentation]:
    """Segmentations from id maps drawn as lines of digits, '.' = 0."""
    return [Segmentation.from_ids(_grid(drawing)) for drawing in maps]


def _grid(drawing: str) -> np.ndarray:
    rows = drawing.split()
    return np.array([[0 if c == "." else int(c) for c in row] for row in rows], dtype=np.int32)


def _present(ids: np.ndarray) -> list[int]:
    return [int(i) for i in np.unique(ids) if i]


EMPTY = "........ " * 8


def test_baseline_keeps_object_ids_through_shuffled_detection_ids() -> None:
    # A (3×4) moves right 1 px per frame (IoU 0.6); B (2×4) stays; the detector swaps their ids.
    detections = _frames(
        "1111.... 1111.... 1111.... ........ ........ ........ ..2222.. ..2222..",
        ".2222... .2222... .2222... ........ ........ ........ ..1111.. ..1111..",
        "..1111.. ..1111.. ..1111.. ........ ........ ........ ..2222.. ..2222..",
        "...2222. ...2222. ...2222. ........ ........ ........ ..1111.. ..1111..",
    )
    expected = [
        "1111.... 1111.... 1111.... ........ ........ ........ ..2222.. ..2222..",
        ".1111... .1111... .1111... ........ ........ ........ ..2222.. ..2222..",
        "..1111.. ..1111.. ..1111.. ........ ........ ........ ..2222.. ..2222..",
        "...1111. ...1111. ...1111. ........ ........ ........ ..2222.. ..2222..",
    ]
    outputs = list(track_by_detection(detections))
    assert len(outputs) == 4
    for output, want in zip(outputs, expected, strict=True):
        assert output.dtype == np.int32
        np.testing.assert_array_equal(output, _grid(want))


def test_baseline_has_no_memory_a_missed_object_returns_with_a_new_id() -> None:
    block = "........ .3333... .3333... .3333... ........ ........ ........ ........"
    outputs = list(track_by_detection(_frames(block, block, EMPTY, block)))
    assert [_present(o) for o in outputs] == [[1], [1], [], [2]]


def test_baseline_unmatched_segments_get_fresh_ids_never_reused() -> None:
    x = "44...... 44...... ........ ........ ........ ........ ........ ........"
    y = "........ ........ ........ ........ ........ ........ ......11 ......11"
    z = "........ ........ ........ ..2222.. ..2222.. ........ ........ ........"
    # z cut in two halves: each has IoU exactly 0.5 with z, not > 0.5, so both are new objects.
    z_cut = "........ ........ ........ ..1122.. ..1122.. ........ ........ ........"
    outputs = list(track_by_detection(_frames(x, y, z, z_cut)))
    assert [_present(o) for o in outputs] == [[1], [2], [3], [4, 5]]
    np.testing.assert_array_equal(outputs[3][3:5, 2:6], [[4, 4, 5, 5], [4, 4, 5, 5]])


def test_baseline_matches_one_to_one() -> None:
    # With a low threshold both halves of the object overlap it enough; only one keeps its id.
    whole = "........ ........ ..5555.. ..5555.. ..5555.. ..5555.. ........ ........"
    halves = "........ ........ ..7777.. ..7777.. ..2222.. ..2222.. ........ ........"
    outputs = list(track_by_detection(_frames(whole, halves), iou_threshold=0.1))
    top, bottom = _present(outputs[1][2:4]), _present(outputs[1][4:6])
    assert len(top) == 1 and len(bottom) == 1
    assert sorted(top + bottom) == [1, 2]


def test_baseline_rejects_frames_of_different_sizes() -> None:
    frames = [Segmentation.empty(8, 8), Segmentation.empty(8, 9)]
    with pytest.raises(DevaError, match="shape"):
        list(track_by_detection(frames))
