"""Videos as the user sees them: rotation metadata and EXIF orientation are honoured on input,
and the overlay keeps the input's size (odd ones too) and timing (variable frame rates too).

Inputs are written with PyAV or PIL directly, not with deva's writer, so the checks do not lean
on the code under test; the demo renderer gives frames with known object masks.
"""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from deva.cli import app
from deva.demo import render_demo
from deva.io.frames import open_frames
from deva.io.masks import read_id_png, write_id_png

TIME_BASE = Fraction(1, 10000)


def deva(*args: object) -> None:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def write_video(
    path: Path,
    frames: np.ndarray,
    *,
    codec: str = "libx264",
    rotation: int = 0,
    times: list[float] | None = None,
    end: float | None = None,
) -> None:
    """Frames stored as given; ``rotation``: the display matrix's counter-clockwise degrees.
    ``times`` (seconds) make a variable frame rate, ``end`` when the last frame stops."""
    height, width = frames.shape[1:3]
    times = times if times is not None else [i / 10 for i in range(len(frames))]
    ends = [*times[1:], end if end is not None else times[-1] + 0.1]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = TIME_BASE
        if codec == "libx264":
            stream.options = {"bf": "0", "crf": "18"}
        if rotation:
            stream.set_display_rotation(rotation)
        durations = {}
        for image, start, stop in zip(frames, times, ends, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = round(start / TIME_BASE), TIME_BASE
            durations[frame.pts] = round(stop / TIME_BASE) - frame.pts
            for packet in stream.encode(frame):
                packet.duration = durations[packet.pts]
                container.mux(packet)
        for packet in stream.encode(None):
            packet.duration = durations[packet.pts]
            container.mux(packet)


def read_video(path: Path) -> tuple[list[np.ndarray], list[float], float]:
    """Decoded frames (as stored), their times and the container's duration, in seconds."""
    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))
        duration = container.duration / 1e6
    return [f.to_ndarray(format="rgb24") for f in decoded], [f.time for f in decoded], duration


def first_mask(folder: Path, truth: np.ndarray) -> Path:
    folder.mkdir()
    write_id_png(folder / "00000.png", truth)
    return folder


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def check_upright_run(out: Path, clip, *, tolerance: float) -> None:
    """Masks and overlay are portrait like the clip, and the masks follow its objects."""
    masks = sorted((out / "masks").glob("*.png"))
    assert len(masks) == len(clip.frames)
    last = read_id_png(masks[-1])
    assert last.shape == clip.masks.shape[1:]
    assert iou(last > 0, clip.masks[-1] > 0) > 0.6
    overlay, _, _ = read_video(out / "overlay.mp4")
    assert overlay[-1].shape == clip.frames[-1].shape
    background = last == 0  # left untouched by the overlay
    difference = np.abs(overlay[-1].astype(int) - clip.frames[-1])[background].mean()
    assert difference < tolerance


@pytest.mark.parametrize("rotation", [-90, 90, 180])
def test_rotated_phone_video_is_tracked_and_written_upright(tmp_path: Path, rotation: int) -> None:
    clip = render_demo(num_frames=8, height=192, width=112)  # what the viewer sees: portrait
    turns = rotation // 90  # the player turns the stored frames this many times anticlockwise
    stored = np.stack([np.rot90(f, -turns) for f in clip.frames])
    write_video(tmp_path / "phone.mp4", stored, rotation=rotation)
    masks = first_mask(tmp_path / "init", clip.masks[0])
    deva("track", tmp_path / "phone.mp4", "--init-masks", masks, "-o", tmp_path / "out")
    check_upright_run(tmp_path / "out", clip, tolerance=8.0)


def test_jpegs_with_exif_orientation_are_read_upright(tmp_path: Path) -> None:
    clip = render_demo(num_frames=6, height=192, width=112)
    folder = tmp_path / "frames"
    folder.mkdir()
    orientation = {6: 1, 8: -1, 3: 2}  # EXIF value -> anticlockwise turns of the stored pixels
    for index, image in enumerate(clip.frames):
        value = (6, 8, 3)[index % 3]
        exif = Image.Exif()
        exif[0x0112] = value
        stored = np.rot90(image, orientation[value])
        Image.fromarray(stored).save(folder / f"{index:05d}.jpg", quality=95, exif=exif)
    frames = [f.image for f in open_frames(folder)]
    for frame, expected in zip(frames, clip.frames, strict=True):
        assert frame.shape == expected.shape
        assert np.abs(frame.astype(int) - expected).mean() < 4.0
    masks = first_mask(tmp_path / "init", clip.masks[0])
    deva("track", folder, "--init-masks", masks, "-o", tmp_path / "out")
    check_upright_run(tmp_path / "out", clip, tolerance=10.0)


def test_variable_frame_rate_is_kept_in_the_overlay(tmp_path: Path) -> None:
    clip = render_demo(num_frames=12, height=120, width=160)
    times = [0.0, 0.1, 0.15, 0.3, 0.5, 0.55, 0.6, 1.0, 1.2, 1.25, 1.6, 2.0]
    write_video(tmp_path / "vfr.mp4", clip.frames, times=times, end=2.25)
    _, input_times, input_duration = read_video(tmp_path / "vfr.mp4")
    assert input_times == pytest.approx(times, abs=1e-4) and input_duration == pytest.approx(2.25)
    deva("track", tmp_path / "vfr.mp4", "-o", tmp_path / "out")
    _, output_times, output_duration = read_video(tmp_path / "out" / "overlay.mp4")
    assert output_times == pytest.approx(input_times, abs=1e-3)
    assert output_duration == pytest.approx(input_duration, abs=1e-3)


def test_odd_size_is_kept_in_masks_and_overlay(tmp_path: Path) -> None:
    clip = render_demo(num_frames=6, height=241, width=427)
    write_video(tmp_path / "odd.mp4", clip.frames, codec="mpeg4")  # H.264 4:2:0 needs even
    assert read_video(tmp_path / "odd.mp4")[0][0].shape == (241, 427, 3)
    deva("track", tmp_path / "odd.mp4", "-o", tmp_path / "out")
    assert read_id_png(tmp_path / "out" / "masks" / "00005.png").shape == (241, 427)
    overlay, _, _ = read_video(tmp_path / "out" / "overlay.mp4")
    assert len(overlay) == 6 and overlay[0].shape == (241, 427, 3)


def test_videos_without_metadata_are_unchanged(tmp_path: Path) -> None:
    clip = render_demo(num_frames=3, height=96, width=128)
    write_video(tmp_path / "plain.mp4", clip.frames)
    frames = list(open_frames(tmp_path / "plain.mp4"))
    assert [f.image.shape for f in frames] == [(96, 128, 3)] * 3
    assert [f.time for f in frames] == pytest.approx([0.0, 0.1, 0.2])
    shutil.rmtree(tmp_path)
