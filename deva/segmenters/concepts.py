"""Text-prompted mode with SAM 3 (transformers ``Sam3Model``): one concept per phrase of the
prompt, every instance of it with a mask and a score, no box detector in between.

"person.dog" is split on "." as in the Grounded-SAM mode; each phrase is its own SAM 3 concept
query on the frame's shared image embedding, so category id = the phrase's index. Score = the
query's score times the image-level presence score (as SAM 3's own post-processing); instances
at or below ``score_threshold`` are dropped. Masks are bilinearly resized to the frame, cut at
``mask_threshold`` and made non-overlapping (smaller wins) as the fusion expects.

Pixels are prepared by deva (the SAM 3 image processor needs torchvision): a square resize to
the model's input size, normalised to [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deva.models.loading import LoadedModel
from deva.models.pixels import normalisation, square_pixels
from deva.segmenters.mask_ops import resolve_overlaps
from deva.types import Segmentation, SegmentInfo

TEXT_LENGTH = 32
"""Tokens per phrase, padded (the SAM 3 processor's max_length; its text encoder's positions)."""


@dataclass(frozen=True)
class ConceptSettings:
    """score_threshold: keep instances scoring above it (SAM 3 examples use 0.5);
    mask_threshold: probability cut of the resized masks (the processor's default 0.5)."""

    score_threshold: float = 0.5
    mask_threshold: float = 0.5


@dataclass(frozen=True)
class Instances:
    """One phrase's instances: masks (N, H, W) bool at the frame's size, scores (N,)."""

    masks: np.ndarray
    scores: np.ndarray


class ConceptSegmenter:
    """SAM 3 concepts behind the ``ImageSegmenter`` protocol.

    loaded: a ``sam3`` / ``sam3_video`` model whose ``processor`` is its tokenizer.
    ``category_names`` maps the category ids it reports to the prompt's phrases.
    """

    def __init__(
        self, loaded: LoadedModel, names: list[str], settings: ConceptSettings | None = None
    ) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.names = list(names)
        self.settings = settings or ConceptSettings()
        self.category_names = dict(enumerate(self.names))
        self.image_size = int(self.model.config.vision_config.image_size)
        self.mean, self.std = normalisation(loaded.model_type)
        self._text: list[tuple[Any, torch.Tensor]] | None = None

    @torch.inference_mode()
    def segment(
        self, image: np.ndarray, *, frame_index: int, unsegmented: np.ndarray | None = None
    ) -> Segmentation:
        height, width = image.shape[:2]
        vision = self._vision(image)
        found = [self._instances(vision, p, (height, width)) for p in range(len(self.names))]
        masks = [f.masks for f in found if len(f.scores)]
        if not masks:
            return Segmentation.empty(height, width)
        scores = np.concatenate([f.scores for f in found])
        categories = np.concatenate([np.full(len(f.scores), i) for i, f in enumerate(found)])
        ids, order = resolve_overlaps(np.concatenate(masks))
        infos = tuple(
            SegmentInfo(id=k + 1, category_id=int(categories[i]), score=float(scores[i]))
            for k, i in enumerate(order)
        )
        return Segmentation(ids=ids, segments=infos)

    @torch.inference_mode()
    def instances(self, image: np.ndarray, phrase: int) -> Instances:
        """The instances of the prompt's phrase number ``phrase`` in ``image``."""
        return self._instances(self._vision(image), phrase, image.shape[:2])

    def _instances(self, vision: Any, phrase: int, shape: tuple[int, ...]) -> Instances:
        embeds, mask = self._texts()[phrase]
        output = self.model(vision_embeds=vision, text_embeds=embeds, attention_mask=mask)
        scores = output.pred_logits[0].float().sigmoid()
        if output.presence_logits is not None:
            scores = scores * output.presence_logits[0].float().sigmoid()
        keep = scores > self.settings.score_threshold
        if not bool(keep.any()):
            return Instances(np.zeros((0, *shape), bool), np.zeros(0, np.float32))
        logits = output.pred_masks[0][keep].float()
        probs = F.interpolate(
            logits.sigmoid()[None], tuple(shape), mode="bilinear", align_corners=False
        )[0]
        masks = (probs > self.settings.mask_threshold).cpu().numpy()
        return Instances(masks, scores[keep].cpu().numpy().astype(np.float32))

    def _vision(self, image: np.ndarray) -> Any:
        """The frame's image embedding, shared by all phrases."""
        pixels = square_pixels(image, self.image_size, self.mean, self.std)[None]
        return self.model.get_vision_features(
            pixel_values=pixels.to(self.loaded.device, self.loaded.dtype)
        )

    def _texts(self) -> list[tuple[Any, torch.Tensor]]:
        """Each phrase's text embedding and token mask (computed once: the prompt is fixed)."""
        if self._text is None:
            tokenizer, device = self.loaded.processor, self.loaded.device
            self._text = []
            for name in self.names:
                tokens = tokenizer(
                    [name], padding="max_length", max_length=TEXT_LENGTH, return_tensors="pt"
                ).to(device)
                mask = tokens["attention_mask"]
                embeds = self.model.get_text_features(
                    input_ids=tokens["input_ids"], attention_mask=mask
                )
                self._text.append((embeds, mask))
        return self._text
