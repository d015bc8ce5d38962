"""End-to-end runs of the ``deva`` command on real DAVIS frames, and every bad-input case."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from deva.cli import app
from deva.eval.davis import evaluate_sequence
from deva.io.masks import read_id_png, write_id_png
from deva.io.video import VideoWriter

runner = CliRunner()


def deva(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def clip(davis_root: Path, tmp_path: Path, sequence: str, frames: int) -> Path:
    """The first ``frames`` frames of a DAVIS sequence, copied to their own folder."""
    folder = tmp_path / sequence
    folder.mkdir()
    source = sorted((davis_root / "JPEGImages" / "480p" / sequence).glob("*.jpg"))[:frames]
    for path in source:
        shutil.copy(path, folder / path.name)
    return folder


def gt_detections(davis_root: Path, out: Path, sequence: str, frames: int, seed: int = 0) -> Path:
    """Detections from the ground truth, with a random id per frame and per-frame JSON meta."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True)
    gt = sorted((davis_root / "Annotations" / "480p" / sequence).glob("*.png"))[:frames]
    for path in gt:
        new_id = int(rng.integers(1, 200))
        write_id_png(out / path.name, (read_id_png(path) > 0) * new_id)
        meta = [{"id": new_id, "category_id": 4, "score": 0.9}]
        (out / f"{path.stem}.json").write_text(json.dumps(meta))
    return out


def score(results: Path, davis_root: Path, sequence: str, match: str = "hungarian") -> float:
    """J&F of the frames written to ``results/masks`` against the DAVIS ground truth."""
    masks = sorted((results / "masks").glob("*.png"))
    gt = davis_root / "Annotations" / "480p" / sequence
    pred = np.stack([read_id_png(m) for m in masks])
    truth = np.stack([read_id_png(gt / m.name) for m in masks])
    return evaluate_sequence(pred, truth, match=match).jf_mean


def test_track_with_precomputed_detections_on_a_real_clip(davis_root, tmp_path):
    frames = clip(davis_root, tmp_path, "blackswan", 20)
    detections = gt_detections(davis_root, tmp_path / "dets", "blackswan", 20)
    out = tmp_path / "runs" / "blackswan"
    result = deva("track", frames, "-o", out, "--detections", detections)
    assert result.exit_code == 0, result.output
    masks = sorted((out / "masks").glob("*.png"))
    assert [m.stem for m in masks] == [f"{i:05d}" for i in range(20)]
    ids = read_id_png(masks[7])
    assert ids.shape == (480, 854)
    annotations = json.loads((out / "annotations.json").read_text())
    assert annotations["complete"] and annotations["num_frames"] == 20
    # One object, one stable id, category and score voted from the JSON.
    objects = {o["id"] for f in annotations["frames"] for o in f["objects"]}
    assert objects == {1}
    frame7 = annotations["frames"][7]["objects"][0]
    assert frame7["category_id"] == 4 and frame7["score"] == pytest.approx(0.9)
    assert frame7["area"] == int((ids == 1).sum())
    assert (out / "overlay.mp4").stat().st_size > 0
    assert score(out, davis_root, "blackswan") > 0.85  # measured 0.90


def test_track_with_the_default_segmenter_on_a_real_clip(davis_root, tmp_path):
    frames = clip(davis_root, tmp_path, "blackswan", 25)
    out = tmp_path / "runs" / "blackswan"
    result = deva("track", frames, "-o", out, "--no-video")
    assert result.exit_code == 0, result.output
    assert len(list((out / "masks").glob("*.png"))) == 25
    assert not (out / "overlay.mp4").exists()
    assert score(out, davis_root, "blackswan", match="union") > MOTION_FLOOR


MOTION_FLOOR = 0.3


def test_track_a_video_file_writes_native_resolution(tmp_path):
    from deva.demo import render_demo

    demo = render_demo(num_frames=12, height=180, width=320)
    video = tmp_path / "clip.mp4"
    with VideoWriter(video, fps=12) as writer:
        for frame in demo.frames:
            writer.write(frame)
    out = tmp_path / "out"
    result = deva("track", video, "-o", out, "--size", "120", "--no-video")
    assert result.exit_code == 0, result.output
    masks = sorted((out / "masks").glob("*.png"))
    assert len(masks) == 12 and read_id_png(masks[0]).shape == (180, 320)


def test_demo_writes_an_overlay_video(tmp_path):
    result = deva("demo", "-o", tmp_path / "demo")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "demo" / "overlay.mp4").stat().st_size > 10_000
    assert "overlay.mp4" in result.output


def test_help_lists_options_with_defaults():
    result = deva("track", "--help")
    assert result.exit_code == 0
    for option in ("--detect-every", "--max-missed", "--size", "--segmenter", "--no-video"):
        assert option in result.output
    assert "default: 5" in result.output


# ---------------------------------------------------------------------------------------------
# Bad input: one clear error naming the file, exit code 2, nothing that looks complete.


def assert_clean_failure(result, *needles: str, out: Path | None = None) -> None:
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "error" in text.lower() and "Traceback" not in text
    for needle in needles:
        assert needle in text, (needle, text)
    if out is not None:
        assert not (out / "annotations.json").exists()
        assert not (out / "overlay.mp4").exists()


def small_frames(folder: Path, count: int = 3, size=(48, 64)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def test_missing_input(tmp_path):
    assert_clean_failure(deva("track", tmp_path / "nope.mp4", "-o", tmp_path / "o"), "nope.mp4")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_clean_failure(deva("track", tmp_path / "empty", "-o", tmp_path / "o"), "empty")


def test_unreadable_video(tmp_path):
    (tmp_path / "fake.mp4").write_text("not a video")
    assert_clean_failure(deva("track", tmp_path / "fake.mp4", "-o", tmp_path / "o"), "fake.mp4")


def test_truncated_video(tmp_path):
    from deva.demo import render_demo

    video = tmp_path / "clip.mp4"
    with VideoWriter(video, fps=12) as writer:
        for frame in render_demo(num_frames=30, height=120, width=160).frames:
            writer.write(frame)
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    out = tmp_path / "o"
    assert_clean_failure(deva("track", video, "-o", out, "--size", "-1"), "clip.mp4", out=out)


def test_corrupt_frame_midway_keeps_finished_frames_and_writes_nothing_complete(tmp_path):
    frames = small_frames(tmp_path / "frames", count=6)
    (frames / "4.png").write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    out = tmp_path / "o"
    assert_clean_failure(deva("track", frames, "-o", out), "4.png", out=out)
    assert sorted(p.stem for p in (out / "masks").glob("*.png")) == ["0", "1", "2", "3"]
    partial = json.loads((out / "annotations.incomplete.json").read_text())
    assert partial["complete"] is False and partial["num_frames"] == 4


def test_detection_png_of_the_wrong_size(tmp_path):
    frames = small_frames(tmp_path / "frames")
    dets = tmp_path / "dets"
    dets.mkdir()
    for i in range(3):
        write_id_png(dets / f"{i}.png", np.zeros((10, 10), np.int32))
    assert_clean_failure(
        deva("track", frames, "-o", tmp_path / "o", "--detections", dets), "0.png", "10x10"
    )


def test_detection_missing_for_a_frame(tmp_path):
    frames = small_frames(tmp_path / "frames")
    dets = tmp_path / "dets"
    dets.mkdir()
    write_id_png(dets / "0.png", np.zeros((48, 64), np.int32))
    args = ("track", frames, "-o", tmp_path / "o", "--detections", dets, "--detect-every", "1")
    assert_clean_failure(deva(*args), "1.png", "missing")
    assert deva(*args, "--allow-missing", "--overwrite").exit_code == 0


def test_malformed_detection_json(tmp_path):
    frames = small_frames(tmp_path / "frames")
    dets = tmp_path / "dets"
    dets.mkdir()
    for i in range(3):
        write_id_png(dets / f"{i}.png", np.zeros((48, 64), np.int32))
    (dets / "0.json").write_text("[{'id': 1}]")
    assert_clean_failure(
        deva("track", frames, "-o", tmp_path / "o", "--detections", dets), "0.json", "malformed"
    )


def test_unknown_option_value(tmp_path):
    frames = small_frames(tmp_path / "frames")
    result = deva("track", frames, "-o", tmp_path / "o", "--mode", "sometimes")
    assert result.exit_code == 2 and "sometimes" in result.output


def test_invalid_number(tmp_path):
    frames = small_frames(tmp_path / "frames")
    result = deva("track", frames, "-o", tmp_path / "o", "--detect-every", "0")
    assert_clean_failure(result, "--detect-every must be >= 1, got 0")


def test_output_folder_not_writable(tmp_path):
    frames = small_frames(tmp_path / "frames")
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file where a folder should be")
    assert_clean_failure(deva("track", frames, "-o", blocker / "out"), "file.txt", "not writable")


def test_eval_with_missing_results(tmp_path, davis_root):
    result = deva("eval", "davis", "--results", tmp_path / "none", "--davis-root", davis_root)
    assert_clean_failure(result, "none")


def test_semionline_beats_online_on_the_same_noisy_detections(davis_root, tmp_path):
    from deva.eval.noise import write_noisy_detections

    sequence = "camel"
    dets = tmp_path / "dets"
    write_noisy_detections(davis_root / "Annotations" / "480p" / sequence, dets, seed=0)
    frames = davis_root / "JPEGImages" / "480p" / sequence
    scores = {}
    for mode in ("online", "semionline"):
        out = tmp_path / mode / sequence
        # flow: the clip vote is what this measures; with the appearance propagator camel's
        # second camel drags both modes down (BENCHMARKS.md: 0.56 semi-online)
        args = ["--mode", mode, "--no-video", "--propagator", "flow"]
        result = deva("track", frames, "-o", out, "--detections", dets, *args)
        assert result.exit_code == 0, result.output
        assert len(list((out / "masks").glob("*.png"))) == 90
        scores[mode] = score(out, davis_root, sequence)
    # Measured: online 0.33, semi-online 0.85 (the false positives and splits online lets in
    # take the camel's id; the clip vote rejects them).
    assert scores["semionline"] > 0.75
    assert scores["semionline"] > scores["online"] + 0.2
