"""Precomputed detections (official DEVA layout): id PNGs, per-frame JSON and pred.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deva.io.masks import read_id_png, write_id_png

from . import make
from .harness import deva, fails, succeeds

FLAGS = ("--size", "-1", "--no-video", "--detect-every", "1", "--mode", "online")


def track(tmp_path: Path, dets: Path, *extra: str):
    folder = make.frames(tmp_path / "frames")
    return deva("track", folder, "-o", tmp_path / "out", "--detections", dets, *FLAGS, *extra)


def tracked_ids(tmp_path: Path) -> set[int]:
    masks = sorted((tmp_path / "out" / "masks").glob("*.png"))
    return {int(i) for m in masks for i in np.unique(read_id_png(m))} - {0}


def test_detection_of_the_wrong_size_on_a_later_frame(tmp_path: Path) -> None:
    dets = make.detections(tmp_path / "dets")
    write_id_png(dets / "2.png", make.box_ids((16, 24)))
    out = tmp_path / "out"
    fails(track(tmp_path, dets), "2.png", "24x16", "48x32", out=out)
    assert (out / "annotations.incomplete.json").is_file()


def test_detection_missing_for_a_later_frame(tmp_path: Path) -> None:
    dets = make.detections(tmp_path / "dets")
    (dets / "3.png").unlink()
    fails(track(tmp_path, dets), "3.png", "missing", out=tmp_path / "out")


def test_allow_missing_treats_a_missing_detection_as_empty(tmp_path: Path) -> None:
    """Recovery with --allow-missing: the frame gets an empty detection, tracking goes on."""
    dets = make.detections(tmp_path / "dets")
    (dets / "1.png").unlink()
    (dets / "2.png").unlink()
    masks = succeeds(track(tmp_path, dets, "--allow-missing"), tmp_path / "out", frames=4)
    assert (read_id_png(masks[3]) > 0).sum() > 0


def test_detection_png_that_is_not_a_png(tmp_path: Path) -> None:
    dets = make.detections(tmp_path / "dets")
    (dets / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    fails(track(tmp_path, dets), "1.png", "not a readable PNG", out=tmp_path / "out")


@pytest.mark.parametrize("value", [300, 65535])
def test_16_bit_ids_are_accepted(tmp_path: Path, value: int) -> None:
    dets = make.detections(tmp_path / "dets", value=value)
    with Image.open(dets / "0.png") as check:
        assert check.mode.startswith("I")
    succeeds(track(tmp_path, dets), tmp_path / "out", frames=4)
    assert tracked_ids(tmp_path) == {1}  # segment ids are inputs; object ids are deva's own


def test_rgb_ids_with_a_high_blue_byte_are_large_positive_ids(tmp_path: Path) -> None:
    """(255, 255, 255) is id 16777215, not -1: the RGB rule has no sign bit."""
    dets = tmp_path / "dets"
    dets.mkdir()
    ids = make.box_ids(value=256**3 - 1)
    ids[20:30, 30:40] = 0x80_00_01  # blue byte with the top bit set
    for index in range(4):
        make.rgb_id_png(dets / f"{index}.png", ids)
    assert read_id_png(dets / "0.png").max() == 256**3 - 1
    masks = succeeds(track(tmp_path, dets), tmp_path / "out", frames=4)
    first = read_id_png(masks[0])
    assert len(np.unique(first[ids > 0])) == 2 and not first[ids == 0].any()


@pytest.mark.parametrize(
    ("meta", "needles"),
    [
        ('[{"id": 1, "score": 0.5', ("malformed JSON",)),
        ([{"category_id": 2}], ("'id' must be a positive integer", "None")),
        ([{"id": "1"}], ("'id' must be a positive integer", "'1'")),
        ([{"id": -3}], ("'id' must be a positive integer",)),
        ([{"id": 1, "category_id": 1.5}], ("'category_id' must be an integer",)),
        ([{"id": 1, "score": "high"}], ("'score' must be a finite number",)),
        ('[{"id": 1, "score": NaN}]', ("'score' must be a finite number", "nan")),
        ('[{"id": 1, "score": -Infinity}]', ("'score' must be a finite number", "inf")),
        ([{"id": 1, "isthing": "yes"}], ("'isthing' must be true/false",)),
        ([{"id": 1}, {"id": 1, "score": 0.2}], ("same segment id twice",)),
        ({"id": 1}, ("expected a list of segments", "dict")),
        (7, ("expected a list of segments", "int")),
        (["1"], ("segment 0", "expected an object")),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_per_frame_json(tmp_path: Path, meta: object, needles: tuple[str, ...]) -> None:
    dets = make.detections(tmp_path / "dets", meta=meta)
    fails(track(tmp_path, dets), "0.json", *needles, out=tmp_path / "out")


def test_per_frame_json_that_is_not_utf8(tmp_path: Path) -> None:
    dets = make.detections(tmp_path / "dets")
    (dets / "0.json").write_bytes(b'[{"id": 1, "category": "caf\xe9"}]')
    fails(track(tmp_path, dets), "0.json", "cannot read", out=tmp_path / "out")


def test_json_and_png_ids_disagree(tmp_path: Path) -> None:
    """Recovery: a JSON id absent from the PNG is an empty segment (dropped); a PNG id absent
    from the JSON is a segment without meta. Both are kept documented, neither is an error."""
    dets = make.detections(tmp_path / "dets", meta=[{"id": 9, "category_id": 3, "score": 0.8}])
    succeeds(track(tmp_path, dets), tmp_path / "out", frames=4)
    annotations = json.loads((tmp_path / "out" / "annotations.json").read_text())
    objects = [o for f in annotations["frames"] for o in f["objects"]]
    assert objects and all(o["category_id"] is None and o["score"] is None for o in objects)


@pytest.mark.parametrize(
    ("pred", "needles"),
    [
        ({"annotations": "x"}, ("expected {'annotations'",)),
        ([], ("expected {'annotations'",)),
        ({"annotations": ["x"]}, ("video entry 0",)),
        ({"annotations": [3]}, ("video entry 0",)),
        ({"annotations": [{"video_id": "a", "annotations": []}, {"video_id": "b"}]}, ("dets",)),
        ({"annotations": [{"video_id": "dets", "annotations": {}}]}, ("'annotations' list",)),
        ({"annotations": [{"segments_info": "all"}]}, ("expected a list of segments",)),
    ],
    ids=lambda v: None,
)
def test_bad_pred_json(tmp_path: Path, pred: object, needles: tuple[str, ...]) -> None:
    dets = make.detections(tmp_path / "dets")
    (dets / "pred.json").write_text(json.dumps(pred))
    fails(track(tmp_path, dets), "pred.json", *needles, out=tmp_path / "out")


def test_pred_json_with_fewer_frames_than_the_video(tmp_path: Path) -> None:
    dets = make.detections(tmp_path / "dets")
    frame = {"segments_info": [{"id": 1, "category_id": 2, "score": 0.7}]}
    pred = {"annotations": [{"video_id": "dets", "annotations": [frame, frame]}]}
    (dets / "pred.json").write_text(json.dumps(pred))
    out = tmp_path / "out"
    fails(track(tmp_path, dets), "pred.json", "2 frames", "frame 2", out=out)
    partial = json.loads((out / "annotations.incomplete.json").read_text())
    assert partial["num_frames"] == 2 and partial["complete"] is False


def test_detections_path_is_a_file(tmp_path: Path) -> None:
    file = tmp_path / "dets.json"
    file.write_text("[]")
    fails(track(tmp_path, file), "dets.json", "not a folder")
