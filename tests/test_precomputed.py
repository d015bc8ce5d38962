"""Precomputed detections in the official DEVA layout, and id-map PNG round trips."""

import json

import numpy as np
import pytest
from PIL import Image

from deva.errors import DevaError
from deva.io.masks import davis_palette, encode_id_image, read_id_png, write_id_png
from deva.segmenters.precomputed import PrecomputedSegmenter

IMAGE = np.zeros((6, 8, 3), np.uint8)


def id_map(values: dict[int, tuple[slice, slice]], shape=(6, 8)) -> np.ndarray:
    ids = np.zeros(shape, np.int32)
    for value, (rows, cols) in values.items():
        ids[rows, cols] = value
    return ids


@pytest.mark.parametrize(
    ("largest", "mode"), [(1, "P"), (255, "P"), (256, "I;16"), (65535, "I;16"), (70000, "RGB")]
)
def test_id_png_round_trip_picks_the_smallest_lossless_encoding(tmp_path, largest, mode):
    ids = np.arange(48, dtype=np.int32).reshape(6, 8) % 7
    ids[0, 0] = largest
    write_id_png(tmp_path / "a.png", ids)
    assert Image.open(tmp_path / "a.png").mode == mode
    np.testing.assert_array_equal(read_id_png(tmp_path / "a.png"), ids)


def test_palette_png_uses_davis_colours(tmp_path):
    write_id_png(tmp_path / "a.png", np.array([[0, 1, 2]]))
    rgb = np.asarray(Image.open(tmp_path / "a.png").convert("RGB"))
    assert rgb[0].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    assert davis_palette()[3].tolist() == [128, 128, 0]


def test_rgb_and_rgba_pngs_decode_with_the_official_rule(tmp_path):
    rgb = np.zeros((2, 2, 4), np.uint8)
    rgb[0, 0] = (1, 2, 3, 255)  # 1 + 256*2 + 65536*3
    rgb[1, 1] = (7, 0, 0, 0)  # alpha is ignored
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb[..., :3]).save(tmp_path / "b.png")
    expected = [[1 + 512 + 196608, 0], [0, 7]]
    assert read_id_png(tmp_path / "a.png").tolist() == expected
    assert read_id_png(tmp_path / "b.png").tolist() == expected


def test_grayscale_png_is_read_as_ids(tmp_path):
    Image.fromarray(np.array([[0, 5], [9, 0]], np.uint8), mode="L").save(tmp_path / "a.png")
    assert read_id_png(tmp_path / "a.png").tolist() == [[0, 5], [9, 0]]


def test_encode_rejects_ids_that_do_not_fit():
    with pytest.raises(DevaError, match="24-bit"):
        encode_id_image(np.array([[256**3]]))


def test_per_frame_json_gives_meta_and_unlisted_ids_get_none(tmp_path):
    ids = id_map({3: (slice(0, 2), slice(0, 2)), 4: (slice(3, 5), slice(3, 5))})
    write_id_png(tmp_path / "f0.png", ids)
    (tmp_path / "f0.json").write_text(json.dumps([{"id": 3, "category_id": 2, "score": 0.75}]))
    detection = PrecomputedSegmenter(tmp_path, frame_name=lambda i: f"f{i}").segment(
        IMAGE, frame_index=0
    )
    by_id = {s.id: s for s in detection.segments}
    assert by_id[3].category_id == 2 and by_id[3].score == 0.75
    assert by_id[4].category_id is None
    np.testing.assert_array_equal(detection.ids, ids)


def test_global_pred_json_wins_and_pan_pred_is_used(tmp_path):
    (tmp_path / "pan_pred").mkdir()
    ids = id_map({1: (slice(0, 3), slice(0, 3))})
    write_id_png(tmp_path / "pan_pred" / "00001.png", ids)
    write_id_png(tmp_path / "pan_pred" / "00000.png", ids * 0)
    (tmp_path / "00001.json").write_text(json.dumps([{"id": 1, "category_id": 99}]))
    pred = {
        "annotations": [
            {
                "video_id": tmp_path.name,
                "annotations": [
                    {"segments_info": []},
                    {"segments_info": [{"id": 1, "category_id": 5, "isthing": True}]},
                ],
            }
        ]
    }
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    detection = PrecomputedSegmenter(tmp_path).segment(IMAGE, frame_index=1)
    assert detection.segments[0].category_id == 5 and detection.segments[0].is_thing is True


def test_without_json_segments_are_the_png_ids(tmp_path):
    write_id_png(tmp_path / "a.png", id_map({2: (slice(0, 1), slice(0, 1))}))
    detection = PrecomputedSegmenter(tmp_path).segment(IMAGE, frame_index=0)
    assert [s.id for s in detection.segments] == [2]


def test_wrong_size_detection_is_an_error_naming_the_file(tmp_path):
    write_id_png(tmp_path / "a.png", np.zeros((5, 8), np.int32))
    with pytest.raises(DevaError, match=r"a\.png.*8x5.*8x6"):
        PrecomputedSegmenter(tmp_path).segment(IMAGE, frame_index=0)


def test_missing_detection_is_an_error_unless_allowed(tmp_path):
    segmenter = PrecomputedSegmenter(tmp_path, frame_name=lambda i: f"{i:05d}")
    with pytest.raises(DevaError, match=r"00003\.png.*missing"):
        segmenter.segment(IMAGE, frame_index=3)
    lenient = PrecomputedSegmenter(tmp_path, frame_name=lambda i: f"{i:05d}", allow_missing=True)
    assert lenient.segment(IMAGE, frame_index=3).segments == ()


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(DevaError, match="nope: no such file or folder"):
        PrecomputedSegmenter(tmp_path / "nope")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[{", "malformed JSON"),
        ('{"id": 1}', "expected a list"),
        ('[{"id": "one"}]', "'id' must be a positive integer"),
        ('[{"id": 0}]', "'id' must be a positive integer"),
        ('[{"id": 1, "score": NaN}]', "'score' must be a finite number"),
        ('[{"id": 1, "score": "high"}]', "'score' must be a finite number"),
        ('[{"id": 1, "category_id": 1.5}]', "'category_id' must be an integer"),
        ('[{"id": 1, "isthing": "yes"}]', "'isthing' must be true/false"),
        ('[{"id": 1}, {"id": 1}]', "same segment id twice"),
        ("[3]", "expected an object"),
    ],
)
def test_malformed_json_is_one_clear_error(tmp_path, content, message):
    write_id_png(tmp_path / "a.png", id_map({1: (slice(0, 1), slice(0, 1))}))
    (tmp_path / "a.json").write_text(content)
    with pytest.raises(DevaError, match=message) as info:
        PrecomputedSegmenter(tmp_path).segment(IMAGE, frame_index=0)
    assert "a.json" in str(info.value)


def test_pred_json_with_too_few_frames_names_the_frame(tmp_path):
    write_id_png(tmp_path / "a.png", np.zeros((6, 8), np.int32))
    write_id_png(tmp_path / "b.png", np.zeros((6, 8), np.int32))
    (tmp_path / "pred.json").write_text(json.dumps({"annotations": [{"segments_info": []}]}))
    segmenter = PrecomputedSegmenter(tmp_path)
    segmenter.segment(IMAGE, frame_index=0)
    with pytest.raises(DevaError, match="no entry for frame 1"):
        segmenter.segment(IMAGE, frame_index=1)


def test_corrupt_png_is_an_error_naming_it(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(DevaError, match=r"a\.png"):
        PrecomputedSegmenter(tmp_path).segment(IMAGE, frame_index=0)
