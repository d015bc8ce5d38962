"""``deva export``: every format decoded back (pycocotools, a MOTS parser, xml.etree) must give
exactly the masks/ PNGs of the run it came from."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_api
from typer.testing import CliRunner

from deva.cli import app
from deva.errors import DevaError
from deva.io.exports import cvat_rle, export_results
from deva.io.masks import read_id_png, write_id_png
from deva.io.writer import ResultWriter
from deva.types import Frame, FrameResult, ObjectInfo

runner = CliRunner()
H, W = 48, 64
# pycocotools' decode under NumPy 2 (its code, not ours).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def deva(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def id_maps(length: int = 7) -> list[np.ndarray]:
    """Three objects: 1 (a disk, gone on frames 2-3 then back), 2 (a bar touching the image
    corner), 300 (needs a 16-bit PNG; appears on frame 1, overlaps nothing, has a hole)."""
    yy, xx = np.mgrid[:H, :W]
    maps = []
    for t in range(length):
        ids = np.zeros((H, W), np.int32)
        if t not in (2, 3):
            ids[(yy - 20) ** 2 + (xx - 10 - 3 * t) ** 2 < 49] = 1
        ids[: 6 + t, : 20 + t] = 2
        if t >= 1:
            ring = (yy >= 30) & (yy < 44) & (xx >= 40) & (xx < 60)
            ring &= ~((yy >= 35) & (yy < 39) & (xx >= 47) & (xx < 52))
            ids[ring] = 300
        maps.append(ids)
    return maps


META = {1: (3, 0.8), 2: (None, None), 300: (5, 0.6)}  # id -> (category_id, score)


def write_run(folder: Path, maps: list[np.ndarray], meta=META) -> Path:
    """A run folder written by the real ResultWriter (object infos computed here by hand)."""
    with ResultWriter(folder, video=False, category_names={3: "dog"}) as writer:
        for t, ids in enumerate(maps):
            objects = []
            for object_id in sorted(int(i) for i in np.unique(ids) if i):
                ys, xs = np.nonzero(ids == object_id)
                box = (int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)
                category, score = meta[object_id]
                objects.append(ObjectInfo(object_id, category, score, int(ys.size), box))
            image = np.zeros((H, W, 3), np.uint8)
            writer.write(
                Frame(t, f"{t:05d}", image), FrameResult(t, f"{t:05d}", ids, tuple(objects))
            )
    return folder


def pngs(folder: Path) -> list[np.ndarray]:
    record = json.loads((folder / "annotations.json").read_text())
    return [read_id_png(folder / "masks" / f"{f['file_name']}.png") for f in record["frames"]]


def decode_coco(data: dict, video_id: int = 1) -> list[np.ndarray]:
    video = next(v for v in data["videos"] if v["id"] == video_id)
    maps = [np.zeros((video["height"], video["width"]), np.int32) for _ in range(video["length"])]
    for ann in (a for a in data["annotations"] if a["video_id"] == video_id):
        for t, rle in enumerate(ann["segmentations"]):
            if rle is None:
                assert ann["areas"][t] is None and ann["bboxes"][t] is None
                continue
            mask = mask_api.decode({"size": rle["size"], "counts": rle["counts"].encode()}) > 0
            assert not maps[t][mask].any(), "objects overlap"
            assert ann["areas"][t] == int(mask.sum())
            ys, xs = np.nonzero(mask)
            assert ann["bboxes"][t] == [xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1]
            maps[t][mask] = ann["deva_id"]
    return maps


def decode_mots(
    text: str, length: int, shape: tuple[int, int] = (H, W)
) -> tuple[list[np.ndarray], list[tuple[int, int, int]]]:
    maps = [np.zeros(shape, np.int32) for _ in range(length)]
    ids = []
    for line in text.splitlines():
        frame, object_id, class_id, height, width, counts = line.split(" ")
        assert (int(height), int(width)) == shape
        mask = mask_api.decode({"size": list(shape), "counts": counts.encode()}) > 0
        assert int(object_id) // 1000 == int(class_id)
        maps[int(frame)][mask] = int(object_id) % 1000
        ids.append((int(frame), int(object_id), int(class_id)))
    return maps, ids


def decode_cvat(path: Path) -> tuple[ET.Element, list[np.ndarray]]:
    """Rebuild the id maps from CVAT mask tracks: a shape holds from its frame until the next
    shape of the track; outside="1" ends it."""
    root = ET.parse(path).getroot()
    size = int(root.findtext("meta/task/size"))
    height = int(root.findtext("meta/task/original_size/height"))
    width = int(root.findtext("meta/task/original_size/width"))
    maps = [np.zeros((height, width), np.int32) for _ in range(size)]
    for track in root.iter("track"):
        shapes = sorted(track.iter("mask"), key=lambda m: int(m.get("frame")))
        for shape, following in zip(shapes, [*shapes[1:], None], strict=True):
            if shape.get("outside") == "1":
                continue
            left, top = int(shape.get("left")), int(shape.get("top"))
            w, h = int(shape.get("width")), int(shape.get("height"))
            flat = np.zeros(w * h, bool)
            position, value = 0, False
            for run in (int(n) for n in shape.get("rle").split(",")):
                flat[position : position + run] = value
                position, value = position + run, not value
            assert position == w * h
            end = int(following.get("frame")) if following is not None else size
            for t in range(int(shape.get("frame")), end):
                maps[t][top : top + h, left : left + w][flat.reshape(h, w)] = int(track.get("id"))
    return root, maps


def assert_same(decoded: list[np.ndarray], truth: list[np.ndarray]) -> None:
    assert len(decoded) == len(truth)
    for t, (a, b) in enumerate(zip(decoded, truth, strict=True)):
        assert np.array_equal(a, b), f"frame {t} differs"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("exp") / "clip", id_maps())


def test_coco_round_trip(run, tmp_path):
    out = tmp_path / "coco.json"
    assert deva("export", run, "--format", "coco", "-o", out).exit_code == 0
    data = json.loads(out.read_text())
    assert_same(decode_coco(data), pngs(run))
    assert data["videos"][0]["length"] == 7 and data["videos"][0]["name"] == "clip"
    by_id = {a["deva_id"]: a for a in data["annotations"]}
    assert by_id[1]["segmentations"][2] is None and by_id[1]["segmentations"][4] is not None
    # Categories: a name from the run, an id without one, and "object" for the unknown.
    assert {c["id"]: c["name"] for c in data["categories"]} == {
        3: "dog",
        5: "category 5",
        6: "object",
    }
    assert [by_id[i]["category_id"] for i in (1, 2, 300)] == [3, 6, 5]
    assert [by_id[i]["score"] for i in (1, 2, 300)] == [0.8, 1.0, 0.6]


def test_mots_round_trip(run, tmp_path):
    out = tmp_path / "run.txt"
    assert deva("export", run, "--format", "mots", "-o", out).exit_code == 0
    maps, ids = decode_mots(out.read_text(), 7)
    assert_same(maps, pngs(run))
    assert {(obj, cls) for _, obj, cls in ids} == {(3001, 3), (1002, 1), (5300, 5)}
    frames = [f for f, _, _ in ids]
    assert frames == sorted(frames)


def test_mots_renumbers_ids_of_1000_and_more(tmp_path):
    maps = [np.where(m == 300, 1500, m) for m in id_maps(3)]
    folder = write_run(tmp_path / "big", maps, {1: (None, None), 2: (None, None), 1500: (2, 1.0)})
    written, _ = export_results(folder, "mots")
    decoded, ids = decode_mots(written.read_text(), 3)
    # instances by first appearance: 1 -> 1, 2 -> 2, 1500 -> 3
    renumbered = [np.where(m == 1500, 3, m) for m in pngs(folder)]
    assert_same(decoded, renumbered)
    assert {(obj, cls) for _, obj, cls in ids} == {(1001, 1), (1002, 1), (2003, 2)}


def test_cvat_round_trip(run, tmp_path):
    assert deva("export", run, "--format", "cvat", "-o", tmp_path / "a.xml").exit_code == 0
    root, maps = decode_cvat(tmp_path / "a.xml")
    assert_same(maps, pngs(run))
    assert root.findtext("version") == "1.1"
    assert root.findtext("meta/task/mode") == "interpolation"
    labels = {e.findtext("name") for e in root.iter("label")}
    assert labels == {"dog", "category 5", "object"}
    track = next(t for t in root.iter("track") if t.get("id") == "1")
    assert track.get("label") == "dog"
    outside = [m.get("frame") for m in track.iter("mask") if m.get("outside") == "1"]
    assert outside == ["2"]  # gone on frames 2-3, back on 4


def test_cvat_rle_by_hand():
    mask = np.array([[1, 1, 0], [0, 0, 1]], bool)
    assert cvat_rle(mask) == [0, 2, 3, 1]
    assert cvat_rle(~mask) == [2, 3, 1]


def test_exports_of_a_real_tracking_run(davis_root, tmp_path):
    """deva track on real frames with detections, then every format back to its PNGs."""
    frames = tmp_path / "frames"
    frames.mkdir()
    gt = sorted((davis_root / "Annotations" / "480p" / "bmx-trees").glob("*.png"))[:6]
    dets = tmp_path / "dets"
    dets.mkdir()
    for path in gt:
        shutil.copy(davis_root / "JPEGImages" / "480p" / "bmx-trees" / f"{path.stem}.jpg", frames)
        write_id_png(dets / path.name, read_id_png(path))
        (dets / f"{path.stem}.json").write_text(json.dumps([{"id": 1, "category_id": 2}]))
    out = tmp_path / "run"
    result = deva("track", frames, "-o", out, "--detections", dets, "--size", "120", "--no-video")
    assert result.exit_code == 0, result.output
    truth = pngs(out)
    assert any(m.any() for m in truth)
    for format in ("coco", "mots", "cvat"):
        assert deva("export", out, "--format", format).exit_code == 0
    assert_same(decode_coco(json.loads((out / "coco.json").read_text())), truth)
    mots = decode_mots((out / "mots.txt").read_text(), len(truth), truth[0].shape)
    assert_same(mots[0], truth)
    assert_same(decode_cvat(out / "cvat.xml")[1], truth)


def test_coco_export_of_a_batch_output_holds_every_video(tmp_path):
    write_run(tmp_path / "batch" / "a", id_maps(3))
    write_run(tmp_path / "batch" / "b", id_maps(4))
    written, videos = export_results(tmp_path / "batch", "coco")
    data = json.loads(written.read_text())
    assert videos == 2 and [v["name"] for v in data["videos"]] == ["a", "b"]
    assert_same(decode_coco(data, 2), pngs(tmp_path / "batch" / "b"))
    assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"])
    with pytest.raises(DevaError, match="export each one"):
        export_results(tmp_path / "batch", "cvat")


def test_not_a_deva_output_is_one_clear_error(run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = deva("export", empty, "--format", "coco")
    assert result.exit_code == 2 and "annotations.json" in result.output
    assert "Traceback" not in result.output

    unfinished = tmp_path / "unfinished"
    shutil.copytree(run, unfinished)
    (unfinished / "annotations.json").rename(unfinished / "annotations.incomplete.json")
    with pytest.raises(DevaError, match="did not finish"):
        export_results(unfinished, "mots")

    missing = tmp_path / "missing"
    shutil.copytree(run, missing)
    (missing / "masks" / "00003.png").unlink()
    (missing / "cvat.xml").unlink(missing_ok=True)
    with pytest.raises(DevaError, match=r"00003\.png: missing"):
        export_results(missing, "cvat")
    assert not (missing / "cvat.xml").exists()
