"""``deva sam3-video``: SAM 3's own detector + tracker written in deva's output format, with a
tiny random Sam3VideoModel (detector + tracker built from the real config classes). Random
weights: the format, ids, categories and the bounded session are checked, not quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from deva.cli import app
from deva.io.masks import read_id_png
from deva.models import loading, tiny
from deva.models.sam3_video import Sam3VideoBaseline
from deva.types import Frame


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny.tiny_sam3_video(tmp_path_factory.mktemp("sam3video") / "model")


@pytest.fixture(scope="module")
def frames(davis_root: Path) -> list[np.ndarray]:
    folder = davis_root / "JPEGImages" / "480p" / "blackswan"
    return [
        np.asarray(Image.open(folder / f"{i:05d}.jpg").convert("RGB").resize((128, 72)))
        for i in range(3)
    ]


def test_objects_are_the_models_with_phrase_categories(model_dir, frames) -> None:
    loaded = loading.load_model(
        model_dir, accepted=loading.SAM3_VIDEO_TYPES, role="t", device=torch.device("cpu")
    )
    baseline = Sam3VideoBaseline(loaded, ["person", "dog"])
    seen = 0
    for index, image in enumerate(frames):
        result = baseline.step(Frame(index, f"{index:05d}", image))
        assert result.ids.shape == image.shape[:2]
        present = set(np.unique(result.ids).tolist()) - {0}
        assert present == set(result.object_ids)
        for info in result.objects:
            assert info.category_id in (0, 1) and info.area == int((result.ids == info.id).sum())
        seen += len(result.objects)
        assert list(baseline._session.processed_frames) == [index]  # one frame of pixels
    assert seen > 0


def test_cli_writes_deva_outputs(model_dir, frames, tmp_path) -> None:
    clip = tmp_path / "clip"
    clip.mkdir()
    for index, image in enumerate(frames):
        Image.fromarray(image).save(clip / f"{index:05d}.png")
    out = tmp_path / "out"
    args = ["sam3-video", clip, "-o", out, "--prompt", "person.dog", "--model", model_dir]
    result = CliRunner().invoke(app, [str(a) for a in [*args, "--no-video", "--device", "cpu"]])
    assert result.exit_code == 0, result.output
    annotations = json.loads((out / "annotations.json").read_text())["frames"]
    masks = sorted((out / "masks").glob("*.png"))
    assert len(annotations) == len(masks) == 3
    for record, mask in zip(annotations, masks, strict=True):
        assert {o["id"] for o in record["objects"]} == set(np.unique(read_id_png(mask))) - {0}
        for obj in record["objects"]:
            assert obj["category"] == ["person", "dog"][obj["category_id"]]
    again = CliRunner().invoke(app, [str(a) for a in [*args, "--no-video", "--device", "cpu"]])
    assert again.exit_code == 2 and "--overwrite" in again.output  # never mixes two runs


def test_cli_needs_a_sam3_video_model(tmp_path, frames) -> None:
    folder = tiny.tiny_sam(tmp_path / "sam")
    clip = tmp_path / "clip"
    clip.mkdir()
    Image.fromarray(frames[0]).save(clip / "00000.png")
    args = ["sam3-video", clip, "-o", tmp_path / "out", "--prompt", "dog", "--model", folder]
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 2
    assert "holds a 'sam' model; expected one of sam3_video" in result.output
