"""Exactness against each model family's own transformers pipeline (issue 15, item 5): deva's
pre- and post-processing are compared with the processor's functions on tiny random models
built from the real config classes. Where a processor needs torchvision (not installable here),
its pure-torch functions are imported with a stub standing in for the unused torchvision import,
and pixel preprocessing is compared with transformers' PIL backend configured with the
processor class's published settings (size, resample, mean, std). The deliberate differences
are documented in README.md ("Exactness against the transformers processors") and bounded here.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from deva.models import loading, tiny
from deva.models.pixels import normalisation, square_pixels
from deva.propagation.sam_video import SamVideoPropagator
from deva.segmenters.concepts import TEXT_LENGTH, ConceptSegmenter, ConceptSettings
from deva.segmenters.grounded import TextDetector, TextSettings
from deva.segmenters.panoptic import PanopticSegmenter, frame_sized_logits
from deva.segmenters.sam_prompt import SamPrompter

CPU = torch.device("cpu")
SIZE = (120, 214)  # a DAVIS frame downscaled, not square: exercises resize and padding


@pytest.fixture(scope="module")
def image(davis_root: Path) -> np.ndarray:
    frame = Image.open(davis_root / "JPEGImages" / "480p" / "blackswan" / "00000.jpg")
    return np.asarray(frame.convert("RGB").resize(SIZE[::-1]))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exact")


def load(folder: Path, accepted: dict[str, str], processor: bool = True) -> loading.LoadedModel:
    return loading.load_model(
        folder, accepted=accepted, role="test", device=CPU, with_processor=processor
    )


def import_with_stub_torchvision(module: str) -> types.ModuleType:
    """Import a transformers processor module whose top-level ``from torchvision.ops.boxes import
    batched_nms`` is its only torchvision need for the functions tested (never called here)."""
    importlib.import_module("transformers.image_processing_backends")  # before the stub
    names = ("torchvision", "torchvision.ops", "torchvision.ops.boxes")
    saved = {name: sys.modules.get(name) for name in names}
    stubs = [types.ModuleType(name) for name in names]
    stubs[2].batched_nms = None  # type: ignore[attr-defined]
    stubs[1].boxes = stubs[2]  # type: ignore[attr-defined]
    stubs[0].ops = stubs[1]  # type: ignore[attr-defined]
    sys.modules.update(zip(names, stubs, strict=True))
    try:
        return importlib.import_module(module)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def pil_reference_pixels(processor_class: type, image: np.ndarray, size: int) -> torch.Tensor:
    """The processor class's published preprocessing (square resize with its resample, rescale,
    normalise with its mean / std) run by transformers' PIL backend at ``size``."""
    from transformers.image_processing_backends import PilBackend

    backend = PilBackend(
        size={"height": size, "width": size},
        resample=processor_class.resample,
        do_resize=True,
        do_rescale=True,
        do_normalize=True,
        image_mean=processor_class.image_mean,
        image_std=processor_class.image_std,
    )
    return backend(image, return_tensors="pt")["pixel_values"][0]


def ellipse_logits(height: int, width: int, valid: tuple[int, int] | None = None) -> torch.Tensor:
    """(3, height, width) smooth low-res mask logits (signed distance to three ellipses, about
    ±10), as a trained model gives; zero contrast outside ``valid`` (rows, cols)."""
    rows, cols = valid or (height, width)
    y, x = torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")
    shapes = [(0.5, 0.5, 0.3, 0.2), (0.3, 0.7, 0.12, 0.25), (0.7, 0.25, 0.2, 0.1)]
    out = []
    for cy, cx, ry, rx in shapes:
        d = ((y - cy * rows) / (ry * rows)) ** 2 + ((x - cx * cols) / (rx * cols)) ** 2
        out.append(10.0 * (1.0 - d.sqrt()).clamp(-1, 1))
    return torch.stack(out)


def differ_only_at_edges(mine: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of pixels that differ; asserts each one touches an edge of the reference mask
    (has a 3x3 neighbour of the other value): the two resize paths move a contour by < 1 px."""
    mine, reference = np.asarray(mine, bool), np.asarray(reference, bool)
    lead = [(0, 0)] * (reference.ndim - 2)
    padded = np.pad(reference, [*lead, (1, 1), (1, 1)], mode="edge")
    h, w = reference.shape[-2:]
    windows = [padded[..., i : i + h, j : j + w] for i in range(3) for j in range(3)]
    edge = np.any([win != reference for win in windows], axis=0)
    differ = mine != reference
    assert not np.any(differ & ~edge), "a mask differs away from its contour"
    return float(differ.mean())


# --- pixels: SAM 2, EdgeTAM, SAM 3 (processors need torchvision) -------------------------------


@pytest.mark.parametrize(
    ("model_type", "module", "name"),
    [
        ("sam2", "transformers.models.sam2.image_processing_sam2", "Sam2ImageProcessor"),
        (
            "sam2_video",
            "transformers.models.sam2_video.video_processing_sam2_video",
            "Sam2VideoVideoProcessor",
        ),
        ("edgetam_video", "transformers.models.sam2.image_processing_sam2", "Sam2ImageProcessor"),
        ("sam3", "transformers.models.sam3.image_processing_sam3", "Sam3ImageProcessor"),
        (
            "sam3_tracker_video",
            "transformers.models.sam3.image_processing_sam3",
            "Sam3ImageProcessor",
        ),
    ],
)
@pytest.mark.parametrize("size", [112, 1008])
def test_square_pixels_match_the_processor_settings_within_one_grey_level(
    image: np.ndarray, model_type: str, module: str, name: str, size: int
) -> None:
    """The torchvision processors resize uint8 frames (rounding to whole grey levels) and then
    normalise; deva resizes the float frame: at most one grey level apart, nothing more."""
    processor_class = getattr(import_with_stub_torchvision(module), name)
    mean, std = normalisation(model_type)
    assert (tuple(processor_class.image_mean), tuple(processor_class.image_std)) == (mean, std)
    reference = pil_reference_pixels(processor_class, image, size)
    mine = square_pixels(image, size, mean, std)
    assert mine.shape == reference.shape == (3, size, size)
    grey_levels = (mine - reference).abs() * torch.tensor(std).view(3, 1, 1) * 255.0
    assert float(grey_levels.max()) <= 1.0 + 1e-3
    assert float(grey_levels.mean()) < 0.5


def test_default_input_sizes_match_the_processors() -> None:
    """The model configs deva reads its input size from agree with the processors' defaults."""
    import transformers

    sam2 = import_with_stub_torchvision("transformers.models.sam2.image_processing_sam2")
    sam3 = import_with_stub_torchvision("transformers.models.sam3.image_processing_sam3")
    assert transformers.Sam2VideoConfig().image_size == sam2.Sam2ImageProcessor.size["height"]
    assert transformers.EdgeTamVideoConfig().image_size == sam2.Sam2ImageProcessor.size["height"]
    size = sam3.Sam3ImageProcessor.size["height"]
    assert transformers.Sam3TrackerVideoConfig().image_size == size
    assert transformers.Sam3Config().vision_config.image_size == size


# --- SAM and SAM-HQ (PIL processor used by deva) -----------------------------------------------


@pytest.fixture(scope="module", params=[False, True], ids=["sam", "sam_hq"])
def sam(request: pytest.FixtureRequest, root: Path) -> SamPrompter:
    folder = tiny.tiny_sam(root / f"sam-{request.param}", hq=request.param)
    return SamPrompter(load(folder, loading.SAM_TYPES))


def test_sam_point_prompts_give_the_processor_paths_logits(
    sam: SamPrompter, image: np.ndarray
) -> None:
    """Points scaled by deva == the processor's input_points; same model outputs."""
    points = np.array([[30.0, 40.0], [150.0, 90.0], [200.0, 10.0]], np.float32)
    inputs = sam.processor(
        images=image, input_points=[[[list(p)] for p in points]], return_tensors="pt"
    )
    embedded = sam.embed(image)
    assert embedded.resized == tuple(int(v) for v in inputs["reshaped_input_sizes"][0])
    assert embedded.padded == tuple(inputs["pixel_values"].shape[-2:])
    with torch.inference_mode():
        reference = sam.model(
            pixel_values=inputs["pixel_values"],
            input_points=inputs["input_points"].float(),
            input_labels=torch.ones(1, len(points), 1, dtype=torch.int64),
            multimask_output=True,
        )
    mine = sam.predict(embedded, points=points, multimask=True)
    assert torch.equal(mine.scores, reference.iou_scores[0])
    torch.testing.assert_close(mine.logits, reference.pred_masks[0], atol=2e-3, rtol=0)


def test_sam_upsample_matches_post_process_masks_but_at_contours(
    sam: SamPrompter, image: np.ndarray
) -> None:
    """Deliberate difference: deva resizes the valid low-res region once to the frame; the
    processor resizes to the padded 1024 input, crops, resizes again. Same contours to < 1 px."""
    embedded = sam.embed(image)
    rows = round(embedded.resized[0] * 256 / embedded.padded[0])
    logits = ellipse_logits(256, 256, (rows, 256))
    reference = sam.processor.post_process_masks(
        [logits[None].clone()], [SIZE], [embedded.resized]
    )[0][0]
    mine = sam.upsample(embedded, logits) > 0
    assert reference.shape == mine.shape == (3, *SIZE)
    assert differ_only_at_edges(mine.numpy(), reference.numpy()) < 0.01


# --- SAM 2 image model -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "size", "module", "name"),
    [
        ("sam2", 128, "transformers.models.sam2.image_processing_sam2", "Sam2ImageProcessor"),
        ("sam3", 112, "transformers.models.sam3.image_processing_sam3", "Sam3ImageProcessor"),
    ],
)
def test_square_input_upsample_equals_post_process_masks(
    root: Path, image: np.ndarray, family: str, size: int, module: str, name: str
) -> None:
    """No padding in SAM 2 or the SAM 3 tracker (the automatic mode's SAM 3 model): deva's one
    resize is the processor's one resize, bit for bit."""
    processor = getattr(import_with_stub_torchvision(module), name)
    accepted = {**loading.SAM_TYPES, **loading.SAM3_TRACKER_TYPES}
    folder = tiny.tiny_tracker(root / f"{family}-image", family, image_size=size)
    prompter = SamPrompter(load(folder, accepted))
    embedded = prompter.embed(image)
    points = np.array([[30.0, 40.0], [150.0, 90.0]], np.float32)
    logits = prompter.predict(embedded, points=points).logits
    reference = processor.post_process_masks(None, [logits.clone()], [SIZE], binarize=False)[0]
    mine = prompter.upsample(embedded, logits.flatten(0, 1)).view_as(reference)
    assert torch.equal(mine, reference)


def test_sam2_points_scale_as_the_processor_does(root: Path, image: np.ndarray) -> None:
    from transformers.models.sam2.processing_sam2 import Sam2Processor

    prompter = SamPrompter(
        load(tiny.tiny_tracker(root / "sam2p", "sam2", image_size=128), loading.SAM_TYPES)
    )
    embedded = prompter.embed(image)
    points = torch.tensor([[30.0, 40.0], [150.0, 90.0]])
    reference = Sam2Processor._normalize_coordinates(None, 128, points, SIZE)
    scale = np.array([embedded.resized[1] / SIZE[1], embedded.resized[0] / SIZE[0]], np.float32)
    torch.testing.assert_close(torch.from_numpy(points.numpy() * scale), reference)


# --- SAM 3 concepts ----------------------------------------------------------------------------


def test_sam3_concepts_equal_post_process_instance_segmentation(
    root: Path, image: np.ndarray
) -> None:
    """Scores (query x presence), threshold, mask resize and cut: the processor's own function
    on the same model outputs gives the same instances, bit for bit."""
    module = import_with_stub_torchvision("transformers.models.sam3.image_processing_sam3")
    loaded = load(tiny.tiny_sam3(root / "sam3"), loading.CONCEPT_TYPES)
    threshold = 0.2
    segmenter = ConceptSegmenter(loaded, ["person", "dog"], ConceptSettings(threshold))
    for phrase, name in enumerate(segmenter.names):
        tokens = loaded.processor(
            [name], padding="max_length", max_length=TEXT_LENGTH, return_tensors="pt"
        )
        pixels = square_pixels(image, segmenter.image_size, *normalisation("sam3"))[None]
        with torch.inference_mode():
            outputs = loaded.model(pixel_values=pixels, **tokens)
        reference = module.Sam3ImageProcessor.post_process_instance_segmentation(
            None, outputs, threshold=threshold, mask_threshold=0.5, target_sizes=[SIZE]
        )[0]
        mine = segmenter.instances(image, phrase)
        assert len(mine.scores) > 0
        np.testing.assert_allclose(mine.scores, reference["scores"].numpy(), atol=1e-6, rtol=0)
        assert np.array_equal(mine.masks, reference["masks"].numpy().astype(bool))


def test_sam3_text_tokens_match_the_processor(root: Path) -> None:
    """Sam3Processor pads text to 32 tokens (its text encoder's positions): so does deva."""
    import inspect

    from transformers.models.sam3.processing_sam3 import Sam3Processor

    assert 'padding="max_length", max_length=32' in inspect.getsource(Sam3Processor.__call__)
    assert TEXT_LENGTH == 32


# --- SAM-family video models -------------------------------------------------------------------

VIDEO_BUILDERS = {
    "sam2": lambda folder: tiny.tiny_video(folder, "sam2", image_size=128),
    "edgetam": lambda folder: tiny.tiny_video(folder, "edgetam", image_size=128),
    "sam3": lambda folder: tiny.tiny_video(folder, "sam3", image_size=112),
}


@pytest.fixture(scope="module", params=list(VIDEO_BUILDERS))
def video(request: pytest.FixtureRequest, root: Path) -> SamVideoPropagator:
    folder = VIDEO_BUILDERS[request.param](root / f"video-{request.param}")
    return SamVideoPropagator(load(folder, loading.VIDEO_FAMILIES[request.param], False))


def test_video_mask_prompts_equal_the_processors(
    video: SamVideoPropagator, image: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mask inputs deva puts in the session are what the video processor's
    ``process_new_mask_for_video_frame`` puts there (antialiased resize, cut at 0.5)."""
    from transformers.models.sam2_video.processing_sam2_video import Sam2VideoProcessor

    masks = np.zeros((2, *SIZE), bool)
    masks[0, 20:70, 30:120] = True
    masks[1, 60:110, 140:200] = True
    recorded: dict[int, torch.Tensor] = {}
    session_class = type(video._new_session(image))
    original = session_class.add_mask_inputs

    def record(session: Any, slot: int, frame: int, inputs: torch.Tensor) -> None:
        recorded[slot] = inputs.clone()
        original(session, slot, frame, inputs)

    monkeypatch.setattr(session_class, "add_mask_inputs", record)
    video.memorize(image, masks, [1, 2])
    mine = dict(recorded)
    recorded.clear()
    reference_session = video._new_session(image)
    fake = SimpleNamespace(target_size=video.image_size)
    Sam2VideoProcessor.process_new_mask_for_video_frame(
        fake, reference_session, 0, [1, 2], list(masks)
    )
    assert set(mine) == set(recorded) == {0, 1}
    for slot in mine:
        assert torch.equal(mine[slot], recorded[slot])


def test_video_masks_match_post_process_masks_but_at_contours(video: SamVideoPropagator) -> None:
    """Deliberate difference: deva resizes the low-res logits once to the frame; the video
    processor resizes to the model input, crops nothing (square), resizes again."""
    from transformers.models.sam2_video.video_processing_sam2_video import (
        Sam2VideoVideoProcessor,
    )

    low = video.image_size // 4
    logits = ellipse_logits(low, low)[:, None]
    size = video.image_size
    reference = Sam2VideoVideoProcessor().post_process_masks(
        [logits.clone()], [SIZE], [(size, size)], pad_size={"height": size, "width": size}
    )[0]
    session = SimpleNamespace(obj_id_to_idx=lambda i: i - 1)
    for index in range(len(logits)):
        probs = video._probabilities(logits[index : index + 1], session, [1], SIZE)
        mine = probs.argmax(axis=0) == 1  # one object: its argmax is its probability > 0.5
        assert differ_only_at_edges(mine, reference[index, 0].numpy()) < 0.01


# --- Grounding DINO and OWLv2 ------------------------------------------------------------------


def test_grounding_dino_boxes_and_scores_equal_the_processors(
    root: Path, image: np.ndarray
) -> None:
    """Same boxes (deva clips them to the frame) and scores as
    ``post_process_grounded_object_detection``; deva's category is the prompt class whose
    tokens score highest, one of the classes in the processor's text label."""
    from deva.segmenters.grounded import _clip

    loaded = load(tiny.tiny_grounding_dino(root / "dino"), loading.DETECTOR_TYPES)
    names = ["person", "dog"]
    mine = TextDetector(loaded).detect(image, names, TextSettings(0.2, 0.2))
    inputs = loaded.processor(images=image, text="person . dog .", return_tensors="pt")
    with torch.inference_mode():
        outputs = loaded.model(**inputs)
    reference = loaded.processor.post_process_grounded_object_detection(
        outputs, inputs["input_ids"], threshold=0.2, text_threshold=0.2, target_sizes=[SIZE]
    )[0]
    assert len(mine.scores) > 0
    np.testing.assert_array_equal(mine.scores, reference["scores"].numpy())
    np.testing.assert_array_equal(mine.boxes, _clip(reference["boxes"].numpy(), *SIZE))
    for category, label in zip(mine.categories, reference["text_labels"], strict=True):
        if category >= 0:
            assert names[category] in label


def test_owlv2_boxes_are_relative_to_the_padded_square(root: Path, image: np.ndarray) -> None:
    """OWLv2 pads the frame to a square at the bottom / right: its boxes (cx, cy, w, h in [0, 1]
    of that square) times the square's side are frame pixels. Hand-written reference."""
    loaded = load(tiny.tiny_owlv2(root / "owlv2"), loading.DETECTOR_TYPES)
    names = ["person", "dog"]
    threshold = 0.05
    mine = TextDetector(loaded).detect(image, names, TextSettings(threshold, threshold))
    inputs = loaded.processor(text=[names], images=image, return_tensors="pt")
    with torch.inference_mode():
        outputs = loaded.model(**inputs)
    scores, labels = outputs.logits[0].sigmoid().max(dim=-1)
    keep = scores > threshold
    cx, cy, w, h = outputs.pred_boxes[0][keep].unbind(-1)
    side = max(SIZE)
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * side
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clamp(0, SIZE[1])
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clamp(0, SIZE[0])
    assert len(mine.scores) == int(keep.sum()) > 0
    np.testing.assert_allclose(mine.boxes, boxes.numpy(), atol=1e-3, rtol=0)
    np.testing.assert_allclose(mine.scores, scores[keep].numpy(), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(mine.categories, labels[keep].numpy())


# --- Mask2Former, EoMT, OneFormer --------------------------------------------------------------


def same_partition(mine: np.ndarray, reference: np.ndarray, present: set[int]) -> None:
    """deva's segment ids are the processor's renumbered 1..N (0: no segment)."""
    pairs = {(int(a), int(b)) for a, b in zip(mine.ravel(), reference.ravel(), strict=True)}
    mapping = dict(pairs)
    assert len(mapping) == len(pairs), "one deva id covers two processor segments"
    for deva_id, ref_id in mapping.items():
        assert (deva_id == 0) == (ref_id not in present)


@pytest.mark.parametrize("family", ["mask2former", "eomt"])
def test_panoptic_segments_are_the_processors(root: Path, image: np.ndarray, family: str) -> None:
    builder = {"mask2former": tiny.tiny_mask2former, "eomt": tiny.tiny_eomt}[family]
    loaded = load(builder(root / family), loading.PANOPTIC_TYPES)
    segmenter = PanopticSegmenter(loaded)
    mine = segmenter.segment(image, frame_index=0)
    inputs = loaded.processor(images=image, return_tensors="pt")
    with torch.inference_mode():
        outputs = loaded.model(**inputs)
    stuff = set(segmenter.category_names) - segmenter.thing_ids
    fuse = {"stuff_classes": sorted(stuff)} if family == "eomt" else {"label_ids_to_fuse": stuff}
    reference = loaded.processor.post_process_panoptic_segmentation(
        outputs, threshold=0.5, target_sizes=[SIZE], **fuse
    )[0]
    assert mine.segments
    present = {info["id"] for info in reference["segments_info"]}
    same_partition(mine.ids, reference["segmentation"].numpy(), present)
    labels = {info["id"]: info["label_id"] for info in reference["segments_info"]}
    for info in mine.segments:
        ref_id = int(np.unique(reference["segmentation"].numpy()[mine.ids == info.id])[0])
        assert info.category_id == labels[ref_id]


@pytest.fixture
def torchvision_resize(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """OneFormer's post-processing with target sizes calls torchvision's ``resize`` on float
    probabilities: for tensors that is torch's bilinear interpolation, antialiased."""
    module = importlib.import_module("transformers.models.oneformer.image_processing_pil_oneformer")

    def resize(tensor: torch.Tensor, size: Any, interpolation: Any) -> torch.Tensor:
        return F.interpolate(tensor, size, mode="bilinear", align_corners=False, antialias=True)

    shim = SimpleNamespace(resize=resize, InterpolationMode=SimpleNamespace(BILINEAR="bilinear"))
    monkeypatch.setattr(module, "tvF", shim, raising=False)
    yield


def test_oneformer_segments_equal_the_torchvision_post_processing(
    root: Path, image: np.ndarray, torchvision_resize: None
) -> None:
    """Without torchvision deva resizes OneFormer's probabilities itself; the result equals the
    processor's own post-processing with target sizes (its torchvision resize stood in for)."""
    loaded = load(tiny.tiny_oneformer(root / "oneformer"), loading.PANOPTIC_TYPES)
    segmenter = PanopticSegmenter(loaded)
    mine = segmenter.segment(image, frame_index=0)
    inputs = loaded.processor(images=image, task_inputs=["panoptic"], return_tensors="pt")
    with torch.inference_mode():
        outputs = loaded.model(**inputs)
    stuff = set(segmenter.category_names) - segmenter.thing_ids
    reference = loaded.processor.image_processor.post_process_panoptic_segmentation(
        outputs, threshold=0.5, label_ids_to_fuse=stuff, target_sizes=[SIZE]
    )[0]
    assert mine.segments
    present = {info["id"] for info in reference["segments_info"]}
    same_partition(mine.ids, reference["segmentation"].numpy(), present)


def test_oneformer_soft_masks_resize_as_the_torchvision_post_processing(
    root: Path, torchvision_resize: None
) -> None:
    """Soft (unsaturated) mask logits, where resizing logits instead of probabilities would move
    the contours: deva's frame-sized logits give the processor's segmentation exactly."""
    from transformers.models.oneformer.image_processing_pil_oneformer import (
        OneFormerImageProcessorPil,
    )

    logits = ellipse_logits(30, 54)[None] * 0.3  # +-3: soft probabilities
    classes = torch.full((1, 3, 7), -5.0)
    classes[0, [0, 1, 2], [0, 1, 3]] = 5.0
    post = OneFormerImageProcessorPil().post_process_panoptic_segmentation

    def run(masks: torch.Tensor, sizes: list | None) -> np.ndarray:
        outputs = SimpleNamespace(class_queries_logits=classes, masks_queries_logits=masks)
        return post(outputs, label_ids_to_fuse=set(), target_sizes=sizes)[0]["segmentation"].numpy()

    reference = run(logits, [SIZE])
    mine = run(frame_sized_logits(logits, *SIZE), None)
    assert set(np.unique(reference)) >= {1, 2, 3}
    assert np.array_equal(mine, reference)
    resized_logits = F.interpolate(logits, SIZE, mode="bilinear", align_corners=False)
    assert not np.array_equal(run(resized_logits, None), reference)  # the test can tell
