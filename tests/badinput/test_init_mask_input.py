"""Given masks for semi-supervised VOS (--init-masks): size, format, folder and names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from deva.io.masks import read_id_png, write_id_png

from . import make
from .harness import deva, fails, succeeds

FLAGS = ("--size", "-1", "--no-video")


def track(tmp_path: Path, init: Path):
    folder = make.frames(tmp_path / "frames")
    return deva("track", folder, "-o", tmp_path / "out", "--init-masks", init, *FLAGS)


def init_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "init"
    folder.mkdir()
    return folder


def test_init_mask_of_the_wrong_size(tmp_path: Path) -> None:
    init = init_folder(tmp_path)
    write_id_png(init / "0.png", make.box_ids((30, 40), value=2))
    fails(track(tmp_path, init), "0.png", "40x30", "48x32", out=tmp_path / "out")


def test_davis_palette_mask_saved_as_rgb_is_mapped_back(tmp_path: Path) -> None:
    """Recovery: RGB colours that are DAVIS palette colours become their palette index."""
    init = init_folder(tmp_path)
    ids = make.box_ids(value=3)
    ids[20:28, 30:40] = 1
    make.davis_rgb_png(init / "0.png", ids)
    with Image.open(init / "0.png") as check:
        assert check.mode == "RGB"
    masks = succeeds(track(tmp_path, init), tmp_path / "out", frames=4)
    np.testing.assert_array_equal(read_id_png(masks[0]), ids)


def test_rgb_mask_with_non_palette_colours(tmp_path: Path) -> None:
    init = init_folder(tmp_path)
    pixels = np.zeros((*make.SHAPE, 3), np.uint8)
    pixels[4:14, 6:18] = (200, 30, 30)  # a hand-painted red, not DAVIS red (128, 0, 0)
    Image.fromarray(pixels).save(init / "0.png")
    fails(track(tmp_path, init), "0.png", "(200, 30, 30)", "palette", out=tmp_path / "out")


def test_grayscale_and_16_bit_masks_give_their_values_as_ids(tmp_path: Path) -> None:
    """Recovery (documented): any single-channel PNG is read as ids, 16-bit ones too."""
    init = init_folder(tmp_path)
    Image.fromarray(make.box_ids(value=7).astype(np.uint8), mode="L").save(init / "0.png")
    write_id_png(init / "2.png", _corner(1000))
    masks = succeeds(track(tmp_path, init), tmp_path / "out", frames=4)
    assert set(np.unique(read_id_png(masks[0]))) == {0, 7}
    assert 1000 in np.unique(read_id_png(masks[2]))


def _corner(value: int) -> np.ndarray:
    ids = np.zeros(make.SHAPE, np.int32)
    ids[20:30, 30:44] = value
    return ids


def test_empty_init_masks_folder(tmp_path: Path) -> None:
    init = init_folder(tmp_path)
    (init / "readme.txt").write_text("masks go here")
    fails(track(tmp_path, init), "init", "no .png masks")


def test_init_masks_named_unlike_the_frames(tmp_path: Path) -> None:
    init = init_folder(tmp_path)
    write_id_png(init / "00000.png", make.box_ids())  # DAVIS names; the frames are 0.png...
    out = tmp_path / "out"
    fails(track(tmp_path, init), "init", "00000.png", "no mask is named like a frame")
    assert not out.exists()


def test_init_masks_path_is_a_file(tmp_path: Path) -> None:
    mask = tmp_path / "0.png"
    write_id_png(mask, make.box_ids())
    fails(track(tmp_path, mask), "0.png", "not a folder")


def test_corrupt_init_mask(tmp_path: Path) -> None:
    init = init_folder(tmp_path)
    (init / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    fails(track(tmp_path, init), "0.png", "not a readable PNG", out=tmp_path / "out")
