"""Folders and globs of frames: odd pixel formats, damaged or foreign files, odd names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from deva.io.masks import read_id_png

from . import make
from .harness import deva, deva_process, fails, succeeds

FLAGS = ("--size", "-1", "--no-video")


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "I;16", "P", "1", "CMYK"])
def test_pixel_formats_are_converted_to_rgb(tmp_path: Path, mode: str) -> None:
    """Recovery: grayscale, alpha, 16-bit, palette, 1-bit and CMYK frames become 8-bit RGB."""
    ext = "jpg" if mode == "CMYK" else ("tif" if mode == "LA" else "png")
    folder = make.frames(tmp_path / "frames", mode=mode, ext=ext)
    with Image.open(folder / f"0.{ext}") as check:
        assert check.mode == mode  # the frame really is in that mode
    out = tmp_path / "out"
    masks = succeeds(deva("track", folder, "-o", out, "--size", "-1"), out, frames=4)
    assert read_id_png(masks[0]).shape == make.SHAPE
    assert (out / "overlay.mp4").stat().st_size > 0


def test_frames_of_mixed_sizes(tmp_path: Path) -> None:
    folder = make.frames(tmp_path / "frames", count=3)
    make.frames(tmp_path / "frames", shape=(40, 48), names=["3"])
    out = tmp_path / "out"
    fails(deva("track", folder, "-o", out, *FLAGS), "3.png", "48x40", "48x32", out=out)
    assert (out / "annotations.incomplete.json").is_file()


def test_truncated_jpeg_in_the_middle(tmp_path: Path) -> None:
    folder = make.frames(tmp_path / "frames", count=6, ext="jpg")
    broken = folder / "3.jpg"
    broken.write_bytes(broken.read_bytes()[:300])
    out = tmp_path / "out"
    fails(deva("track", folder, "-o", out, "--size", "-1"), "3.jpg", out=out)
    assert sorted(p.stem for p in (out / "masks").glob("*.png")) == ["0", "1", "2"]


def test_text_file_with_an_image_extension(tmp_path: Path) -> None:
    folder = make.frames(tmp_path / "frames", count=3)
    (folder / "1.png").write_text("I am not a picture\n")
    out = tmp_path / "out"
    fails(deva("track", folder, "-o", out, *FLAGS), "1.png", "not an image", out=out)


def test_first_frame_unreadable_fails_before_any_output(tmp_path: Path) -> None:
    folder = make.frames(tmp_path / "frames", count=3)
    (folder / "0.png").write_bytes(b"")
    out = tmp_path / "out"
    fails(deva("track", folder, "-o", out, *FLAGS), "0.png")
    assert not out.exists()


def test_decompression_bomb_header(tmp_path: Path) -> None:
    folder = make.frames(tmp_path / "frames", count=3)
    make.bomb_png(folder / "2.png")
    fails(deva("track", folder, "-o", tmp_path / "out", *FLAGS), "2.png")


def test_folder_with_only_non_images(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    (folder / ".DS_Store").write_bytes(b"\0\0")
    fails(deva("track", folder, "-o", tmp_path / "out", *FLAGS), "frames", "no image files")


def test_glob_matching_nothing(tmp_path: Path) -> None:
    make.frames(tmp_path / "frames")
    pattern = str(tmp_path / "frames" / "*.jpg")
    fails(deva("track", pattern, "-o", tmp_path / "out", *FLAGS), pattern, "matches no image")


def test_non_images_mixed_in_are_skipped(tmp_path: Path) -> None:
    """Recovery: only files with an image extension are frames; the rest is ignored."""
    folder = make.frames(tmp_path / "frames", count=4)
    (folder / "notes.txt").write_text("shot on a phone")
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (folder / ".5.png").write_bytes(b"hidden, half-synced")
    (folder / "sub").mkdir()
    make.frames(folder / "sub", count=1)
    out = tmp_path / "out"
    masks = succeeds(deva("track", folder, "-o", out, *FLAGS), out, frames=4)
    assert [m.stem for m in masks] == ["0", "1", "2", "3"]


def test_two_files_for_one_frame_name(tmp_path: Path) -> None:
    folder = make.frames(tmp_path / "frames", count=3)
    make.frames(folder, names=["1"], ext="jpg")
    fails(deva("track", folder, "-o", tmp_path / "out", *FLAGS), "'1'", "unique")


def test_non_utf8_file_names_are_kept_byte_for_byte(tmp_path: Path) -> None:
    """Recovery: Linux names are bytes; a frame named b'\\xff' gets a mask named b'\\xff'."""
    names = [b"a\xff0", b"a\xfe1", b"a\xe92"]
    folder = make.frames(tmp_path / "frames", names=names)
    out = tmp_path / "out"
    succeeds(deva("track", folder, "-o", out, *FLAGS), out, frames=3)
    written = sorted(os.listdir(os.fsencode(out / "masks")))
    assert written == sorted(n + b".png" for n in names)


def test_non_utf8_name_of_a_corrupt_frame_is_printed_not_crashed_on(tmp_path: Path) -> None:
    folder = make.frames(tmp_path / "frames", names=[b"f0", b"f1\xff", b"f2"])
    Path(os.fsdecode(bytes(folder) + b"/f1\xff.png")).write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    out = tmp_path / "out"
    line = fails(deva_process("track", folder, "-o", out, *FLAGS), "f1", out=out)
    assert "f1\\xff.png" in line  # the undecodable byte is shown escaped, not dropped


def test_markup_like_brackets_in_a_path_are_printed_verbatim(tmp_path: Path) -> None:
    folder = make.frames(tmp_path / "[red]a[/b]" / "frames", count=3)
    (folder / "2.png").write_text("not a png")
    fails(deva("track", folder, "-o", tmp_path / "out", *FLAGS), "[red]a[/b]", "2.png")


def test_frames_too_small_for_optical_flow(tmp_path: Path) -> None:
    folder = make.frames(tmp_path / "frames", shape=(2, 2))
    out = tmp_path / "out"
    outcome = deva("track", folder, "-o", out, "--no-video", "--propagator", "flow")
    fails(outcome, "2x2", "too small", out=out)


def test_tiny_frames_with_the_default_propagator(tmp_path: Path) -> None:
    """The appearance propagator enlarges small frames for its features, so a 2x2 video runs
    (nothing moves in it: the run says so)."""
    folder = make.frames(tmp_path / "frames", shape=(2, 2))
    succeeds(deva("track", folder, "-o", tmp_path / "out", "--no-video"), tmp_path / "out", 4)
