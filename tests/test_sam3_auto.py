"""``--segmenter auto`` with a SAM 3 model: SAM 3's promptable tracker (``Sam3TrackerModel``,
the SAM 2-class half of facebook/sam3) answers the "segment everything" point grid, prompted
only where nothing is tracked. Tiny random models built from the real config classes; masks
from random weights mean nothing, so plumbing, filters and the prompting rule are checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from deva.cli import app
from deva.models import tiny
from deva.models.builders import build_segmenter
from deva.models.pixels import HALF_MEAN_STD, square_pixels
from deva.segmenters.options import ModelOptions
from deva.segmenters.sam_auto import AutomaticSegmenter

SIZE = (120, 214)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sam3-auto")
    return {
        "tracker": tiny.tiny_tracker(root / "tracker", "sam3", image_size=112),
        "video": tiny.tiny_sam3_video(root / "video", image_size=112),
    }


@pytest.fixture(scope="module")
def image(davis_root: Path) -> np.ndarray:
    frame = Image.open(davis_root / "JPEGImages" / "480p" / "blackswan" / "00000.jpg")
    return np.asarray(frame.convert("RGB").resize(SIZE[::-1]))


def auto(folder: Path, points: int = 8) -> AutomaticSegmenter:
    options = ModelOptions(model=str(folder), device="cpu", points_per_side=points)
    segmenter = build_segmenter("auto", options)
    assert isinstance(segmenter, AutomaticSegmenter)
    return segmenter


def test_sam3_tracker_finds_non_overlapping_masks(folders: dict[str, Path], image) -> None:
    segmenter = auto(folders["tracker"])
    assert segmenter.prompter.loaded.model_type == "sam3_tracker"
    result = segmenter.segment(image, frame_index=0)
    assert segmenter.last_num_points == 64
    assert result.segments and result.shape == SIZE
    present = set(np.unique(result.ids).tolist()) - {0}
    assert present == {s.id for s in result.segments}
    assert all(s.score is not None and s.score > 0.88 for s in result.segments)


def test_sam3_prompts_only_where_nothing_is_tracked(folders: dict[str, Path], image) -> None:
    segmenter = auto(folders["tracker"])
    unsegmented = np.ones(SIZE, bool)
    unsegmented[:, : SIZE[1] // 2] = False  # the left half is tracked
    segmenter.segment(image, frame_index=1, unsegmented=unsegmented)
    assert 24 <= segmenter.last_num_points <= 32
    empty = segmenter.segment(image, frame_index=2, unsegmented=np.zeros(SIZE, bool))
    assert segmenter.last_num_points == 0 and empty.segments == ()


def test_sam3_tracker_is_fed_half_normalised_square_pixels(folders: dict[str, Path], image):
    """The embedding is the model's own on SAM 3's [-1, 1] square input (the processor's)."""
    prompter = auto(folders["tracker"]).prompter
    embedded = prompter.embed(image)
    assert embedded.resized == embedded.padded == (112, 112)
    pixels = square_pixels(image, 112, HALF_MEAN_STD, HALF_MEAN_STD)[None]
    with torch.inference_mode():
        expected = prompter.model.get_image_embeddings(pixels)
    for mine, reference in zip(embedded.features, expected, strict=True):
        assert torch.equal(mine, reference)


def test_facebook_sam3_layout_loads_its_tracker_half(folders: dict[str, Path], image) -> None:
    """facebook/sam3 is a sam3_video folder: auto mode loads its trained tracker (mask decoder,
    prompt encoder; the detector's backbone with the tracker's neck), not a random model."""
    segmenter = auto(folders["video"], points=4)
    loaded = segmenter.prompter.loaded
    assert loaded.model_type == "sam3_video"
    assert type(loaded.model).__name__ == "Sam3TrackerModel"
    check_tracker_weights(loaded.model, folders["video"])
    segmenter.segment(image, frame_index=0)  # runs end to end
    assert segmenter.last_num_points == 16


def test_facebook_sam3_layout_gives_the_sam3_propagator_its_weights(folders) -> None:
    from deva.models.builders import build_propagator

    propagator = build_propagator("sam3", str(folders["video"]), device="cpu")
    assert type(propagator.model).__name__ == "Sam3TrackerVideoModel"
    check_tracker_weights(propagator.model, folders["video"])


def check_tracker_weights(model: torch.nn.Module, folder: Path) -> None:
    """Every parameter of a tracker half equals the SAM 3 video model's own."""
    import transformers

    video = transformers.Sam3VideoModel.from_pretrained(folder)
    sources = {
        "vision_encoder.backbone.": (video.detector_model, "vision_encoder.backbone."),
        "vision_encoder.neck.": (video, "tracker_neck."),
    }
    tracker = dict(video.tracker_model.named_parameters())
    for name, parameter in model.named_parameters():
        for prefix, (owner, renamed) in sources.items():
            if name.startswith(prefix):
                expected = owner.get_parameter(renamed + name.removeprefix(prefix))
                break
        else:
            expected = tracker[name]
        assert torch.equal(parameter, expected), name


def test_wrong_model_for_auto_names_the_sam3_types(tmp_path: Path) -> None:
    from deva.errors import DevaError

    folder = tiny.tiny_sam3(tmp_path / "concepts")  # a Sam3Model (text concepts), not a tracker
    with pytest.raises(DevaError, match="holds a 'sam3' model; expected one of .*sam3_tracker"):
        auto(folder)


def test_cli_auto_with_sam3(folders: dict[str, Path], image, tmp_path: Path) -> None:
    clip = tmp_path / "clip"
    clip.mkdir()
    for index in range(2):
        Image.fromarray(np.roll(image, 4 * index, axis=1)).save(clip / f"{index:05d}.jpg")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["track", str(clip), "-o", str(out), "--segmenter", "auto", "--model",
         str(folders["tracker"]), "--points-per-side", "6", "--no-video"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(list((out / "masks").glob("*.png"))) == 2
    annotations = json.loads((out / "annotations.json").read_text())
    assert annotations
    assert np.asarray(Image.open(sorted((out / "masks").glob("*.png"))[0])).max() > 0
