"""Learned image models through transformers, with tiny random models saved to folders and
loaded by the real path (``from_pretrained(folder)``). Random weights: the tests check the
plumbing (shapes, ids, categories, filters, prompting rule, outputs, errors), not mask quality.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from deva.cli import app
from deva.config import TrackerConfig
from deva.errors import DevaError
from deva.io.masks import read_id_png
from deva.models import loading, tiny
from deva.models.builders import build_segmenter
from deva.propagation.flow import FlowPropagator
from deva.segmenters.base import ImageSegmenter
from deva.segmenters.grounded import TextDetector, TextPromptSegmenter, TextSettings
from deva.segmenters.options import ModelOptions
from deva.segmenters.panoptic import PanopticSegmenter, PanopticSettings
from deva.segmenters.sam_auto import AutomaticSegmenter, AutoSettings
from deva.segmenters.sam_prompt import SamPrompter
from deva.tracker import Tracker
from deva.types import Segmentation, SegmentInfo

CPU = torch.device("cpu")
SIZE = (120, 214)  # DAVIS frames downscaled: the segmenters see "native" frames of this size


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "sam": tiny.tiny_sam(root / "sam"),
        "dino": tiny.tiny_grounding_dino(root / "dino"),
        "mask2former": tiny.tiny_mask2former(root / "mask2former"),
    }


@pytest.fixture(scope="module")
def clip(davis_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four blackswan frames at 214x120 in a folder."""
    folder = tmp_path_factory.mktemp("clip")
    for index in range(4):
        name = f"{index:05d}.jpg"
        image = Image.open(davis_root / "JPEGImages" / "480p" / "blackswan" / name)
        image.resize(SIZE[::-1]).save(folder / name)
    return folder


def frame(clip: Path, index: int = 0) -> np.ndarray:
    return np.asarray(Image.open(clip / f"{index:05d}.jpg").convert("RGB"))


def sam(models: dict[str, Path]) -> SamPrompter:
    return SamPrompter(
        loading.load_model(models["sam"], accepted=loading.SAM_TYPES, role="t", device=CPU)
    )


def check(segmentation: Segmentation) -> None:
    assert segmentation.shape == SIZE
    present = set(np.unique(segmentation.ids).tolist()) - {0}
    assert present == {s.id for s in segmentation.segments}
    assert [s.id for s in segmentation.segments] == list(range(1, len(present) + 1))


def test_automatic_masks_pass_the_filters_and_do_not_overlap(models, clip):
    segmenter = AutomaticSegmenter(sam(models), AutoSettings(points_per_side=4))
    assert isinstance(segmenter, ImageSegmenter)
    result = segmenter.segment(frame(clip), frame_index=0)
    check(result)
    assert len(result.segments) >= 1
    assert all(s.score > 0.88 and s.category_id is None for s in result.segments)
    strict = AutomaticSegmenter(sam(models), AutoSettings(points_per_side=4, pred_iou_threshold=9))
    assert strict.segment(frame(clip), frame_index=0).segments == ()


def test_sam_hq_runs_the_same_path(clip, tmp_path):
    folder = tiny.tiny_sam(tmp_path / "hq", hq=True)
    loaded = loading.load_model(folder, accepted=loading.SAM_TYPES, role="t", device=CPU)
    assert loaded.model_type == "sam_hq"
    result = AutomaticSegmenter(SamPrompter(loaded), AutoSettings(points_per_side=4)).segment(
        frame(clip), frame_index=0
    )
    check(result)
    assert result.segments


def test_prompts_only_where_nothing_is_tracked(models, clip):
    segmenter = AutomaticSegmenter(sam(models), AutoSettings(points_per_side=8))
    image = frame(clip)
    segmenter.segment(image, frame_index=0)
    assert segmenter.last_num_points == 64
    unsegmented = np.ones(SIZE, bool)
    unsegmented[:, : SIZE[1] // 2] = False  # the left half is tracked
    segmenter.segment(image, frame_index=0, unsegmented=unsegmented)
    assert 24 <= segmenter.last_num_points <= 32
    empty = segmenter.segment(image, frame_index=0, unsegmented=np.zeros(SIZE, bool))
    assert segmenter.last_num_points == 0 and empty.segments == ()


def test_tracker_prompts_fewer_points_once_objects_are_tracked(models, clip):
    segmenter = AutomaticSegmenter(sam(models), AutoSettings(points_per_side=6))
    counts: list[int] = []

    class Recording:
        category_names: dict[int, str] = {}

        def segment(self, image, *, frame_index, unsegmented=None):
            result = segmenter.segment(image, frame_index=frame_index, unsegmented=unsegmented)
            counts.append(segmenter.last_num_points)
            return result

    config = TrackerConfig(
        mode="online", detect_every=2, size=-1, max_objects=200, incremental=True
    )
    from deva.io.frames import open_frames

    results = list(Tracker(Recording(), FlowPropagator(), config).run(open_frames(clip)))
    assert len(results) == 4
    assert counts[0] == 36  # nothing tracked yet: the full grid
    assert results[0].objects  # something was found and is tracked
    assert counts[1] < 36  # frame 2: points on tracked pixels are no longer prompted


def test_tracker_covering_half_the_frame_halves_the_prompts(models, clip):
    # Frame 0: a stand-in detector gives one object over the left half; the tracker keeps it
    # (flow). Frame 2: SAM runs through the tracker and may prompt only the untracked right half.
    segmenter = AutomaticSegmenter(sam(models), AutoSettings(points_per_side=8))
    counts: list[int] = []

    class LeftHalfThenSam:
        category_names: dict[int, str] = {}

        def segment(self, image, *, frame_index, unsegmented=None):
            if frame_index == 0:
                ids = np.zeros(image.shape[:2], np.int32)
                ids[:, : image.shape[1] // 2] = 1
                return Segmentation(ids, (SegmentInfo(1),))
            result = segmenter.segment(image, frame_index=frame_index, unsegmented=unsegmented)
            counts.append(segmenter.last_num_points)
            return result

    config = TrackerConfig(mode="online", detect_every=2, size=-1, incremental=True)
    from deva.io.frames import open_frames

    results = list(Tracker(LeftHalfThenSam(), FlowPropagator(), config).run(open_frames(clip)))
    assert len(results) == 4 and len(counts) == 1
    tracked = results[1].ids > 0
    assert 0.4 < tracked.mean() < 0.6  # the left half is still tracked after frame 0
    assert 24 <= counts[0] <= 36  # of the 64 grid points, about the right half's 32


def test_text_prompt_categories_and_scores(models, clip):
    detector = TextDetector(
        loading.load_model(models["dino"], accepted=loading.DETECTOR_TYPES, role="t", device=CPU)
    )
    segmenter = TextPromptSegmenter(
        detector, sam(models), "swan. bird", TextSettings(box_threshold=0.0, text_threshold=0.0)
    )
    assert segmenter.category_names == {0: "swan", 1: "bird"}
    result = segmenter.segment(frame(clip), frame_index=0)
    check(result)
    assert result.segments
    assert {s.category_id for s in result.segments} <= {0, 1}
    assert all(0.0 <= s.score <= 1.0 for s in result.segments)
    strict = TextPromptSegmenter(detector, sam(models), "swan", TextSettings(box_threshold=1.0))
    assert strict.segment(frame(clip), frame_index=0).segments == ()


def test_panoptic_categories_things_and_scores(models, clip):
    loaded = loading.load_model(
        models["mask2former"], accepted=loading.PANOPTIC_TYPES, role="t", device=CPU
    )
    # random masks overlap a lot: no overlap check, so segments survive
    segmenter = PanopticSegmenter(loaded, PanopticSettings(overlap_threshold=0.0))
    assert segmenter.thing_ids == {0, 1, 2}
    assert segmenter.category_names[3] == "sky"
    result = segmenter.segment(frame(clip), frame_index=0)
    check(result)
    assert result.segments
    for info in result.segments:
        assert 0 <= info.category_id < 6
        assert info.is_thing == (info.category_id < 3)
        assert 0.5 <= info.score <= 1.0


def run_cli(*args: str):
    return CliRunner().invoke(app, ["track", *[str(a) for a in args]])


def annotations(folder: Path) -> list[dict]:
    return json.loads((folder / "annotations.json").read_text())["frames"]


def test_cli_auto_writes_outputs(models, clip, tmp_path):
    out = tmp_path / "auto"
    result = run_cli(
        clip, "-o", out, "--segmenter", "auto", "--model", models["sam"], "--points-per-side", 4,
        "--mode", "online", "--size", 120, "--no-video",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    frames = annotations(out)
    assert len(frames) == 4 and len(list((out / "masks").glob("*.png"))) == 4
    assert frames[0]["objects"]
    mask = np.asarray(Image.open(out / "masks" / "00000.png"))
    assert mask.shape == SIZE


def test_cli_text_names_categories(models, clip, tmp_path):
    out = tmp_path / "text"
    result = run_cli(
        clip, "-o", out, "--segmenter", "text", "--prompt", "swan.bird", "--model",
        models["sam"], "--detector", models["dino"], "--box-threshold", 0.0, "--mode", "online",
        "--size", 120,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    objects = [o for f in annotations(out) for o in f["objects"]]
    assert objects
    assert {o["category"] for o in objects} <= {"swan", "bird"}
    assert all(o["category"] == ["swan", "bird"][o["category_id"]] for o in objects)
    assert (out / "overlay.mp4").stat().st_size > 0


def test_cli_panoptic_writes_segments_and_categories(models, clip, tmp_path):
    out = tmp_path / "panoptic"
    result = run_cli(
        clip, "-o", out, "--segmenter", "panoptic", "--model", models["mask2former"],
        "--size", 120, "--no-video",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    frames = annotations(out)
    assert len(frames) == 4
    objects = [o for f in frames for o in f["objects"]]
    assert objects  # default overlap check: the saturated tiny model keeps a segment
    labels = tiny.PANOPTIC_LABELS
    assert all(o["category"] == labels[o["category_id"]] for o in objects)
    mask = read_id_png(out / "masks" / "00000.png")
    assert {o["id"] for o in frames[0]["objects"]} == set(np.unique(mask).tolist()) - {0}


def test_mode_defaults_apply_unless_set(monkeypatch, clip, tmp_path):
    seen: list[TrackerConfig] = []
    original = Tracker.__init__

    def spy(self, segmenter, propagator, config=None):
        seen.append(config)
        original(self, segmenter, propagator, config)

    monkeypatch.setattr(Tracker, "__init__", spy)
    monkeypatch.setattr(
        "deva.api.make_segmenter", lambda *a, **k: _Nothing()
    )  # no model needed: only the config matters here
    run_cli(clip, "-o", tmp_path / "a", "--segmenter", "auto", "--no-video")
    run_cli(clip, "-o", tmp_path / "b", "--segmenter", "auto", "--max-objects", 7, "--no-video")
    run_cli(clip, "-o", tmp_path / "c", "--segmenter", "text", "--no-video")
    run_cli(clip, "-o", tmp_path / "d", "--no-video")
    auto, capped, text, motion = seen
    assert (auto.max_objects, auto.incremental, auto.max_missed) == (200, True, 5)
    assert (capped.max_objects, capped.incremental) == (7, True)
    assert (text.max_missed, text.max_objects, text.incremental) == (10, 0, False)
    assert (motion.max_objects, motion.incremental) == (0, False)


class _Nothing:
    def segment(self, image, *, frame_index, unsegmented=None):
        return Segmentation.empty(*image.shape[:2])


def test_error_empty_prompt(models):
    with pytest.raises(DevaError, match="--prompt"):
        build_segmenter("text", ModelOptions(model=str(models["sam"]), prompt=" . "))


def test_error_wrong_model_type(models):
    with pytest.raises(DevaError, match="holds a 'mask2former' model; expected one of sam"):
        build_segmenter("auto", ModelOptions(model=str(models["mask2former"])))


def test_error_missing_folder_and_offline_hub_id(tmp_path, monkeypatch):
    with pytest.raises(DevaError, match="does not exist"):
        build_segmenter("auto", ModelOptions(model=str(tmp_path / "missing")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(DevaError, match="'nobody/no-such-sam' is offline .* local folder"):
        build_segmenter("auto", ModelOptions(model="nobody/no-such-sam"))


def test_error_extra_missing_is_one_line(monkeypatch, clip, tmp_path):
    real = importlib.import_module

    def without_transformers(name, *args, **kwargs):
        if name == "transformers":
            raise ImportError("No module named 'transformers'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", without_transformers)
    result = run_cli(clip, "-o", tmp_path / "x", "--segmenter", "auto", "--model", "x/y")
    assert result.exit_code == 2
    assert 'pip install "deva-track[models]"' in result.output
    assert "Traceback" not in result.output


def test_prompt_only_for_text(models, clip, tmp_path):
    result = run_cli(clip, "-o", tmp_path / "p", "--segmenter", "auto", "--prompt", "cat")
    assert result.exit_code == 2 and "--prompt is only used by the text" in result.output


@pytest.mark.parametrize(
    ("option", "segmenter", "users"),
    [
        (["--model", "x/y"], [], "auto / text / panoptic segmenters"),
        (["--detector", "x/y"], ["--segmenter", "auto"], "text segmenter"),
        (["--box-threshold", 0.2], ["--segmenter", "panoptic"], "text segmenter"),
        (["--points-per-side", 8], ["--segmenter", "text"], "auto segmenter"),
        (["--points-per-batch", 8], ["--segmenter", "panoptic"], "auto segmenter"),
        (["--pred-iou-threshold", 0.5], ["--segmenter", "motion"], "auto segmenter"),
        (["--suppress-small"], ["--segmenter", "text"], "auto segmenter"),
    ],
)
def test_model_option_nothing_uses_is_an_error(option, segmenter, users, clip, tmp_path):
    result = run_cli(clip, "-o", tmp_path / "x", *segmenter, *option)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"{option[0]} is only used by the {users}" in lines[0]
    assert not (tmp_path / "x").exists()  # refused before any model was loaded


def test_model_option_with_given_masks_alone(clip, tmp_path):
    given = tmp_path / "given"
    given.mkdir()
    Image.new("P", SIZE[::-1]).save(given / "00000.png")
    result = run_cli(clip, "-o", tmp_path / "x", "--init-masks", given, "--points-per-side", 8)
    assert result.exit_code == 2
    assert "--points-per-side is only used by the auto segmenter" in result.output
    assert "--init-masks alone" in result.output


@pytest.fixture
def built(monkeypatch) -> dict[str, object]:
    """Records what the learned builders get; the segmenter finds nothing, SAM 2 is flow."""
    from deva.models import builders

    seen: dict[str, object] = {}

    def segmenter(name: str, options: ModelOptions) -> ImageSegmenter:
        seen["segmenter"] = (name, options.model)
        return _Nothing()

    def video(
        family: str, model: str | None, device: str = "auto", half: bool = True
    ) -> FlowPropagator:
        seen[family] = model
        return FlowPropagator()

    monkeypatch.setattr(builders, "build_segmenter", segmenter)
    monkeypatch.setattr(builders, "build_propagator", video)
    return seen


def test_model_names_the_sam2_video_model_without_a_learned_segmenter(built, clip, tmp_path):
    out = tmp_path / "sam2"
    args = ["--propagator", "sam2", "--model", "me/sam2-video", "--size", 120, "--no-video"]
    result = run_cli(clip, "-o", out, *args)
    assert result.exit_code == 0, result.output
    assert built == {"sam2": "me/sam2-video"}
    assert len(annotations(out)) == 4


def test_model_goes_to_the_learned_segmenter_and_sam2_model_to_sam2(built, clip, tmp_path):
    args = ["--segmenter", "auto", "--propagator", "sam2", "--model", "me/sam", "--no-video"]
    result = run_cli(clip, "-o", tmp_path / "a", *args, "--sam2-model", "me/sam2-video")
    assert result.exit_code == 0, result.output
    assert built == {"segmenter": ("auto", "me/sam"), "sam2": "me/sam2-video"}
    built.clear()
    result = run_cli(clip, "-o", tmp_path / "b", *args)  # SAM 2 takes its default
    assert result.exit_code == 0, result.output
    assert built == {"segmenter": ("auto", "me/sam"), "sam2": None}


@pytest.mark.parametrize("family", ["edgetam", "sam3"])
def test_propagator_model_names_the_other_sam_families(built, clip, tmp_path, family):
    args = ["--propagator", family, "--size", 120, "--no-video"]
    result = run_cli(clip, "-o", tmp_path / "a", *args, "--propagator-model", "me/video")
    assert result.exit_code == 0, result.output
    assert built == {family: "me/video"}
    built.clear()
    result = run_cli(clip, "-o", tmp_path / "b", *args, "--model", "me/other")
    assert result.exit_code == 0, result.output
    assert built == {family: "me/other"}


def test_propagator_model_without_a_sam_family_propagator(built, clip, tmp_path):
    result = run_cli(clip, "-o", tmp_path / "x", "--propagator-model", "me/video")
    assert result.exit_code == 2
    assert "--propagator-model (--sam2-model) is only used by the sam2" in result.output
    assert built == {}


def test_model_and_sam2_model_both_for_sam2(built, clip, tmp_path):
    args = ["--propagator", "sam2", "--model", "a/b", "--sam2-model", "c/d"]
    result = run_cli(clip, "-o", tmp_path / "x", *args)
    assert result.exit_code == 2 and "give one of them" in result.output
    assert built == {}


def test_api_model_names_the_sam2_video_model(built, clip):
    import deva

    results = list(deva.track(clip, propagator="sam2", models=ModelOptions(model="me/sam2-video")))
    assert len(results) == 4 and built == {"sam2": "me/sam2-video"}
    with pytest.raises(DevaError, match="--points-per-side is only used by the auto segmenter"):
        deva.track(clip, segmenter="text", models=ModelOptions(prompt="a", points_per_side=8))
