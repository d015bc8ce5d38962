"""``deva run-task``: each benchmark protocol end to end on a tiny dataset in its real layout,
built from shared DAVIS frames and masks derived from the ground truth."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from deva.cli import app
from deva.eval.davis import region_similarity
from deva.io.masks import read_id_png
from deva.io.rle import encode_counts
from deva.tasks.outputs import rgb_ids

runner = CliRunner()
SKY, ROAD, DOG = 28, 18, 62


def copy_frames(davis_root: Path, sequence: str, count: int, target: Path, step: int = 1):
    """The first ``count`` frames (every ``step``-th) into ``target``; their gt masks."""
    target.mkdir(parents=True)
    gts = []
    for index in range(0, count * step, step):
        name = f"{index:05d}"
        shutil.copy(davis_root / "JPEGImages" / "480p" / sequence / f"{name}.jpg", target)
        gts.append(read_id_png(davis_root / "Annotations" / "480p" / sequence / f"{name}.png") > 0)
    return gts


def run(*args: object):
    return runner.invoke(app, ["run-task", *[str(a) for a in args]])


def save_rgb(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb_ids(ids)).save(path)


def test_vipseg_layout_thing_stuff_and_merging(davis_root, tmp_path):
    images, dets, out = tmp_path / "images", tmp_path / "dets", tmp_path / "out"
    annotations = []
    for video in ("blackswan", "dog"):
        gts = copy_frames(davis_root, video, 6, images / video)
        frames = []
        for index, gt in enumerate(gts):
            ids = np.full(gt.shape, 700, np.int32)  # bottom half: sky (a second sky segment)
            ids[: gt.shape[0] // 2] = 500  # top half: sky
            ids[gt] = 1000  # the object: a dog (thing)
            save_rgb(dets / "pan_pred" / video / f"{index:05d}.png", ids)
            segments = [
                {"id": 500, "category_id": SKY, "isthing": True},  # wrong flag: must be ignored
                {"id": 700, "category_id": SKY, "score": 0.5},
                {"id": 1000, "category_id": DOG, "score": 0.9},
            ]
            frames.append({"file_name": f"{index:05d}.jpg", "segments_info": segments})
        annotations.append({"video_id": video, "annotations": frames})
    (dets / "pred.json").write_text(json.dumps({"annotations": annotations}))

    result = run("vipseg", images, "-o", out, "--detections", dets)
    assert result.exit_code == 0, result.output
    pred = json.loads((out / "pred.json").read_text())
    assert [v["video_id"] for v in pred["annotations"]] == ["blackswan", "dog"]
    for video in pred["annotations"]:
        assert len(video["annotations"]) == 6
        for frame in video["annotations"]:
            stem = frame["file_name"].removesuffix(".jpg")
            png = Image.open(out / "pan_pred" / video["video_id"] / f"{stem}.png")
            assert png.mode == "RGB"
            ids = read_id_png(out / "pan_pred" / video["video_id"] / f"{stem}.png")
            segments = {s["id"]: s for s in frame["segments_info"]}
            assert set(segments) == {int(i) for i in np.unique(ids) if i}
            assert all(set(s) == {"id", "category_id", "isthing"} for s in segments.values())
            by_category = {s["category_id"]: s for s in segments.values()}
            assert set(by_category) == {SKY, DOG} and len(segments) == 2  # two skies -> one
            assert by_category[SKY]["isthing"] == 0 and by_category[DOG]["isthing"] == 1
            for band in (ids[20:60, 100:-100], ids[-60:-20, 100:-100]):  # top, bottom halves
                assert np.bincount(band.ravel()).argmax() == by_category[SKY]["id"]


def test_vipseg_without_category_names_the_file(davis_root, tmp_path):
    images, dets = tmp_path / "images", tmp_path / "dets"
    copy_frames(davis_root, "dog", 2, images / "dog")
    for index in range(2):
        save_rgb(dets / "dog" / f"{index:05d}.png", np.full((480, 854), 5, np.int32))
        (dets / "dog" / f"{index:05d}.json").write_text(json.dumps([{"id": 5}]))
    result = run("vipseg", images, "-o", tmp_path / "out", "--detections", dets)
    assert result.exit_code == 2
    assert "no category_id" in result.output and "dog" in result.output


def burst_dataset(davis_root: Path, tmp_path: Path, annotated: list[str]) -> tuple[Path, ...]:
    images, dets = tmp_path / "images", tmp_path / "dets"
    gts = copy_frames(davis_root, "blackswan", 9, images / "YFCC100M" / "blackswan")
    for index, gt in enumerate(gts):
        folder = dets / "YFCC100M" / "blackswan"
        folder.mkdir(parents=True, exist_ok=True)
        ids = gt.astype(np.uint8)
        ids[20:80, 700:820] = 2  # a second, static object (off the border: flow drops it)
        Image.fromarray(ids).save(folder / f"{index:05d}.png")
        meta = [{"id": 1, "score": 0.8}, {"id": 2, "score": 0.4}]
        (folder / f"{index:05d}.json").write_text(json.dumps(meta))
    gt_json = tmp_path / "gt.json"
    sequence = {
        "id": 1,
        "width": 854,
        "height": 480,
        "dataset": "YFCC100M",
        "seq_name": "blackswan",
        "fps": 30,
        "all_image_paths": [f"{i:05d}.jpg" for i in range(9)],
        "annotated_image_paths": annotated,
        "neg_category_ids": [],
        "not_exhaustive_category_ids": [],
        "track_category_ids": {"1": 5},
        "segmentations": [{"1": {"rle": "gt"}} for _ in annotated],
    }
    gt_json.write_text(json.dumps({"sequences": [sequence], "categories": [], "split": "val"}))
    return images, dets, gt_json


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools vs NumPy 2
def test_burst_rle_and_merged_gt_layout(davis_root, tmp_path):
    images, dets, gt_json = burst_dataset(davis_root, tmp_path, ["00000.jpg", "00006.jpg"])
    out = tmp_path / "out"
    result = run(
        "burst", images, "-o", out, "--detections", dets, "--subsample-every", 3,
        "--gt-json", gt_json,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    seq = out / "YFCC100M" / "blackswan"
    pred = json.loads((seq / "pred.json").read_text())
    assert pred["dataset"] == "YFCC100M" and pred["seq_name"] == "blackswan"
    names = [f["file_name"] for f in pred["segmentations"]]
    assert names == ["00000.jpg", "00003.jpg", "00006.jpg"]
    for frame in pred["segmentations"]:
        ids = read_id_png(seq / frame["file_name"].replace(".jpg", ".png"))
        assert Image.open(seq / frame["file_name"].replace(".jpg", ".png")).mode == "RGB"
        assert {s["id"] for s in frame["segmentations"]} == {int(i) for i in np.unique(ids) if i}
        for segment in frame["segmentations"]:
            assert set(segment) == {"id", "score", "category_id", "rle"}
            assert isinstance(segment["rle"]["counts"], str)
            rle = {"size": segment["rle"]["size"], "counts": segment["rle"]["counts"].encode()}
            np.testing.assert_array_equal(mask_utils.decode(rle) > 0, ids == segment["id"])
        assert {round(s["score"], 1) for s in frame["segmentations"]} == {0.8, 0.4}

    merged = json.loads((out / "burst_predictions.json").read_text())
    assert merged["split"] == "val" and merged["categories"] == []
    sequence = merged["sequences"][0]
    assert sequence["all_image_paths"][8] == "00008.jpg"  # untouched GT keys
    assert len(sequence["segmentations"]) == 2
    last = pred["segmentations"][2]["segmentations"]
    assert sequence["segmentations"][1] == {
        str(s["id"]): {"rle": s["rle"]["counts"], "score": s["score"]} for s in last
    }
    assert set(sequence["track_category_ids"]) == {str(s["id"]) for s in last}


def test_burst_annotated_frame_not_tracked_is_an_error(davis_root, tmp_path):
    images, dets, gt_json = burst_dataset(davis_root, tmp_path, ["00001.jpg"])
    result = run(
        "burst", images, "-o", tmp_path / "out", "--detections", dets,
        "--subsample-every", 3, "--gt-json", gt_json,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "pred.json" in result.output and "00001.jpg" in result.output


def test_davis17_unsup_keeps_twenty_largest_objects(davis_root, tmp_path):
    images, dets, out = tmp_path / "images", tmp_path / "dets", tmp_path / "out"
    copy_frames(davis_root, "camel", 4, images / "camel")
    ids = np.zeros((480, 854), np.uint8)
    for k in range(25):  # squares of growing size, object k+1 the (k+1)-th smallest
        row, col = divmod(k, 5)
        side = 20 + 3 * k
        ids[row * 95 + 5 : row * 95 + 5 + side, col * 170 + 5 : col * 170 + 5 + side] = k + 1
    (dets / "camel").mkdir(parents=True)
    for index in range(4):
        Image.fromarray(ids).save(dets / "camel" / f"{index:05d}.png")
    result = run("davis17-unsup", images, "-o", out, "--detections", dets)
    assert result.exit_code == 0, result.output
    first = Image.open(out / "camel" / "00000.png")
    assert first.mode == "P"
    labels = np.asarray(first)
    assert sorted(np.unique(labels)) == list(range(21))  # background + exactly 20 objects
    largest = labels[ids == 25]
    assert np.bincount(largest).argmax() == 1  # the largest square became object 1
    assert not np.any(labels[(ids >= 1) & (ids <= 5)])  # the five smallest were dropped
    assert len(list((out / "camel").glob("*.png"))) == 4


def soft_from_gt(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A noisy saliency-like map: blurred gt scaled to 0.9, with noise, as 0..255."""
    soft = cv2.GaussianBlur(gt.astype(np.float32) * 0.9, (0, 0), 3)
    soft += rng.normal(0, 0.05, gt.shape)
    return np.clip(soft * 255, 0, 255).astype(np.uint8)


def test_davis16_saliency_binary_output_follows_the_object(davis_root, tmp_path):
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    rng = np.random.default_rng(0)
    gts = copy_frames(davis_root, "blackswan", 12, images / "blackswan")
    (masks / "blackswan").mkdir(parents=True)
    for index, gt in enumerate(gts):
        soft = soft_from_gt(gt, rng) if index % 2 == 0 else np.zeros(gt.shape, np.uint8)
        Image.fromarray(soft).save(masks / "blackswan" / f"{index:05d}.png")
    result = run("davis16-saliency", images, "-o", out, "--masks", masks)
    assert result.exit_code == 0, result.output
    for index, gt in enumerate(gts):
        png = Image.open(out / "blackswan" / f"{index:05d}.png")
        values = np.asarray(png)
        assert png.mode == "L" and set(np.unique(values)) <= {0, 255}
        # odd frames had empty saliency: the consensus + propagation still finds the swan
        assert region_similarity(values == 255, gt) > 0.7


def ref_dataset(davis_root: Path, tmp_path: Path, scores: str) -> tuple[Path, Path, list]:
    images, masks = tmp_path / "images", tmp_path / "masks"
    rng = np.random.default_rng(1)
    gts = copy_frames(davis_root, "dog", 10, images / "dog")
    for index, gt in enumerate(gts):
        box = np.zeros_like(gt)
        box[20:120, 20:200] = True  # a second "object": a fixed box
        for name, mask in (("0", gt), ("1", box)):
            (masks / "dog" / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(soft_from_gt(mask, rng)).save(masks / "dog" / name / f"{index:05d}.png")
    (masks / "dog" / "scores.csv").write_text(scores)
    return images, masks, gts


def ref_scores(count: int) -> str:
    """Scores peaking at frame 5, so the keyframe of samples 1, 3, 5, 7, 9 is frame 5."""
    return "".join(f"{i:05d}.png,{o},{1 - 0.05 * abs(i - 5)}\n" for i in range(count) for o in "01")


def test_ref_davis_palette_ids_per_object_folder(davis_root, tmp_path):
    images, masks, gts = ref_dataset(davis_root, tmp_path, ref_scores(10))
    out = tmp_path / "out"
    result = run("ref-davis", images, "-o", out, "--masks", masks)
    assert result.exit_code == 0, result.output
    for index, gt in enumerate(gts):
        png = Image.open(out / "dog" / f"{index:05d}.png")
        labels = np.asarray(png)
        assert png.mode == "P" and set(np.unique(labels)) <= {0, 1, 2}
        assert region_similarity(labels == 1, gt) > 0.6
    keyframe = np.asarray(Image.open(out / "dog" / "00005.png"))
    assert np.bincount(keyframe[20:120, 20:200].ravel()).argmax() == 2  # the box, object 2


def test_ref_youtube_layout_per_expression(davis_root, tmp_path):
    images, masks, gts = ref_dataset(davis_root, tmp_path, ref_scores(10))
    out = tmp_path / "out"
    result = run("ref-youtube", images, "-o", out, "--masks", masks, "--n-frames", 4)
    assert result.exit_code == 0, result.output
    for expression in ("0", "1"):
        files = sorted((out / "Annotations" / "dog" / expression).glob("*.png"))
        assert [f.stem for f in files] == [f"{i:05d}" for i in range(10)]
        values = np.asarray(Image.open(files[3]))
        assert Image.open(files[3]).mode == "L" and set(np.unique(values)) <= {0, 255}
    expression0 = np.asarray(Image.open(out / "Annotations" / "dog" / "0" / "00005.png"))
    assert region_similarity(expression0 == 255, gts[5]) > 0.6
    # the submission zip holds exactly the written masks under Annotations/<vid>/<expr>/
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    with zipfile.ZipFile(out / "submission.zip") as archive:
        assert sorted(archive.namelist()) == written and len(written) == 20
        assert (
            archive.read("Annotations/dog/0/00005.png")
            == (out / "Annotations" / "dog" / "0" / "00005.png").read_bytes()
        )
    assert not list(out.glob(".*partial"))


def test_ref_youtube_video_list_and_no_zip(davis_root, tmp_path):
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    for video in ("camel", "dog"):
        gts = copy_frames(davis_root, video, 3, images / video)
        (masks / video / "expr").mkdir(parents=True)
        for index, gt in enumerate(gts):
            soft = np.where(gt, 230, 10).astype(np.uint8)
            Image.fromarray(soft).save(masks / video / "expr" / f"{index:05d}.png")
    listed = tmp_path / "valid.txt"
    listed.write_text("# the subset\ndog\n\n")
    args = [images, "-o", out, "--masks", masks, "--n-frames", 2, "--videos", listed]
    result = run("ref-youtube", *args, "--no-zip")
    assert result.exit_code == 0, result.output
    assert [p.name for p in (out / "Annotations").iterdir()] == ["dog"]
    assert len(list((out / "Annotations" / "dog" / "expr").glob("*.png"))) == 3
    assert not (out / "submission.zip").exists()

    listed.write_text("dog\nnot-a-video\n")
    result = run("ref-youtube", *args, "--overwrite")  # the folder holds the run above
    assert result.exit_code == 2
    assert "not-a-video" in result.output.replace("\n", "") and "Traceback" not in result.output
    listed.write_text("\n# nothing\n")
    result = run("ref-youtube", *args, "--overwrite")
    assert result.exit_code == 2 and "valid.txt" in result.output.replace("\n", "")


def test_ref_malformed_scores_name_file_and_line(davis_root, tmp_path):
    images, masks, _ = ref_dataset(davis_root, tmp_path, "00000.png,0,0.5\n00001.png;0;0.5\n")
    result = run("ref-davis", images, "-o", tmp_path / "out", "--masks", masks)
    assert result.exit_code == 2
    assert "scores.csv: line 2" in result.output.replace("\n", "")


def test_malformed_dataset_pred_json_names_the_file(davis_root, tmp_path):
    images, dets = tmp_path / "images", tmp_path / "dets"
    copy_frames(davis_root, "dog", 2, images / "dog")
    (dets / "dog").mkdir(parents=True)
    (dets / "pred.json").write_text('{"annotations": [{"video_id": "dog", ')
    result = run("davis17-unsup", images, "-o", tmp_path / "out", "--detections", dets)
    assert result.exit_code == 2
    assert "pred.json: malformed JSON" in result.output.replace("\n", "")


@pytest.mark.parametrize("task", ["ref-davis", "davis16-saliency"])
def test_missing_soft_mask_names_the_file(davis_root, tmp_path, task):
    images, masks = tmp_path / "images", tmp_path / "masks"
    copy_frames(davis_root, "dog", 3, images / "dog")
    folder = masks / "dog" / ("0" if task == "ref-davis" else "")
    folder.mkdir(parents=True)
    result = run(task, images, "-o", tmp_path / "out", "--masks", masks)
    assert result.exit_code == 2
    assert "00000.png" in result.output and "missing" in result.output


@pytest.mark.parametrize(
    ("task", "option"),
    [("vipseg", "--clip-size"), ("davis17-unsup", "--detect-every"), ("burst", "--max-missed")],
)
def test_bad_tracker_option_is_one_line_not_a_traceback(tmp_path, task, option):
    images, dets = tmp_path / "images", tmp_path / "dets"
    images.mkdir()
    dets.mkdir()
    args = ["run-task", task, str(images), "-o", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*args, "--detections", str(dets), option, "-1"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.output.count("error:") == 1
    assert f"{option} must be" in result.output  # the flag, not the Python field name


# --- Round trips: what ``deva run-task`` writes, ``deva eval`` reads ---------------------------


def evaluate(*args: object):
    """``deva eval ...`` through the CLI; its Markdown report."""
    result = runner.invoke(app, ["eval", *[str(a) for a in args]])
    assert result.exit_code == 0, result.output
    return result.output


def table_row(report: str, first_cell: str) -> list[str]:
    """The cells of the Markdown row starting with ``first_cell`` (bold marks dropped)."""
    for line in report.splitlines():
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n{report}")


def vipseg_scores(report: str, videos: int) -> dict[str, float]:
    cells = table_row(report, f"All ({videos})")
    return {"VPQ": float(cells[2]), "STQ": float(cells[5]), "AQ": float(cells[6])}


def test_vipseg_run_task_output_is_what_eval_vipseg_reads(davis_root, tmp_path):
    # Ground truth in the VIPSeg_720P layout from two DAVIS clips: sky (stuff) and the object
    # (a dog, thing); detections are the gt with other ids, so tracking should be near perfect.
    images, dets, gt, out = (tmp_path / n for n in ("images", "dets", "gt", "out"))
    videos, gt_annotations, det_annotations = [], [], []
    for video in ("blackswan", "dog"):
        masks = copy_frames(davis_root, video, 5, images / video)
        gt_frames, det_frames, files = [], [], []
        for index, mask in enumerate(masks):
            stem = f"{index:05d}"
            save_rgb(gt / "panomasksRGB" / video / f"{stem}.png", np.where(mask, 2, 1))
            save_rgb(dets / "pan_pred" / video / f"{stem}.png", np.where(mask, 1000, 500))
            files.append({"file_name": f"{stem}.jpg"})
            gt_frames.append(
                {"segments_info": [{"id": 1, "category_id": SKY}, {"id": 2, "category_id": DOG}]}
            )
            segments = [
                {"id": 500, "category_id": SKY, "score": 0.9},
                {"id": 1000, "category_id": DOG, "score": 0.9},
            ]
            det_frames.append({"file_name": f"{stem}.jpg", "segments_info": segments})
        videos.append({"video_id": video, "images": files})
        gt_annotations.append({"video_id": video, "annotations": gt_frames})
        det_annotations.append({"video_id": video, "annotations": det_frames})
    categories = [{"id": SKY, "isthing": 0}, {"id": DOG, "isthing": 1}]
    gt_json = {"categories": categories, "videos": videos, "annotations": gt_annotations}
    (gt / "panoptic_gt_VIPSeg_val.json").write_text(json.dumps(gt_json))
    (dets / "pred.json").write_text(json.dumps({"annotations": det_annotations}))

    # Detections merged on every frame: the round trip itself, with as little tracking as can be.
    result = run("vipseg", images, "-o", out, "--detections", dets, "--detect-every", 1)
    assert result.exit_code == 0, result.output
    good = vipseg_scores(evaluate("vipseg", "--results", out, "--gt", gt), 2)
    assert good["VPQ"] > 90 and good["STQ"] > 90, good

    # The default --detect-every 5 with the default --fill: measured VPQ 96.2 / STQ 93.3 (88.8 /
    # 66.1 with --no-fill, which leaves 8 % of the pixels unlabelled).
    filled = tmp_path / "filled"
    result = run("vipseg", images, "-o", filled, "--detections", dets)
    assert result.exit_code == 0, result.output
    scores = vipseg_scores(evaluate("vipseg", "--results", filled, "--gt", gt), 2)
    assert scores["VPQ"] > 93 and scores["STQ"] > 88, scores
    # --no-fill leaves those pixels unlabelled, which deeplab2's SQ (and so STQ) punishes as an
    # extra class of IoU 0.
    holes = tmp_path / "holes"
    result = run("vipseg", images, "-o", holes, "--detections", dets, "--no-fill")
    assert result.exit_code == 0, result.output
    unfilled = vipseg_scores(evaluate("vipseg", "--results", holes, "--gt", gt), 2)
    assert unfilled["STQ"] < scores["STQ"] - 10, (unfilled, scores)
    # the fill belongs to the flow propagator: asking for it with another is one clear error
    result = run(
        "vipseg",
        images,
        "-o",
        tmp_path / "x",
        "--detections",
        dets,
        "--fill",
        "--propagator",
        "network",
        "--checkpoint",
        str(tmp_path / "none.pth"),
    )
    assert result.exit_code == 2 and "--fill is only used by the flow propagator" in result.output

    # Corrupt the written prediction: the dog is left VOID in every other frame of "dog".
    pred = json.loads((out / "pred.json").read_text())
    frames = [f for v in pred["annotations"] if v["video_id"] == "dog" for f in v["annotations"]]
    things = [s["id"] for f in frames for s in f["segments_info"] if s["isthing"]]
    for png in sorted((out / "pan_pred" / "dog").glob("*.png"))[1::2]:
        ids = read_id_png(png)
        save_rgb(png, np.where(np.isin(ids, things), 0, ids))
    bad = vipseg_scores(evaluate("vipseg", "--results", out, "--gt", gt), 2)
    assert bad["VPQ"] < good["VPQ"] - 5 and bad["STQ"] < good["STQ"] - 5, (good, bad)


def burst_owta(report: str) -> float:
    return float(table_row(report, "all")[2])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools vs NumPy 2
def test_burst_run_task_output_is_what_eval_burst_reads(davis_root, tmp_path):
    # Two gt tracks (the swan and a static box) in the BURST layout with real RLEs on every
    # third frame; detections are the gt masks, tracked and merged on every frame (with the
    # default --detect-every 5 the flow-propagated masks of frames 3 and 6 give OWTA ~91).
    annotated = ["00000.jpg", "00003.jpg", "00006.jpg"]
    images, dets, gt_json = burst_dataset(davis_root, tmp_path, annotated)
    sequence = json.loads(gt_json.read_text())
    seq = sequence["sequences"][0]
    segmentations = []
    for name in annotated:
        ids = read_id_png(dets / "YFCC100M" / "blackswan" / name.replace(".jpg", ".png"))
        segmentations.append({str(k): {"rle": encode_counts(ids == k)} for k in (1, 2)})
    seq["segmentations"] = segmentations
    seq["track_category_ids"] = {"1": 5, "2": 5}
    gt_json.write_text(json.dumps(sequence))
    out = tmp_path / "out"

    args = ["--detections", dets, "--gt-json", gt_json, "--detect-every", 1]
    result = run("burst", images, "-o", out, *args)
    assert result.exit_code == 0, result.output
    predictions = out / "burst_predictions.json"
    good = burst_owta(evaluate("burst", "--results", predictions, "--gt", gt_json))
    assert good > 90, good

    # Corrupt the written prediction: every track gets a new id on the last annotated frame
    # (an identity switch): detection is unchanged, association and so OWTA drop.
    merged = json.loads(predictions.read_text())
    last = merged["sequences"][0]["segmentations"][-1]
    merged["sequences"][0]["segmentations"][-1] = {str(int(k) + 100): v for k, v in last.items()}
    predictions.write_text(json.dumps(merged))
    bad = burst_owta(evaluate("burst", "--results", predictions, "--gt", gt_json))
    assert bad < good - 5, (good, bad)
