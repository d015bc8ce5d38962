"""The other learned model families (OWLv2 detector, OneFormer and EoMT panoptic, SAM 2 image
model), each a tiny random model saved with its processor and loaded by the real path
(``from_pretrained(folder)``), on a shared DAVIS frame and through one CLI run per family.
Random weights: plumbing, shapes, categories and outputs are checked, not mask quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from deva.cli import app
from deva.models import tiny
from deva.models.builders import build_segmenter
from deva.segmenters.grounded import TextPromptSegmenter, TextSettings
from deva.segmenters.options import ModelOptions
from deva.segmenters.panoptic import PanopticSegmenter
from deva.segmenters.sam_auto import AutomaticSegmenter
from deva.types import Segmentation

SIZE = (120, 214)  # DAVIS frames downscaled
LABELS = tiny.PANOPTIC_LABELS
THINGS = set(tiny.PANOPTIC_THINGS)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {
        "sam": tiny.tiny_sam(root / "sam"),
        "owlv2": tiny.tiny_owlv2(root / "owlv2"),
        "oneformer": tiny.tiny_oneformer(root / "oneformer"),
        "eomt": tiny.tiny_eomt(root / "eomt"),
        "sam2": tiny.tiny_tracker(root / "sam2", "sam2", image_size=128),
    }


@pytest.fixture(scope="module")
def clip(davis_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three blackswan frames at 214x120 in a folder."""
    folder = tmp_path_factory.mktemp("clip")
    for index in range(3):
        name = f"{index:05d}.jpg"
        image = Image.open(davis_root / "JPEGImages" / "480p" / "blackswan" / name)
        image.resize(SIZE[::-1]).save(folder / name)
    return folder


def frame(clip: Path) -> np.ndarray:
    return np.asarray(Image.open(clip / "00000.jpg").convert("RGB"))


def check(segmentation: Segmentation) -> None:
    assert segmentation.shape == SIZE
    present = set(np.unique(segmentation.ids).tolist()) - {0}
    assert present == {s.id for s in segmentation.segments}
    assert [s.id for s in segmentation.segments] == list(range(1, len(present) + 1))


def test_owlv2_detects_prompt_classes_for_sam(models, clip):
    options = ModelOptions(
        model=str(models["sam"]),
        detector=str(models["owlv2"]),
        prompt="swan. bird",
        box_threshold=0.0,
        device="cpu",
    )
    segmenter = build_segmenter("text", options)
    assert isinstance(segmenter, TextPromptSegmenter)
    assert segmenter.detector.loaded.model_type == "owlv2"
    image = frame(clip)
    found = segmenter.detector.detect(image, segmenter.names, segmenter.settings)
    assert len(found.scores) > 0
    assert (found.boxes[:, [0, 2]] <= SIZE[1]).all() and (found.boxes[:, [1, 3]] <= SIZE[0]).all()
    assert (found.boxes >= 0).all() and set(found.categories.tolist()) <= {0, 1}
    result = segmenter.segment(image, frame_index=0)
    check(result)
    assert result.segments
    assert {s.category_id for s in result.segments} <= {0, 1}
    assert all(0.0 <= s.score <= 1.0 for s in result.segments)
    segmenter.settings = TextSettings(box_threshold=1.0, text_threshold=1.0)
    assert segmenter.segment(image, frame_index=0).segments == ()


@pytest.mark.parametrize("family", ["oneformer", "eomt"])
def test_panoptic_family_segments_with_categories(models, clip, family):
    segmenter = build_segmenter("panoptic", ModelOptions(model=str(models[family]), device="cpu"))
    assert isinstance(segmenter, PanopticSegmenter)
    assert segmenter.loaded.model_type == family
    # OneFormer's things come from its processor's class-info file, EoMT's from its config
    assert segmenter.thing_ids == THINGS
    assert segmenter.category_names == dict(enumerate(LABELS))
    result = segmenter.segment(frame(clip), frame_index=0)
    check(result)
    assert result.segments  # default thresholds: the saturated tiny model keeps a segment
    for info in result.segments:
        assert 0 <= info.category_id < len(LABELS)
        assert info.is_thing == (info.category_id in THINGS)
        assert 0.5 < info.score <= 1.0


def test_sam2_image_model_automatic_masks(models, clip):
    options = ModelOptions(model=str(models["sam2"]), points_per_side=4, device="cpu")
    segmenter = build_segmenter("auto", options)
    assert isinstance(segmenter, AutomaticSegmenter)
    loaded = segmenter.prompter.loaded
    assert loaded.model_type == "sam2" and loaded.processor is None  # fed by deva itself
    image = frame(clip)
    result = segmenter.segment(image, frame_index=0)
    check(result)
    assert result.segments
    assert all(s.score > 0.88 and s.category_id is None for s in result.segments)
    unsegmented = np.zeros(SIZE, bool)
    unsegmented[:, : SIZE[1] // 2] = True  # only the left half is free
    segmenter.segment(image, frame_index=0, unsegmented=unsegmented)
    assert segmenter.last_num_points == 8


def annotations(folder: Path) -> list[dict]:
    return json.loads((folder / "annotations.json").read_text())["frames"]


@pytest.mark.parametrize(
    ("family", "flags"),
    [
        ("owlv2", ["--segmenter", "text", "--prompt", "swan.bird", "--box-threshold", 0.0]),
        ("oneformer", ["--segmenter", "panoptic"]),
        ("eomt", ["--segmenter", "panoptic"]),
        ("sam2", ["--segmenter", "auto", "--points-per-side", 4]),
    ],
)
def test_cli_run_per_family_writes_outputs(models, clip, tmp_path, family, flags):
    out = tmp_path / family
    model = ["--detector", models["owlv2"], "--model", models["sam"]]
    if family != "owlv2":
        model = ["--model", models[family]]
    args = ["track", clip, "-o", out, *model, *flags, "--mode", "online", "--size", 120]
    result = CliRunner().invoke(app, [str(a) for a in [*args, "--no-video", "--device", "cpu"]])
    assert result.exit_code == 0, result.output
    frames = annotations(out)
    assert len(frames) == 3 and len(list((out / "masks").glob("*.png"))) == 3
    assert np.asarray(Image.open(out / "masks" / "00000.png")).shape == SIZE
    objects = [o for f in frames for o in f["objects"]]
    assert objects
    names = {"owlv2": ["swan", "bird"], "sam2": []}.get(family, list(LABELS))
    for record in objects:
        if names:
            assert record["category"] == names[record["category_id"]]
        else:
            assert record["category_id"] is None and "category" not in record
