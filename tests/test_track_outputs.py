"""``deva track`` extra outputs: per-object mask folders, the cut-out (alpha) video, overlay
options and category names, checked against the run's own masks and input frames."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from deva.cli import app
from deva.demo import render_demo
from deva.io.frames import open_frames
from deva.io.masks import read_id_png, write_id_png

CLIP = render_demo(num_frames=16, height=72, width=128)


def deva(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("frames")
    for index, image in enumerate(CLIP.frames):
        cv2.imwrite(str(folder / f"{index:05d}.png"), image[..., ::-1])
    return folder


def test_per_object_folders_hold_every_frame_of_each_object(frames, tmp_path):
    out = tmp_path / "out"
    result = deva("track", frames, "-o", out, "--size", "-1", "--no-video", "--save", "per-object")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (out / "masks").glob("*.png"))
    ids = {int(i) for name in names for i in np.unique(read_id_png(out / "masks" / name)) if i}
    assert ids and sorted(int(p.name) for p in (out / "objects").iterdir()) == sorted(ids)
    for object_id in ids:
        folder = out / "objects" / str(object_id)
        assert sorted(p.name for p in folder.glob("*.png")) == names  # a complete sequence
        for name in names:
            mask = cv2.imread(str(folder / name), cv2.IMREAD_UNCHANGED)
            truth = read_id_png(out / "masks" / name) == object_id
            assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
            np.testing.assert_array_equal(mask == 255, truth)


def decode_alpha(path: Path) -> list[np.ndarray]:
    """The RGBA frames of a VP9 + alpha WebM (libvpx decodes the alpha channel)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoder = av.codec.CodecContext.create("libvpx-vp9", "r")
        return [
            frame.to_ndarray(format="rgba")
            for packet in container.demux(stream)
            for frame in decoder.decode(packet)
        ]


def test_cutout_video_is_transparent_outside_the_objects(frames, tmp_path):
    out = tmp_path / "out"
    args = ("track", frames, "-o", out, "--size", "-1", "--save", "cutout")
    assert deva(*args).exit_code == 0
    rgba = decode_alpha(out / "cutout.webm")
    assert len(rgba) == len(CLIP.frames) and rgba[0].shape == (72, 128, 4)
    for index, frame in enumerate(rgba):
        opaque = read_id_png(out / "masks" / f"{index:05d}.png") > 0
        alpha = frame[..., 3] > 127
        assert (alpha == opaque).mean() > 0.97  # lossy VP9 alpha: edges may differ
        if opaque.sum() > 50:
            colour = np.abs(frame[..., :3][opaque].astype(int) - CLIP.frames[index][opaque])
            assert colour.mean() < 25  # the objects' own pixels


def test_cutout_is_drawn_again_by_a_resumable_run(frames, tmp_path):
    args = ("--size", "-1", "--no-video", "--save", "cutout")
    assert deva("track", frames, "-o", tmp_path / "a", *args).exit_code == 0
    resumable = ("--checkpoint-every", "4")
    assert deva("track", frames, "-o", tmp_path / "b", *args, *resumable).exit_code == 0
    assert len(decode_alpha(tmp_path / "b" / "cutout.webm")) == len(CLIP.frames)
    assert not (tmp_path / "b" / "overlay.mp4").exists()


def test_overlay_options_reach_the_video(frames, tmp_path):
    plain = ("--overlay-alpha", "0", "--no-contours", "--labels", "none")
    for name, options in (("default", ()), ("plain", plain)):
        assert deva("track", frames, "-o", tmp_path / name, "--size", "-1", *options).exit_code == 0
    default = [f.image for f in open_frames(tmp_path / "default" / "overlay.mp4")]
    bare = [f.image for f in open_frames(tmp_path / "plain" / "overlay.mp4")]
    source = np.stack(CLIP.frames).astype(int)
    objects = np.stack([read_id_png(p) for p in sorted((tmp_path / "plain" / "masks").glob("*"))])
    assert (objects > 0).sum() > 1000

    def error(video: list[np.ndarray]) -> float:  # on the objects' pixels
        return float(np.abs(np.stack(video).astype(int) - source)[objects > 0].mean())

    # An overlay that draws nothing is the input, up to video compression; the default tints.
    assert error(default) > 3 * error(bare) and error(default) > 15
    bad = deva("track", frames, "-o", tmp_path / "bad", "--overlay-alpha", "1.5")
    assert bad.exit_code == 2 and "--overlay-alpha must be within [0, 1], got 1.5" in bad.output


def test_category_names_from_a_file(frames, tmp_path):
    dets = tmp_path / "dets"
    dets.mkdir()
    for index, truth in enumerate(CLIP.masks):
        write_id_png(dets / f"{index:05d}.png", truth.astype(np.int32))
        meta = [{"id": int(i), "category_id": 4, "score": 0.9} for i in np.unique(truth) if i]
        (dets / f"{index:05d}.json").write_text(json.dumps(meta))
    names = tmp_path / "names.json"
    names.write_text(json.dumps([{"id": 4, "name": "shape"}, {"id": 5, "name": "other"}]))
    out = tmp_path / "out"
    result = deva("track", frames, "-o", out, "--detections", dets, "--categories", names)
    assert result.exit_code == 0, result.output
    annotations = json.loads((out / "annotations.json").read_text())
    objects = [o for frame in annotations["frames"] for o in frame["objects"]]
    assert objects and all(o["category"] == "shape" for o in objects)
    names.write_text('{"4": ["not", "a", "name"]')
    bad = deva("track", frames, "-o", tmp_path / "b", "--detections", dets, "--categories", names)
    assert bad.exit_code == 2 and "names.json" in bad.output
