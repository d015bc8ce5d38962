"""Text-prompted mode (Grounded-SAM, spec §5.2): an open-vocabulary detector finds boxes for the
prompt's class names, SAM turns each box into its best mask.

The prompt "person.dog.ball" is split on "." (no pluralisation); category id = the class's index
in that list, score = the detector's confidence. Masks are painted in descending area order
(smaller wins) and empty ones dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deva.errors import DevaError
from deva.models.loading import LoadedModel
from deva.segmenters.mask_ops import box_nms, resolve_overlaps
from deva.segmenters.sam_prompt import SamPrompter
from deva.types import Segmentation, SegmentInfo


@dataclass(frozen=True)
class Detections:
    """boxes: (N, 4) (x0, y0, x1, y1) frame pixels; scores: (N,); categories: (N,) class index
    into the prompt's names, -1 when no class passed the text threshold."""

    boxes: np.ndarray
    scores: np.ndarray
    categories: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


@dataclass(frozen=True)
class TextSettings:
    """box_threshold / text_threshold: detector confidence to keep a box / to name its class
    (spec DINO_THRESHOLD 0.35 for both); nms_threshold: class-agnostic box NMS IoU (0.8)."""

    box_threshold: float = 0.35
    text_threshold: float = 0.35
    nms_threshold: float = 0.8


def parse_prompt(prompt: str) -> list[str]:
    """ "person.dog. ball" -> ["person", "dog", "ball"]; an empty prompt is an error."""
    names = [part.strip() for part in prompt.split(".") if part.strip()]
    if not names:
        raise DevaError(
            f"the text segmenter needs --prompt with class names separated by '.', got {prompt!r}"
        )
    return names


class TextDetector:
    """Boxes for class names from Grounding DINO or OWL-ViT / OWLv2 (transformers)."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded

    @torch.inference_mode()
    def detect(self, image: np.ndarray, names: list[str], settings: TextSettings) -> Detections:
        if "grounding-dino" in self.loaded.model_type:
            return self._grounding_dino(image, names, settings)
        return self._owl(image, names, settings)

    def _grounding_dino(
        self, image: np.ndarray, names: list[str], settings: TextSettings
    ) -> Detections:
        processor, loaded = self.loaded.processor, self.loaded
        text = " . ".join(name.lower() for name in names) + " ."
        inputs = processor(images=image, text=text, return_tensors="pt").to(loaded.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(loaded.dtype)
        outputs = loaded.model(**inputs)
        token_probs = outputs.logits[0].float().sigmoid()  # (queries, text tokens)
        scores = token_probs.max(dim=1).values
        keep = scores > settings.box_threshold
        if not bool(keep.any()):
            return Detections.empty()
        spans = _class_token_spans(processor.tokenizer, text, names, token_probs.shape[1])
        class_probs = torch.stack(
            [token_probs[keep][:, span].max(dim=1).values for span in spans], dim=1
        )
        best, categories = class_probs.max(dim=1)
        categories[best <= settings.text_threshold] = -1
        height, width = image.shape[:2]
        cx, cy, w, h = outputs.pred_boxes[0][keep].float().unbind(-1)
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
        boxes = boxes * torch.tensor([width, height, width, height], device=boxes.device)
        return Detections(
            _clip(boxes.cpu().numpy(), height, width),
            scores[keep].cpu().numpy(),
            categories.cpu().numpy().astype(np.int64),
        )

    def _owl(self, image: np.ndarray, names: list[str], settings: TextSettings) -> Detections:
        processor, loaded = self.loaded.processor, self.loaded
        inputs = processor(text=[names], images=image, return_tensors="pt").to(loaded.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(loaded.dtype)
        outputs = loaded.model(**inputs)
        height, width = image.shape[:2]
        # OWLv2 pads the image to a square at the bottom/right: boxes are relative to it.
        side = max(height, width) if loaded.model_type == "owlv2" else None
        target = [(side, side)] if side else [(height, width)]
        outputs.logits = outputs.logits.float()
        outputs.pred_boxes = outputs.pred_boxes.float()
        result = processor.post_process_grounded_object_detection(
            outputs, threshold=settings.box_threshold, target_sizes=target
        )[0]
        return Detections(
            _clip(result["boxes"].cpu().numpy(), height, width),
            result["scores"].cpu().numpy(),
            result["labels"].cpu().numpy().astype(np.int64),
        )


class TextPromptSegmenter:
    """Grounded-SAM behind the ``ImageSegmenter`` protocol; ``category_names`` maps the
    category ids it reports to the prompt's class names (for annotations and overlays)."""

    def __init__(
        self,
        detector: TextDetector,
        prompter: SamPrompter,
        prompt: str,
        settings: TextSettings | None = None,
    ) -> None:
        self.detector = detector
        self.prompter = prompter
        self.names = parse_prompt(prompt)
        self.settings = settings or TextSettings()
        self.category_names = dict(enumerate(self.names))

    def segment(
        self, image: np.ndarray, *, frame_index: int, unsegmented: np.ndarray | None = None
    ) -> Segmentation:
        height, width = image.shape[:2]
        found = self.detector.detect(image, self.names, self.settings)
        if len(found.scores) == 0:
            return Segmentation.empty(height, width)
        kept = box_nms(found.boxes, found.scores, self.settings.nms_threshold)
        boxes, scores, categories = found.boxes[kept], found.scores[kept], found.categories[kept]
        embedded = self.prompter.embed(image)
        prediction = self.prompter.predict(embedded, boxes=boxes, multimask=True)
        best = prediction.scores.argmax(dim=1)
        logits = prediction.logits[torch.arange(len(best)), best]
        with torch.inference_mode():
            masks = self.prompter.upsample(embedded, logits).cpu().numpy() > 0.0
        ids, order = resolve_overlaps(masks)
        infos = [
            SegmentInfo(
                id=k + 1,
                category_id=int(categories[i]) if categories[i] >= 0 else None,
                score=float(scores[i]),
            )
            for k, i in enumerate(order)
        ]
        return Segmentation(ids=ids, segments=tuple(infos))


def _class_token_spans(
    tokenizer: object, text: str, names: list[str], num_tokens: int
) -> list[list[int]]:
    """For each class name, the token positions of its characters in ``text``."""
    encoded = tokenizer(text, return_offsets_mapping=True)  # type: ignore[operator]
    offsets = encoded["offset_mapping"]
    spans: list[list[int]] = []
    start = 0
    lowered = text
    for name in names:
        begin = lowered.index(name.lower(), start)
        end = begin + len(name)
        start = end
        span = [
            t
            for t, (a, b) in enumerate(offsets)
            if t < num_tokens and b > a and a >= begin and b <= end
        ]
        spans.append(span or [0])
    return spans


def _clip(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    boxes = boxes.astype(np.float32).reshape(-1, 4)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    return boxes
