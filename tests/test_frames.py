"""Frame sources: ordering, every input kind, pixel-format conversion, errors and resizing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import DAVIS
from PIL import Image

from deva.errors import DevaError
from deva.io.frames import (
    natural_sort_key,
    open_frames,
    resize_ids,
    resize_short_side,
    short_side_shape,
)

BLACKSWAN = DAVIS / "JPEGImages" / "480p" / "blackswan"


def _image(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _write_pngs(folder: Path, names: list[str], height: int = 12, width: int = 16) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for seed, name in enumerate(names):
        image = _image(height, width, seed)
        Image.fromarray(image).save(folder / name)
        images.append(image)
    return images


# --- ordering ---------------------------------------------------------------------------------


def test_natural_sort_orders_numbers_by_value() -> None:
    names = ["frame10", "frame2", "frame1", "Frame3", "frame02b", "frame"]
    assert sorted(names, key=natural_sort_key) == [
        "frame",
        "frame1",
        "frame2",
        "frame02b",
        "Frame3",
        "frame10",
    ]
    # Equal numeric value: still a total, deterministic order.
    assert sorted(["a01", "a1"], key=natural_sort_key) == sorted(
        ["a1", "a01"], key=natural_sort_key
    )


# --- sources ----------------------------------------------------------------------------------


def test_folder_source_natural_order_names_and_pixels(tmp_path: Path) -> None:
    images = _write_pngs(tmp_path, ["frame10.png", "frame2.png", "frame1.png"])
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / ".hidden.png").write_text("editor junk, not an image")
    (tmp_path / "sub").mkdir()
    source = open_frames(tmp_path)
    assert source.num_frames == 3
    assert source.fps == 24.0
    assert [source.name(i) for i in range(3)] == ["frame1", "frame2", "frame10"]
    frames = list(source)
    assert [f.name for f in frames] == ["frame1", "frame2", "frame10"]
    assert [f.index for f in frames] == [0, 1, 2]
    # frame1 was written third (seed 2), frame10 first (seed 0).
    np.testing.assert_array_equal(frames[0].image, images[2])
    np.testing.assert_array_equal(frames[2].image, images[0])
    assert list(source)[1].name == "frame2", "a folder source can be read again"


def test_glob_source(tmp_path: Path) -> None:
    _write_pngs(tmp_path, ["b_10.png", "b_9.png", "a_1.png", "b_1.jpg"])
    source = open_frames(str(tmp_path / "b_*.png"))
    assert source.num_frames == 2
    assert [f.name for f in source] == ["b_9", "b_10"]


def test_single_image_file_is_one_frame(tmp_path: Path) -> None:
    (image,) = _write_pngs(tmp_path, ["only.png"])
    frames = list(open_frames(tmp_path / "only.png"))
    assert len(frames) == 1 and frames[0].name == "only"
    np.testing.assert_array_equal(frames[0].image, image)


def test_array_sources() -> None:
    stack = np.stack([_image(8, 10, s) for s in range(4)])
    for source in (open_frames(stack), open_frames(list(stack))):
        assert source.num_frames == 4 and source.name(3) == "00003"
        frames = list(source)
        assert [f.name for f in frames] == ["00000", "00001", "00002", "00003"]
        np.testing.assert_array_equal(frames[2].image, stack[2])
        assert len(list(source)) == 4


def test_generator_source_unknown_length_and_read_once() -> None:
    source = open_frames(_image(8, 10, s) for s in range(3))
    assert source.num_frames is None
    assert source.name(5) == "00005"
    assert [f.index for f in source] == [0, 1, 2]
    with pytest.raises(DevaError, match="once"):
        list(source)


def test_davis_clip_as_folder_and_glob() -> None:
    folder = open_frames(BLACKSWAN)
    globbed = open_frames(str(BLACKSWAN / "*.jpg"))
    assert folder.num_frames == globbed.num_frames == 50
    for a, b in zip(folder, globbed, strict=True):
        assert a.image.shape == (480, 854, 3) and a.image.dtype == np.uint8
        assert a.name == b.name == f"{a.index:05d}"
        np.testing.assert_array_equal(a.image, b.image)


# --- pixel formats ----------------------------------------------------------------------------


def test_pixel_formats_become_rgb8(tmp_path: Path) -> None:
    gray = np.arange(12 * 16, dtype=np.uint8).reshape(12, 16)
    rgba = np.dstack([_image(12, 16, 1), np.full((12, 16), 7, np.uint8)])
    deep = (np.arange(12 * 16, dtype=np.uint16).reshape(12, 16) * 300).astype(np.uint16)
    Image.fromarray(gray).save(tmp_path / "0.png")
    Image.fromarray(rgba).save(tmp_path / "1.png")
    Image.fromarray(deep).save(tmp_path / "2.png")
    palette = Image.fromarray((gray % 4).astype(np.uint8)).convert("P")
    palette.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90, 200, 210, 220] + [0] * 756)
    palette.save(tmp_path / "3.png")
    frames = list(open_frames(tmp_path))
    for frame in frames:
        assert frame.image.shape == (12, 16, 3) and frame.image.dtype == np.uint8
    np.testing.assert_array_equal(frames[0].image, np.dstack([gray] * 3))
    np.testing.assert_array_equal(frames[1].image, rgba[:, :, :3])
    expected = np.round(deep / 257).astype(np.uint8)
    np.testing.assert_array_equal(frames[2].image[:, :, 0], expected)
    assert frames[2].image.max() > 200, "16-bit is scaled, not truncated to the low byte"
    np.testing.assert_array_equal(frames[3].image[0, 3], [200, 210, 220])


def test_array_grayscale_and_16bit_convert() -> None:
    (frame,) = open_frames([np.full((4, 6), 65535, np.uint16)])
    assert frame.image.shape == (4, 6, 3) and frame.image.dtype == np.uint8
    assert (frame.image == 255).all()


# --- errors -----------------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(DevaError, match="no such file") as err:
        open_frames(missing)
    assert str(missing) in str(err.value)


def test_empty_folder_and_folder_without_images(tmp_path: Path) -> None:
    with pytest.raises(DevaError, match="no image files") as err:
        open_frames(tmp_path)
    assert str(tmp_path) in str(err.value)
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(DevaError, match="no image files"):
        open_frames(tmp_path)


def test_glob_without_match(tmp_path: Path) -> None:
    pattern = str(tmp_path / "*.png")
    with pytest.raises(DevaError, match="matches no image") as err:
        open_frames(pattern)
    assert pattern in str(err.value)


@pytest.mark.parametrize("kind", ["text", "truncated_jpg", "truncated_png"])
def test_corrupt_image_names_the_file(tmp_path: Path, kind: str) -> None:
    _write_pngs(tmp_path, ["00000.png"], height=64, width=64)
    if kind == "text":
        bad = tmp_path / "00001.jpg"
        bad.write_text("this is not a jpeg")
    else:
        fmt = "JPEG" if kind == "truncated_jpg" else "PNG"
        bad = tmp_path / ("00001.jpg" if fmt == "JPEG" else "00001.png")
        Image.fromarray(_image(64, 64, 5)).save(bad, format=fmt)
        bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    source = open_frames(tmp_path)
    with pytest.raises(DevaError) as err:
        list(source)
    assert str(bad) in str(err.value)
    # Corrupt first frame: the error comes at open time already.
    (tmp_path / "00000.png").unlink()
    with pytest.raises(DevaError) as err:
        open_frames(tmp_path)
    assert str(bad) in str(err.value)


def test_mixed_frame_sizes(tmp_path: Path) -> None:
    _write_pngs(tmp_path, ["0.png", "1.png"], height=12, width=16)
    Image.fromarray(_image(10, 16, 9)).save(tmp_path / "2.png")
    source = open_frames(tmp_path)
    with pytest.raises(DevaError) as err:
        list(source)
    message = str(err.value)
    assert str(tmp_path / "2.png") in message and "16x10" in message and "16x12" in message


def test_duplicate_frame_names(tmp_path: Path) -> None:
    _write_pngs(tmp_path, ["a.png", "a.jpg"])
    with pytest.raises(DevaError, match="'a'"):
        open_frames(tmp_path)


@pytest.mark.parametrize(
    "frames",
    [
        [np.zeros((4, 4, 3), np.float32)],
        [np.zeros((4, 4, 2), np.uint8)],
        [np.zeros((2, 4, 4, 3), np.uint8)],
        [np.zeros((4, 4, 3), np.int64)],
        np.zeros((4, 4), np.uint8),
        np.zeros((4, 6, 3), np.uint8),  # one image, not a stack: ambiguous, so refused
        [],
    ],
)
def test_bad_arrays(frames: object) -> None:
    with pytest.raises(DevaError, match="in-memory"):
        open_frames(frames)


def test_bad_array_in_generator_and_mixed_sizes() -> None:
    with pytest.raises(DevaError, match="in-memory frame 1"):
        list(open_frames(iter([_image(4, 4, 0), np.zeros((4, 4), bool)])))
    with pytest.raises(DevaError, match="in-memory frame 1.*5x4"):
        list(open_frames([_image(4, 4, 0), _image(4, 5, 1)]))


def test_unsupported_source_type() -> None:
    with pytest.raises(DevaError, match="int"):
        open_frames(42)  # type: ignore[arg-type]


# --- resizing ---------------------------------------------------------------------------------


def test_short_side_shape() -> None:
    assert short_side_shape(480, 854, 480) == (480, 854)
    assert short_side_shape(480, 854, 240) == (240, 427)
    assert short_side_shape(854, 480, 240) == (427, 240)
    assert short_side_shape(480, 854, -1) == (480, 854)
    assert short_side_shape(481, 855, 100) == (100, round(855 * 100 / 481))
    with pytest.raises(DevaError):
        short_side_shape(480, 854, 0)


def test_resize_short_side_and_ids_agree() -> None:
    image = _image(480, 854, 0)
    small = resize_short_side(image, 240)
    assert small.shape == (240, 427, 3) and small.dtype == np.uint8
    assert resize_short_side(image, -1) is image
    assert resize_short_side(image, 960).shape == (960, 1708, 3)
    ids = np.zeros((480, 854), np.int64)
    ids[100:200, 300:500] = 70000
    small_ids = resize_ids(ids, small.shape[:2])
    assert small_ids.shape == (240, 427) and small_ids.dtype == np.int64
    assert set(np.unique(small_ids)) == {0, 70000}
    # Nearest neighbour on pixel centres: 2x up then 2x down restores the map exactly.
    up = resize_ids(ids, (960, 1708))
    np.testing.assert_array_equal(resize_ids(up, (480, 854)), ids)
    np.testing.assert_array_equal(up[::2, ::2], ids)
