"""A new user's first hour (issue 17): stale results, Ctrl-C, honest messages, the summary line,
what annotations.json records, help at 80 columns, batch tables and eval of one run folder."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from deva.cli import app
from deva.demo import render_demo
from deva.io.masks import read_id_png, write_id_png
from deva.io.video import VideoWriter

ROOT = Path(__file__).resolve().parents[1]
CLIP = render_demo(num_frames=24, height=72, width=128)
SMALL = ("--size", "-1", "--no-video")


def deva(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def frames_folder(folder: Path, count: int, clip=CLIP) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(clip.frames[:count]):
        cv2.imwrite(str(folder / f"{index:05d}.png"), image[..., ::-1])
    return folder


def video_file(path: Path, count: int) -> Path:
    with VideoWriter(path, fps=12) as writer:
        for image in CLIP.frames[:count]:
            writer.write(image)
    return path


def masks(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "masks").glob("*.png"))


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


# --- Defect 1: a new run never mixes with an earlier one ---------------------------------------


def test_a_used_output_folder_is_refused_and_overwrite_replaces_exactly_deva_files(tmp_path):
    old = tmp_path / "old_run"
    assert deva("track", frames_folder(tmp_path / "long", 20), "-o", old, *SMALL).exit_code == 0
    reused = tmp_path / "reused"
    shutil.copytree(old, reused)  # cp -r old_run reused
    (reused / "notes.txt").write_text("mine")
    (reused / "masks" / "README.txt").write_text("mine too")
    (reused / "coco.json").write_text("{}")  # deva export's default file: derived from old run
    short = frames_folder(tmp_path / "short", 6)

    refused = deva("track", short, "-o", reused, *SMALL)
    assert refused.exit_code == 2
    (line,) = error_lines(refused.output)
    assert "already holds a finished deva run (20 masks)" in line and "--overwrite" in line
    assert len(masks(reused)) == 20  # nothing touched

    replaced = deva("track", short, "-o", reused, *SMALL, "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert masks(reused) == [f"{i:05d}.png" for i in range(6)]  # no stale masks
    assert json.loads((reused / "annotations.json").read_text())["num_frames"] == 6
    assert (reused / "notes.txt").read_text() == "mine"
    assert (reused / "masks" / "README.txt").read_text() == "mine too"
    assert not (reused / "coco.json").exists()


def test_an_unfinished_run_with_a_checkpoint_suggests_resume(tmp_path):
    out = tmp_path / "out"
    assert deva("track", frames_folder(tmp_path / "f", 8), "-o", out, *SMALL).exit_code == 0
    (out / "annotations.json").rename(out / "annotations.incomplete.json")
    (out / ".deva-resume.pt").write_bytes(b"")
    result = deva("track", tmp_path / "f", "-o", out, *SMALL)
    (line,) = error_lines(result.output)
    assert "unfinished deva run with a checkpoint" in line
    assert "--resume" in line and "--overwrite" in line
    result = deva("track", tmp_path / "f", "-o", out, *SMALL, "--resume", "--overwrite")
    assert "give one" in error_lines(result.output)[0]


def test_resume_into_a_finished_run_is_refused(tmp_path):
    out = tmp_path / "out"
    assert deva("track", frames_folder(tmp_path / "f", 8), "-o", out, *SMALL).exit_code == 0
    result = deva("track", tmp_path / "f", "-o", out, *SMALL, "--resume")
    assert "nothing to resume" in error_lines(result.output)[0]


def test_batch_replaces_exactly_what_an_earlier_run_left_in_a_video_folder(tmp_path):
    clips = tmp_path / "clips"
    frames_folder(clips / "walk", 8)
    earlier = tmp_path / "runs" / "walk"
    assert (
        deva("track", frames_folder(tmp_path / "longer", 20), "-o", earlier, *SMALL).exit_code == 0
    )
    (earlier / ".deva-resume.pt").write_bytes(b"stale")
    (earlier / "masks" / "keep.txt").write_text("mine")
    result = deva("batch", clips, "-o", tmp_path / "runs", *SMALL)
    assert result.exit_code == 0, result.output
    assert masks(earlier) == [f"{i:05d}.png" for i in range(8)]
    assert not (earlier / ".deva-resume.pt").exists()
    assert (earlier / "masks" / "keep.txt").read_text() == "mine"


def saliency_dataset(root: Path, count: int) -> tuple[Path, Path]:
    images, soft = root / "images", root / "soft"
    frames_folder(images / "clip", count)
    (soft / "clip").mkdir(parents=True)
    for index in range(count):
        mask = np.where(CLIP.masks[index] > 0, 230, 0).astype(np.uint8)
        cv2.imwrite(str(soft / "clip" / f"{index:05d}.png"), mask)
    return images, soft


def test_run_task_refuses_earlier_results_and_overwrite_removes_them(tmp_path):
    out = tmp_path / "out"
    images, soft = saliency_dataset(tmp_path / "a", 12)
    task = ("run-task", "davis16-saliency")
    assert deva(*task, images, "-o", out, "--masks", soft).exit_code == 0
    (out / "readme.txt").write_text("mine")
    images, soft = saliency_dataset(tmp_path / "b", 5)
    refused = deva(*task, images, "-o", out, "--masks", soft)
    assert refused.exit_code == 2 and "--overwrite" in error_lines(refused.output)[0]
    assert len(list((out / "clip").glob("*.png"))) == 12
    result = deva(*task, images, "-o", out, "--masks", soft, "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "clip").glob("*.png")) == [
        f"{i:05d}.png" for i in range(5)
    ]
    assert (out / "readme.txt").read_text() == "mine"


# --- Defect 5: Ctrl-C leaves nothing hidden behind and says how to continue --------------------


def interrupt(command: list[str], out: Path, *, after: int, checkpoint: bool) -> str:
    """Run ``command``, press Ctrl-C once ``after`` masks (and a checkpoint) exist; its stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "deva.cli", *command],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "400"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # A suite run in the background ignores SIGINT, and children inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    written = out / "masks"
    while process.poll() is None:
        done = len(list(written.glob("*.png"))) if written.is_dir() else 0
        if done >= after and (not checkpoint or (out / ".deva-resume.pt").is_file()):
            process.send_signal(signal.SIGINT)
            break
        time.sleep(0.005)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    return stderr


def continue_command(stderr: str) -> list[str]:
    """The command the interruption message gives, run as ``python -m deva.cli``."""
    line = stderr.strip().splitlines()[-1].strip()
    words = shlex.split(line)
    assert words[:2] == ["deva", "track"], line
    return words[1:]


@pytest.mark.parametrize("checkpoint", [True, False])
def test_ctrl_c_leaves_no_partial_file_and_prints_the_command_that_continues(tmp_path, checkpoint):
    clip = render_demo(num_frames=400, height=72, width=128)
    frames = frames_folder(tmp_path / "frames", 400, clip)
    out = tmp_path / "out"
    options = ["--checkpoint-every", "20"] if checkpoint else []
    command = ["track", str(frames), "-o", str(out), "--no-video", *options]
    stderr = interrupt(command, out, after=30, checkpoint=checkpoint)
    assert (out / "annotations.incomplete.json").is_file()
    assert not list(out.glob(".*.partial")), os.listdir(out)  # the stream went to incomplete
    assert "interrupted after" in stderr
    again = continue_command(stderr)
    assert "--resume" in again and str(out) in again
    if not checkpoint:
        assert "--checkpoint-every" in again  # the rerun can be continued next time
    done = subprocess.run(
        [sys.executable, "-m", "deva.cli", *again],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    annotations = json.loads((out / "annotations.json").read_text())
    assert annotations["complete"] is True and annotations["num_frames"] == 400
    assert len(masks(out)) == 400 and not list(out.glob(".*.partial"))


# --- Defect 6: messages say flags and what is wrong --------------------------------------------


def test_a_symlink_loop_is_named_as_one(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    (line,) = error_lines(deva("track", loop, "-o", tmp_path / "out").output)
    assert "symlink loop" in line and "no such file" not in line
    broken = tmp_path / "broken.mp4"
    broken.symlink_to(tmp_path / "gone.mp4")
    (line,) = error_lines(deva("track", broken, "-o", tmp_path / "out").output)
    assert "broken symlink" in line and "gone.mp4" in line


def test_one_frame_reads_as_one_frame_and_says_why_nothing_was_found(tmp_path):
    result = deva("track", frames_folder(tmp_path / "f", 1), "-o", tmp_path / "out", *SMALL)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "tracked 0 objects in 1 frame" in text
    assert not re.search(r"(?<![\d.])1 frames", text)  # the rate (e.g. 79.1 frames/s) aside
    assert "warning: no objects found" in text
    assert "needs at least 3 frames; this video has 1" in text


def test_clip_size_above_detect_every_warns(tmp_path):
    frames = frames_folder(tmp_path / "f", 4)
    result = deva(
        "track", frames, "-o", tmp_path / "o", *SMALL, "--clip-size", "5", "--detect-every", "2"
    )
    text = " ".join(result.output.split())
    assert "warning: --clip-size 5 is above --detect-every 2: clips hold 2 frames" in text
    quiet = deva("track", frames, "-o", tmp_path / "p", *SMALL, "--clip-size", "2")
    assert "--clip-size" not in quiet.output


# --- The summary line, annotations.json's record of the run, exports named after the input -----


def test_track_prints_a_summary_and_records_the_run(tmp_path):
    video = video_file(tmp_path / "my_clip.mp4", 16)
    out = tmp_path / "out"
    result = deva("track", video, "-o", out, "--size", "-1", "--detect-every", "4")
    assert result.exit_code == 0, result.output
    annotations = json.loads((out / "annotations.json").read_text())
    found = {o["id"] for frame in annotations["frames"] for o in frame["objects"]}
    assert found
    text = " ".join(result.output.split())
    objects = "1 object" if len(found) == 1 else f"{len(found)} objects"
    assert f"tracked {objects} in 16 frames" in text and "frames/s" in text
    assert f"-> {out}/ (masks/, annotations.json, overlay.mp4)" in text

    source = annotations["input"]
    assert source["path"] == str(video) and source["name"] == "my_clip"
    assert (source["width"], source["height"], source["frames"]) == (128, 72, 16)
    assert source["fps"] == pytest.approx(12.0)
    assert annotations["tracker"]["detect_every"] == 4
    assert annotations["options"]["detect_every"] == 4 and annotations["options"]["size"] == -1
    assert annotations["segmenter"] == "MotionSegmenter"
    assert annotations["deva_version"]

    assert deva("export", "--format", "coco", out).exit_code == 0
    coco = json.loads((out / "coco.json").read_text())
    assert coco["videos"][0]["name"] == "my_clip"  # not "out"


# --- eval davis of one deva track output -------------------------------------------------------


def test_eval_davis_scores_one_track_output_with_sequence(davis_root, tmp_path):
    run = tmp_path / "out"
    (run / "masks").mkdir(parents=True)
    for gt in sorted((davis_root / "Annotations" / "480p" / "blackswan").glob("*.png")):
        write_id_png(run / "masks" / gt.name, (read_id_png(gt) > 0).astype(np.int32) * 3)
    args = ("eval", "davis", "--results", run, "--davis-root", davis_root, "--match", "union")
    (line,) = error_lines(deva(*args).output)
    assert "--sequence NAME" in line and "RESULTS/<sequence>/" in line
    result = deva(*args, "--sequence", "blackswan")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("| blackswan"))
    assert row.split("|")[4].strip() == "1.000"  # J&F of the ground truth itself
    missing = deva(*args, "--sequence", "camel")
    assert str(run) in error_lines(missing.output)[0] and "deva-eval-" not in missing.output


# --- deva batch prints tables, not Markdown ----------------------------------------------------


def test_batch_prints_its_summary_as_a_table(tmp_path):
    clips = tmp_path / "clips"
    frames_folder(clips / "one", 4)
    (clips / "two.mp4").write_bytes(b"not a video")
    result = deva("batch", clips, "-o", tmp_path / "runs", *SMALL)
    assert result.exit_code == 1
    assert "|---" not in result.output and "# deva batch" not in result.output
    header = next(line for line in result.output.splitlines() if "status" in line)
    assert "video" in header and "frames/s" in header and "|" not in header
    assert any("one" in line and "ok" in line for line in result.output.splitlines())
    assert "failures" in result.output and "two.mp4" in result.output
    assert "|---" in (tmp_path / "runs" / "summary.md").read_text()  # the file stays Markdown


# --- --help at 80 columns ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [["track"], ["batch"], ["eval", "davis"], ["run-task", "vipseg"]]
)
def test_help_fits_80_columns_and_can_be_pasted(command):
    from deva.models.builders import DEFAULT_MODELS

    done = subprocess.run(
        [sys.executable, "-m", "deva.cli", *command, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80", "TERM": "dumb"},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert "…" not in done.stdout and "<bool>" not in done.stdout
    assert "{" not in lines[0] and "[OPTIONS]" in lines[0]  # INPUT, not {input}
    if command[0] in ("track", "batch"):
        for model in DEFAULT_MODELS.values():  # whole on one line, never split at a hyphen
            assert any(model in line.split() for line in lines), model
