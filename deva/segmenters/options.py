"""Options of the learned image models and the tracker defaults each mode implies.

No transformers import here: the CLI and ``deva.api`` read these without the extra installed.
"""

from __future__ import annotations

from dataclasses import dataclass

LEARNED_SEGMENTERS = ("auto", "text", "panoptic")

MODE_DEFAULTS: dict[str, dict[str, object]] = {
    # spec §5.1 / gradio automatic tab: SAM only looks where nothing is tracked, so objects are
    # kept while still propagated (incremental), at most 200, deleted after 5 misses.
    "auto": {"detect_every": 5, "max_missed": 5, "max_objects": 200, "incremental": True},
    # spec §5.2 / text demo: objects must be re-detected, deleted after 10 misses, no cap.
    "text": {"detect_every": 5, "max_missed": 10, "max_objects": 0, "incremental": False},
}
"""Tracker settings a mode uses unless the user sets them (TrackerConfig field -> value)."""


@dataclass(frozen=True)
class ModelOptions:
    """What the learned segmenters need.

    model: SAM (auto, text; also SAM 3 for text) or panoptic model, as a Hugging Face hub id
        or a local folder.
    detector: open-vocabulary detector for ``text`` (Grounding DINO or OWLv2 id/folder).
    prompt: class names separated by "." for ``text`` (e.g. "person.dog.ball").
    device: "auto" | "cpu" | "cuda"; half precision (float16) is used on CUDA only, if ``half``.
    points_per_side / points_per_batch / pred_iou_threshold / suppress_small: automatic mode
        (spec: 64 / 64 / 0.88 / off). box_threshold: detector confidence for boxes and class
        names (spec DINO_THRESHOLD 0.35). score_threshold: SAM 3 (``--model facebook/sam3`` in
        text mode): keep instances scoring above it (0.5, as SAM 3's examples).
    """

    model: str | None = None
    detector: str | None = None
    prompt: str | None = None
    device: str = "auto"
    half: bool = True
    points_per_side: int = 64
    points_per_batch: int = 64
    pred_iou_threshold: float = 0.88
    suppress_small: bool = False
    box_threshold: float = 0.35
    score_threshold: float = 0.5


MODEL_FLAGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "model": ("--model", LEARNED_SEGMENTERS),
    "detector": ("--detector", ("text",)),
    "prompt": ("--prompt", ("text",)),
    "box_threshold": ("--box-threshold", ("text",)),
    "score_threshold": ("--score-threshold", ("text",)),
    "points_per_side": ("--points-per-side", ("auto",)),
    "points_per_batch": ("--points-per-batch", ("auto",)),
    "pred_iou_threshold": ("--pred-iou-threshold", ("auto",)),
    "suppress_small": ("--suppress-small", ("auto",)),
}
"""ModelOptions field -> its command-line flag and the segmenters that use it."""


def unused_model_option(segmenter: str | None, options: ModelOptions) -> str | None:
    """ "<flag> is only used by <segmenters>" for the first setting of ``options`` changed from
    its default that ``segmenter`` (None: no image segmenter) does not use; None if none."""
    defaults = ModelOptions()
    for name, (flag, users) in MODEL_FLAGS.items():
        if segmenter not in users and getattr(options, name) != getattr(defaults, name):
            which = " / ".join(users) + (" segmenters" if len(users) > 1 else " segmenter")
            also = ""
            if name == "model":
                also = " (or, with none of them, by --propagator sam2 / edgetam / sam3)"
            return f"{flag} is only used by the {which}{also}"
    return None


DEFAULT_DETECTOR = "IDEA-Research/grounding-dino-tiny"
"""Detector used by the text mode when none is given (transformers port of Grounding DINO)."""


def tracker_defaults(segmenter: str | None) -> dict[str, object]:
    """The TrackerConfig fields a segmenter mode changes from the global defaults."""
    return dict(MODE_DEFAULTS.get(segmenter or "", {}))
