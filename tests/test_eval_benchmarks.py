"""`deva eval vipseg` and `deva eval burst`: the dataset runners on tiny fixtures in the official
layouts, built from the shared DAVIS masks (downsampled 4x to stay fast)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from deva.cli import app
from deva.errors import DevaError
from deva.eval.burst import box_iou, evaluate_burst
from deva.eval.vipseg import evaluate_vipseg
from deva.io.masks import read_id_png
from deva.io.rle import encode_counts

SEQUENCES = ("blackswan", "dog")
FRAMES = 4


def davis_masks(davis_root: Path, seq: str) -> list[np.ndarray]:
    folder = davis_root / "Annotations" / "480p" / seq
    return [read_id_png(folder / f"{t:05d}.png")[::4, ::4] > 0 for t in range(FRAMES)]


def write_rgb_ids(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = ids.astype(np.int64)
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(path)


# --- VIPSeg ------------------------------------------------------------------------------------
# Categories: 0 sky (stuff), 1 ground (stuff), 3 animal (thing). gt ids: animal 1001, sky 2000,
# ground 2001, VOID on the last two columns.
CATEGORIES = [
    {"id": 0, "name": "sky", "isthing": 0},
    {"id": 1, "name": "ground", "isthing": 0},
    {"id": 3, "name": "animal", "isthing": 1},
]


def panoptic(mask: np.ndarray, animal: int, sky: int, ground: int) -> np.ndarray:
    ids = np.where(np.arange(mask.shape[0])[:, None] < mask.shape[0] // 2, sky, ground)
    ids = np.where(mask, animal, ids)
    ids[:, -2:] = 0
    return ids


def make_vipseg(davis_root: Path, root: Path, switch_at: int | None = None) -> tuple[Path, Path]:
    """gt folder (panomasksRGB + json) and a results folder; the prediction equals the gt with
    other ids, except that with ``switch_at`` the first video's animal changes id there."""
    gt_dir, results = root / "VIPSeg_720P", root / "results"
    gt_json = {"categories": CATEGORIES, "videos": [], "annotations": []}
    pred_json = {"annotations": []}
    for seq in SEQUENCES:
        names = [f"{t:05d}" for t in range(FRAMES)]
        gt_frames, pred_frames = [], []
        for t, mask in enumerate(davis_masks(davis_root, seq)):
            write_rgb_ids(
                gt_dir / "panomasksRGB" / seq / f"{names[t]}.png", panoptic(mask, 1001, 2000, 2001)
            )
            animal = (
                70000 if switch_at is not None and seq == SEQUENCES[0] and t >= switch_at else 77777
            )
            write_rgb_ids(
                results / "pan_pred" / seq / f"{names[t]}.png", panoptic(mask, animal, 5, 6)
            )
            gt_frames.append(
                {
                    "segments_info": [
                        {"id": 1001, "category_id": 3, "iscrowd": 0},
                        {"id": 2000, "category_id": 0, "iscrowd": 0},
                        {"id": 2001, "category_id": 1, "iscrowd": 0},
                    ]
                }
            )
            pred_frames.append(
                {
                    "file_name": f"{names[t]}.jpg",
                    "segments_info": [
                        {"id": animal, "category_id": 3, "isthing": True},
                        {"id": 5, "category_id": 0, "isthing": False},
                        {"id": 6, "category_id": 1, "isthing": False},
                    ],
                }
            )
        gt_json["videos"].append(
            {"video_id": seq, "images": [{"file_name": f"{n}.png"} for n in names]}
        )
        gt_json["annotations"].append({"video_id": seq, "annotations": gt_frames})
        pred_json["annotations"].append({"video_id": seq, "annotations": pred_frames})
    (gt_dir / "panoptic_gt_VIPSeg_val.json").write_text(json.dumps(gt_json))
    (results / "pred.json").write_text(json.dumps(pred_json))
    return results, gt_dir


def test_vipseg_perfect_results_score_100(davis_root: Path, tmp_path: Path) -> None:
    results, gt = make_vipseg(davis_root, tmp_path)
    report = evaluate_vipseg(results, gt)
    summary = report.summary()
    assert summary["VPQ"] == pytest.approx(100) and summary["STQ"] == pytest.approx(100)
    assert summary["VPQ_th"] == pytest.approx(100) and summary["VPQ_st"] == pytest.approx(100)
    assert [v.name for v in report.videos] == list(SEQUENCES)
    assert report.videos[0].num_frames == FRAMES


def test_vipseg_id_switch_lowers_long_windows_and_aq(davis_root: Path, tmp_path: Path) -> None:
    results, gt = make_vipseg(davis_root, tmp_path, switch_at=2)
    summary = evaluate_vipseg(results, gt).summary()
    # Single frames are all perfect; over the whole clip the first video's animal tube is split
    # 2 + 2 frames (IoU ~0.5 or below each): a FN and two FPs for the animal class there.
    assert summary["VPQ^1"] == pytest.approx(100)
    assert summary["VPQ^∞"] < 100
    assert summary["AQ"] < 100
    assert summary["SQ"] == pytest.approx(100)
    # Whole clip: the second video's animal is a TP (IoU 1). In the first, the 4-frame
    # tube is split into frames 0-1 (share r of its pixels) and 2-3 (share 1 - r); the union of
    # each part with the tube is the tube, so the larger part is a TP with IoU max(r, 1 - r) if
    # that is > 0.5 (the other part a FP), else a FN and two FPs. Stuff stays perfect.
    areas = [int((panoptic(m, 1, 0, 0) == 1).sum()) for m in davis_masks(davis_root, SEQUENCES[0])]
    r = max(sum(areas[:2]), sum(areas[2:])) / sum(areas)
    animal = (1 + r) / (2 + 0.5) if r > 0.5 else 1 / (1 + 0.5 * 2 + 0.5 * 1)
    assert summary["VPQ^∞"] == pytest.approx(100 * (animal + 1 + 1) / 3)


def test_vipseg_cli_prints_the_table(davis_root: Path, tmp_path: Path) -> None:
    results, gt = make_vipseg(davis_root, tmp_path)
    out = CliRunner().invoke(
        app,
        ["eval", "vipseg", "--results", str(results), "--gt", str(gt / "panomasksRGB"),
         "--gt-json", str(gt / "panoptic_gt_VIPSeg_val.json"), "--windows", "1,2,999",
         "--video", "dog"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "| dog | 4 | 100.0 |" in out.output
    assert "| ∞ | 100.0 |" in out.output
    assert "blackswan" not in out.output


def test_vipseg_header_states_both_summaries_and_short_videos(
    davis_root: Path, tmp_path: Path
) -> None:
    results, gt = make_vipseg(davis_root, tmp_path)
    args = ["eval", "vipseg", "--results", str(results), "--gt", str(gt)]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "Convention: VPQ = DEVA paper: mean(VPQ^∞, mean VPQ^1,2,4,6,8,10)" in out.output
    assert "shorter than k frames is scored as one whole-clip window" in out.output
    assert "2 video(s) have fewer frames than the longest window (10)" in out.output
    assert "STQ: deeplab2's formula as VIPSeg's eval_stq_vspw.py, but instances" in out.output
    assert "Videos: all 2 of" in out.output
    # Both 4-frame videos are shorter than 6 and 8: the VIPSeg toolkit skips them there, so its
    # summary has no value (the toolkit itself divides by zero); DEVA's scores the whole clips.
    assert "(default) | 100.0 | 100.0 | 100.0 |" in out.output
    assert "VIPSeg toolkit: mean VPQ^1,2,4,6,8, videos shorter than k skipped | n/a |" in out.output
    assert "| 8 | 100.0 |" in out.output
    out = CliRunner().invoke(app, [*args, "--short-videos", "skip"])
    assert out.exit_code == 0, out.output
    assert "| 4 | 100.0 |" in out.output and "| 8 | n/a |" in out.output
    summary = evaluate_vipseg(results, gt, windows=(1, 999)).summary()
    assert summary["VPQ"] == pytest.approx(100) and math.isnan(summary["VPQ_vipseg"])
    assert set(summary) >= {"VPQ^1", "VPQ^∞", "VPQ_vipseg_th", "VPQ_st"}


def test_vipseg_missing_or_misnamed_videos(davis_root: Path, tmp_path: Path) -> None:
    results, gt = make_vipseg(davis_root, tmp_path)
    pred = json.loads((results / "pred.json").read_text())
    pred["annotations"][1]["video_id"] = "dogg"
    (results / "pred.json").write_text(json.dumps(pred))
    with pytest.raises(DevaError, match=r"1 results video\(s\) not in the ground truth: dogg"):
        evaluate_vipseg(results, gt)
    out = CliRunner().invoke(
        app, ["eval", "vipseg", "--results", str(results), "--gt", str(gt), "--subset"]
    )
    assert out.exit_code == 0, out.output
    assert "Videos: SUBSET, 1 of the 2" in out.output and "(no results): dog" in out.output
    assert "| blackswan | 4 | 100.0 |" in out.output and "| dog |" not in out.output


def test_vipseg_malformed_inputs_name_the_file(davis_root: Path, tmp_path: Path) -> None:
    results, gt = make_vipseg(davis_root, tmp_path)
    png = results / "pan_pred" / "dog" / "00001.png"
    ids = read_id_png(png)
    ids[0, 0] = 424242
    write_rgb_ids(png, ids)
    with pytest.raises(DevaError, match=r"00001\.png: segment id 424242"):
        evaluate_vipseg(results, gt)
    (results / "pred.json").write_text("{not json")
    with pytest.raises(DevaError, match=r"pred\.json: malformed JSON"):
        evaluate_vipseg(results, gt)
    (results / "pred.json").write_text(json.dumps({"annotations": []}))
    with pytest.raises(
        DevaError, match=r"pred\.json: no results for 2 of the 2 videos .*: blackswan"
    ):
        evaluate_vipseg(results, gt)
    (gt / "panoptic_gt_VIPSeg_val.json").write_text(json.dumps({"categories": CATEGORIES}))
    with pytest.raises(DevaError, match=r"panoptic_gt_VIPSeg_val\.json: not the VIPSeg"):
        evaluate_vipseg(results, gt)
    out = CliRunner().invoke(app, ["eval", "vipseg", "--results", str(results), "--gt", str(gt)])
    assert out.exit_code == 2
    assert "panoptic_gt_VIPSeg_val.json" in out.output and "Traceback" not in out.output


# --- BURST -------------------------------------------------------------------------------------
COMMON, UNCOMMON, DISTRACTOR = 805, 1000, 20


def burst_tracks(mask: np.ndarray) -> dict[str, np.ndarray]:
    """Three non-overlapping tracks per frame: the DAVIS object (common), a box in the top-left
    corner (uncommon) and one in the top-right corner (distractor category)."""
    uncommon = np.zeros_like(mask)
    uncommon[:10, :10] = True
    distractor = np.zeros_like(mask)
    distractor[:10, -10:] = True
    return {"1": mask & ~uncommon & ~distractor, "2": uncommon, "3": distractor}


def make_burst(davis_root: Path, root: Path, *, drop_track: str | None = None) -> tuple[Path, Path]:
    gt, pred = {"split": "val", "sequences": []}, {"split": "val", "sequences": []}
    for i, seq in enumerate(SEQUENCES):
        masks = davis_masks(davis_root, seq)
        h, w = masks[0].shape
        base = {"id": i + 1, "dataset": "DAVIS", "seq_name": seq, "height": h, "width": w}
        gt_frames, pred_frames = [], []
        for mask in masks:
            tracks = burst_tracks(mask)
            gt_frames.append(
                {k: {"rle": encode_counts(m), "is_gt": True} for k, m in tracks.items()}
            )
            pred_frames.append(
                {str(10 + int(k)): {"rle": encode_counts(m), "score": 0.9}
                 for k, m in tracks.items() if k != drop_track}
            )  # fmt: skip
        # The results have one extra (unannotated) frame, which must be skipped.
        pred_frames.append({"11": {"rle": encode_counts(masks[0]), "score": 0.5}})
        gt["sequences"].append(
            {
                **base,
                "annotated_image_paths": [f"frame{t:04d}.jpg" for t in range(FRAMES)],
                "segmentations": gt_frames,
                "track_category_ids": {"1": COMMON, "2": UNCOMMON, "3": DISTRACTOR},
                "neg_category_ids": [],
                "not_exhaustive_category_ids": [],
            }
        )
        pred["sequences"].append(
            {
                **base,
                "annotated_image_paths": [f"frame{t:04d}.png" for t in range(FRAMES + 1)],
                "segmentations": pred_frames,
                "track_category_ids": {},
            }
        )
    gt_file, pred_file = root / "gt.json", root / "pred.json"
    gt_file.write_text(json.dumps(gt))
    pred_file.write_text(json.dumps(pred))
    return pred_file, gt_file


def test_burst_perfect_tracks_score_100_in_every_split(davis_root: Path, tmp_path: Path) -> None:
    pred, gt = make_burst(davis_root, tmp_path)
    report = evaluate_burst(pred, gt)
    summary = report.summary()
    for split in ("all", "common", "uncommon"):
        assert summary[split]["OWTA"] == pytest.approx(100)
    # The prediction of the distractor object is a false positive: HOTA drops, OWTA does not.
    assert summary["all"]["HOTA"] < 100
    # Distractor tracks are not evaluated: 2 tracks x 4 frames x 2 sequences gt detections.
    assert report.total("all").num_gt_detections == 16
    assert report.sequences[0].num_gt_tracks == 2


def test_burst_missed_uncommon_track(davis_root: Path, tmp_path: Path) -> None:
    pred, gt = make_burst(davis_root, tmp_path, drop_track="2")
    summary = evaluate_burst(pred, gt).summary()
    # common: perfect; uncommon: nothing found; all: DetRe 1/2 with AssA 1 -> OWTA sqrt(1/2).
    assert summary["common"]["OWTA"] == pytest.approx(100)
    assert summary["uncommon"]["OWTA"] == 0
    assert summary["all"]["OWTA"] == pytest.approx(100 * math.sqrt(0.5))


def test_burst_missing_sequence_is_an_error_unless_subset(davis_root: Path, tmp_path: Path) -> None:
    pred, gt = make_burst(davis_root, tmp_path)
    data = json.loads(pred.read_text())
    full = json.loads(json.dumps(data))
    data["sequences"] = data["sequences"][:1]
    pred.write_text(json.dumps(data))
    args = ["eval", "burst", "--results", str(pred), "--gt", str(gt)]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 2 and "no results for 1 of the 2" in out.output
    assert "DAVIS/dog" in out.output and len(out.output.strip().splitlines()) == 1
    out = CliRunner().invoke(app, [*args, "--subset"])
    assert out.exit_code == 0, out.output
    assert "SUBSET, 1 of the 2" in out.output and "DAVIS/dog" in out.output
    assert "| common | 4 | **100.0** |" in out.output  # blackswan alone, found exactly
    # The toolkit scores a missing sequence as empty; listing it without detections does that.
    # common: 8 gt detections (1 track x 4 frames x 2 sequences), the 4 of blackswan found
    # exactly: DetRe 1/2, AssA 1 -> OWTA sqrt(1/2).
    for frame in full["sequences"][1]["segmentations"]:
        frame.clear()
    pred.write_text(json.dumps(full))
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "| common | 8 | **70.7** |" in out.output
    assert "Convention: BURST toolkit open-world" in out.output and "box IoU" in out.output
    # A results sequence named for no gt sequence is an error too.
    full["sequences"][1]["seq_name"] = "dogg"
    pred.write_text(json.dumps(full))
    with pytest.raises(
        DevaError, match=r"1 results sequence\(s\) not in the ground truth: DAVIS/dogg"
    ):
        evaluate_burst(pred, gt)


def test_burst_malformed_inputs_name_the_file(davis_root: Path, tmp_path: Path) -> None:
    pred, gt = make_burst(davis_root, tmp_path)
    good = json.loads(pred.read_text())

    def broken(edit) -> None:
        data = json.loads(json.dumps(good))
        edit(data)
        pred.write_text(json.dumps(data))

    broken(lambda d: d["sequences"][0]["segmentations"][1]["11"].update(rle="zzz~"))
    with pytest.raises(
        DevaError, match=r"pred\.json \(sequence DAVIS/blackswan\), image frame0001"
    ):
        evaluate_burst(pred, gt)
    short = encode_counts(np.ones((3, 3), dtype=bool))
    broken(lambda d: d["sequences"][0]["segmentations"][0]["11"].update(rle=short))
    with pytest.raises(DevaError, match="covers 9 pixels"):
        evaluate_burst(pred, gt)
    broken(lambda d: d["sequences"][0].pop("segmentations"))
    with pytest.raises(DevaError, match=r"pred\.json \(sequence DAVIS/blackswan\): needs"):
        evaluate_burst(pred, gt)
    broken(lambda d: [s.update(seq_name=f"other{i}") for i, s in enumerate(d["sequences"])])
    with pytest.raises(DevaError, match=r"pred\.json: 2 results sequence\(s\) not in the ground"):
        evaluate_burst(pred, gt)
    pred.write_text("[1, 2")
    with pytest.raises(DevaError, match=r"pred\.json: malformed JSON"):
        evaluate_burst(pred, gt)
    gt.write_text(json.dumps({"videos": []}))
    with pytest.raises(DevaError, match=r"gt\.json: not the BURST layout"):
        evaluate_burst(tmp_path / "pred.json", gt)
    out = CliRunner().invoke(app, ["eval", "burst", "--results", str(pred), "--gt", str(gt)])
    assert out.exit_code == 2 and "Traceback" not in out.output


# --- BURST conventions: known answers from the toolkit's definitions ---------------------------
# One gt track (category 805, common) and the predicted tracks below on 10x10 frames. With one
# gt and one predicted track matched on every frame with similarity s, each threshold
# alpha <= s gives DetRe = AssA = 1 and the others 0, so OWTA = #{alpha <= s} / 19.


def box(top: int, left: int, size: int = 4) -> np.ndarray:
    mask = np.zeros((10, 10), dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


def tiny_burst(
    root: Path,
    gt_frames: list[dict[str, np.ndarray]],
    pred_frames: list[dict[str, np.ndarray]],
    **lists: list[int],
) -> tuple[Path, Path]:
    def sequence(frames: list[dict[str, np.ndarray]], categories: dict[str, int]) -> dict:
        return {
            "dataset": "D",
            "seq_name": "s",
            "height": 10,
            "width": 10,
            "annotated_image_paths": [f"frame{t:04d}.jpg" for t in range(len(frames))],
            "segmentations": [{k: {"rle": encode_counts(m)} for k, m in f.items()} for f in frames],
            "track_category_ids": categories,
            **lists,
        }

    gt_file, pred_file = root / "gt.json", root / "pred.json"
    gt_file.write_text(json.dumps({"split": "val", "sequences": [sequence(gt_frames, {"1": 805})]}))
    pred_file.write_text(json.dumps({"sequences": [sequence(pred_frames, {})]}))
    return pred_file, gt_file


def test_box_iou_known_values() -> None:
    boxes = np.array([[0, 0, 4, 4], [2, 2, 4, 4], [6, 6, 2, 2], [0, 0, 0, 0]])
    iou = box_iou(boxes, boxes)
    assert iou[0, 1] == pytest.approx(4 / 28)  # 2x2 overlap, union 16 + 16 - 4
    assert iou[0, 0] == 1 and iou[0, 2] == 0 and iou[1, 2] == 0
    assert iou[3, 3] == 0 and iou[0, 3] == 0  # an empty mask's box overlaps nothing


def test_box_and_mask_iou_give_different_owta(tmp_path: Path) -> None:
    """gt: an L (row 2 and column 2 of the 4x4 square at (2, 2), 7 px); prediction: the whole
    square. Their bounding boxes are equal (box IoU 1: OWTA 100), the masks overlap 7 / 16 =
    0.4375: 8 thresholds (0.05..0.40) pass, OWTA = HOTA = 8 / 19."""
    square = box(2, 2)
    ell = square & ((np.arange(10)[:, None] == 2) | (np.arange(10)[None, :] == 2))
    assert ell.sum() == 7
    pred, gt = tiny_burst(tmp_path, [{"1": ell}] * 2, [{"11": square}] * 2)
    boxed = evaluate_burst(pred, gt).summary()["all"]
    assert boxed["OWTA"] == pytest.approx(100) and boxed["HOTA"] == pytest.approx(100)
    masked = evaluate_burst(pred, gt, iou="mask").summary()["all"]
    assert masked["OWTA"] == pytest.approx(100 * 8 / 19)
    assert masked["HOTA"] == pytest.approx(100 * 8 / 19)
    out = CliRunner().invoke(
        app, ["eval", "burst", "--results", str(pred), "--gt", str(gt), "--iou", "mask"]
    )
    assert out.exit_code == 0, out.output
    assert "mask IoU" in out.output and "not the toolkit's" in out.output
    assert f"| all | 2 | **{100 * 8 / 19:.1f}** |" in out.output


def test_not_exhaustive_sequence_drops_unmatched_predictions(tmp_path: Path) -> None:
    """gt track 1 on square A in frames 0 and 1; predicted track 11 on A in frame 0, on a
    disjoint square B in frame 1. As is: TP 1, FN 1, FP 1 at every threshold; the pair's
    association 1 / (2 + 2 - 1): OWTA = sqrt(1/2 * 1/3), HOTA = sqrt(1/3 * 1/3). When the
    sequence's not_exhaustive_category_ids hold class 1 (the toolkit's class-agnostic id), the
    unmatched frame-1 prediction is dropped: association 1 / (2 + 1 - 1), DetA 1 / 2, so
    OWTA = HOTA = 1 / 2. A list without 1 changes nothing, as in the toolkit."""
    gt_frames = [{"1": box(1, 1)}, {"1": box(1, 1)}]
    pred_frames = [{"11": box(1, 1)}, {"11": box(6, 6)}]
    plain = evaluate_burst(*tiny_burst(tmp_path, gt_frames, pred_frames)).summary()["all"]
    assert plain["OWTA"] == pytest.approx(100 * math.sqrt(1 / 6))
    assert plain["HOTA"] == pytest.approx(100 / 3)
    for iou in ("box", "mask"):
        files = tiny_burst(tmp_path, gt_frames, pred_frames, not_exhaustive_category_ids=[1])
        dropped = evaluate_burst(*files, iou=iou).summary()["all"]
        assert dropped["OWTA"] == pytest.approx(50) and dropped["HOTA"] == pytest.approx(50)
    files = tiny_burst(tmp_path, gt_frames, pred_frames, not_exhaustive_category_ids=[805])
    assert evaluate_burst(*files).summary()["all"]["OWTA"] == pytest.approx(plain["OWTA"])
    report = evaluate_burst(
        *tiny_burst(tmp_path, gt_frames, pred_frames, not_exhaustive_category_ids=[1])
    )
    assert "dropped in 1 sequence(s)" in report.to_markdown()


def test_predictions_on_frames_without_gt_are_dropped(tmp_path: Path) -> None:
    """gt only in frame 0; the prediction on A in frames 0 and 1. The toolkit never reads a
    prediction on an image without gt annotations, so frame 1's is dropped: OWTA = HOTA = 1,
    even when class 1 is listed as a negative category of the sequence. Kept, it would be a
    FP with association 1 / (1 + 2 - 1): OWTA sqrt(1/2), HOTA 1/2."""
    gt_frames = [{"1": box(1, 1)}, {}]
    pred_frames = [{"11": box(1, 1)}, {"11": box(1, 1)}]
    for lists in ({}, {"neg_category_ids": [1]}):
        files = tiny_burst(tmp_path, gt_frames, pred_frames, **lists)
        summary = evaluate_burst(*files).summary()["all"]
        assert summary["OWTA"] == pytest.approx(100) and summary["HOTA"] == pytest.approx(100)


def test_results_of_another_split_are_an_error(tmp_path: Path) -> None:
    pred, gt = tiny_burst(tmp_path, [{"1": box(1, 1)}], [{"11": box(1, 1)}])
    data = json.loads(pred.read_text())
    pred.write_text(json.dumps({**data, "split": "test"}))
    with pytest.raises(DevaError, match=r"pred\.json: results of split 'test'.* split 'val'"):
        evaluate_burst(pred, gt)
