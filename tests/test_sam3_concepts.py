"""SAM 3 as the text mode's image model (``--segmenter text --model <sam3>``), with a tiny
random Sam3Model built from the real config classes and saved with a tokenizer. Random weights:
scores sit near 0.25, so thresholds are set around them; plumbing, the score rule, categories
and non-overlap are checked, not mask quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from deva.cli import app
from deva.errors import DevaError
from deva.models import tiny
from deva.models.builders import build_segmenter
from deva.models.pixels import HALF_MEAN_STD, square_pixels
from deva.segmenters.concepts import ConceptSegmenter
from deva.segmenters.options import ModelOptions

SIZE = (120, 214)
PROMPT = "person.dog"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny.tiny_sam3(tmp_path_factory.mktemp("sam3") / "sam3")


@pytest.fixture(scope="module")
def image(davis_root: Path) -> np.ndarray:
    frame = Image.open(davis_root / "JPEGImages" / "480p" / "blackswan" / "00000.jpg")
    return np.asarray(frame.convert("RGB").resize(SIZE[::-1]))


def reference_scores(segmenter: ConceptSegmenter, image: np.ndarray, phrase: str) -> np.ndarray:
    """Every query's score from the model's own one-call path (pixels + token ids), as SAM 3's
    post-processing computes it: sigmoid(query logit) x sigmoid(presence logit)."""
    tokens = segmenter.loaded.processor([phrase], padding="max_length", max_length=32)
    pixels = square_pixels(image, segmenter.image_size, HALF_MEAN_STD, HALF_MEAN_STD)[None]
    with torch.inference_mode():
        out = segmenter.model(
            pixel_values=pixels,
            input_ids=torch.tensor(tokens["input_ids"]),
            attention_mask=torch.tensor(tokens["attention_mask"]),
        )
    return (out.pred_logits[0].sigmoid() * out.presence_logits[0].sigmoid()).numpy()


def test_sam3_model_gives_the_concept_segmenter(model_dir: Path, image: np.ndarray) -> None:
    options = ModelOptions(model=str(model_dir), prompt=PROMPT, device="cpu")
    segmenter = build_segmenter("text", options)
    assert isinstance(segmenter, ConceptSegmenter)
    assert segmenter.category_names == {0: "person", 1: "dog"}
    threshold = float(np.median(reference_scores(segmenter, image, "person")))
    segmenter = build_segmenter(
        "text", ModelOptions(**{**options.__dict__, "score_threshold": threshold})
    )
    for phrase, name in enumerate(["person", "dog"]):
        found = segmenter.instances(image, phrase)
        expected = np.sort(reference_scores(segmenter, image, name))
        np.testing.assert_allclose(np.sort(found.scores), expected[expected > threshold], atol=1e-5)
        assert found.masks.shape == (len(found.scores), *SIZE)
    result = segmenter.segment(image, frame_index=0)
    assert result.ids.shape == SIZE
    assert {s.category_id for s in result.segments} <= {0, 1}
    assert all(s.score is not None and s.score > threshold for s in result.segments)
    present = set(np.unique(result.ids).tolist()) - {0}
    assert present == {s.id for s in result.segments}  # one id per pixel: no overlap


def test_threshold_above_every_score_finds_nothing(model_dir: Path, image: np.ndarray) -> None:
    options = ModelOptions(model=str(model_dir), prompt=PROMPT, device="cpu", score_threshold=0.99)
    result = build_segmenter("text", options).segment(image, frame_index=0)
    assert result.segments == () and not result.ids.any()


def test_detector_options_are_refused_with_sam3(model_dir: Path) -> None:
    for extra in ({"detector": "me/dino"}, {"box_threshold": 0.2}):
        options = ModelOptions(model=str(model_dir), prompt=PROMPT, device="cpu", **extra)
        with pytest.raises(DevaError, match="not used with a SAM 3 model"):
            build_segmenter("text", options)


def test_score_threshold_is_refused_with_grounded_sam(tmp_path: Path) -> None:
    sam = tiny.tiny_sam(tmp_path / "sam")
    options = ModelOptions(model=str(sam), prompt=PROMPT, device="cpu", score_threshold=0.3)
    with pytest.raises(DevaError, match="--score-threshold is only used with a SAM 3 model"):
        build_segmenter("text", options)


def test_cli_text_mode_with_sam3(model_dir: Path, image: np.ndarray, tmp_path: Path) -> None:
    clip = tmp_path / "clip"
    clip.mkdir()
    for index in range(3):
        Image.fromarray(np.roll(image, 4 * index, axis=1)).save(clip / f"{index:05d}.jpg")
    out = tmp_path / "out"
    args = ["track", clip, "-o", out, "--segmenter", "text", "--model", model_dir, "--prompt"]
    flags = [PROMPT, "--score-threshold", 0.0, "--size", 120, "--no-video", "--device", "cpu"]
    result = CliRunner().invoke(app, [str(a) for a in [*args, *flags]])
    assert result.exit_code == 0, result.output
    frames = json.loads((out / "annotations.json").read_text())["frames"]
    objects = [o for f in frames for o in f["objects"]]
    assert len(frames) == 3 and objects
    for record in objects:
        assert record["category"] == ["person", "dog"][record["category_id"]]
