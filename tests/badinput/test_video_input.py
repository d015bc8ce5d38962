"""Video files that are empty, cut short, not videos, or change size part-way."""

from __future__ import annotations

from pathlib import Path

from . import make
from .harness import deva, fails, succeeds

FLAGS = ("--size", "-1", "--no-video")


def test_zero_byte_video(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    fails(deva("track", empty, "-o", out, *FLAGS), "empty.mp4", out=out)


def test_video_cut_inside_its_header(tmp_path: Path) -> None:
    clip = make.video(tmp_path / "clip.mp4")
    clip.write_bytes(clip.read_bytes()[:600])
    out = tmp_path / "out"
    fails(deva("track", clip, "-o", out, *FLAGS), "clip.mp4", out=out)


def test_video_missing_its_last_tenth_keeps_finished_frames_only(tmp_path: Path) -> None:
    clip = make.video(tmp_path / "clip.mp4", count=20)
    data = clip.read_bytes()
    clip.write_bytes(data[: len(data) * 9 // 10])
    out = tmp_path / "out"
    fails(deva("track", clip, "-o", out, "--size", "-1"), "clip.mp4", "truncated", out=out)
    assert (out / "annotations.incomplete.json").is_file()


def test_video_changing_resolution_mid_stream(tmp_path: Path) -> None:
    clip = make.resizing_video(tmp_path / "resized.ts")
    out = tmp_path / "out"
    fails(deva("track", clip, "-o", out, *FLAGS), "resized.ts", "48x32", "64x48", out=out)


def test_random_bytes_named_mkv(tmp_path: Path) -> None:
    fake = tmp_path / "noise.mkv"
    fake.write_bytes(bytes(range(256)) * 64)
    fails(deva("track", fake, "-o", tmp_path / "out", *FLAGS), "noise.mkv")


def test_audio_file_has_no_video_stream(tmp_path: Path) -> None:
    sound = make.audio_only(tmp_path / "sound.wav")
    fails(deva("track", sound, "-o", tmp_path / "out", *FLAGS), "sound.wav", "no video stream")


def test_video_with_a_misleading_extension_is_read_by_content(tmp_path: Path) -> None:
    """Recovery: any existing non-image file is handed to FFmpeg, which sniffs the format."""
    clip = make.video(tmp_path / "clip.mp4", count=5)
    renamed = clip.rename(tmp_path / "clip.data")
    out = tmp_path / "out"
    masks = succeeds(deva("track", renamed, "-o", out, *FLAGS), out, frames=5)
    assert [m.stem for m in masks] == [f"{i:05d}" for i in range(5)]
