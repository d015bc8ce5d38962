"""SAM-family prompting (SAM, SAM-HQ, SAM 2 and the SAM 3 tracker as image models from
transformers): embed a frame once, then ask for masks from point or box prompts in batches.
Shared by the automatic and the text-prompted segmenters.

SAM 2 and SAM 3 tracker frames are fed without their transformers processors (they need
torchvision): ``square_pixels`` (``deva.models.pixels``) resizes to the model's square input
and normalises (ImageNet; SAM 3: [-1, 1]), as those processors do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deva.models.loading import LoadedModel
from deva.models.pixels import normalisation, square_pixels

SQUARE_FED = {"sam2", "sam3_tracker", "sam3_video"}
"""Model types fed by ``square_pixels`` (no padding: the frame fills the square input)."""


@dataclass(frozen=True)
class Embedded:
    """One frame's image embedding and the geometry to map prompts in and masks out."""

    features: Any  # SAM: tensor; SAM-HQ: (tensor, intermediates); SAM 2: list of tensors
    original: tuple[int, int]  # (H, W) of the frame
    resized: tuple[int, int]  # (h, w) of the frame inside the model input
    padded: tuple[int, int]  # model input size


@dataclass(frozen=True)
class Prediction:
    """Candidate masks for a batch of prompts. logits: (P, M, h, w) low-res mask logits;
    scores: (P, M) predicted IoU; M = 3 with multimask output, else 1."""

    logits: torch.Tensor
    scores: torch.Tensor


class SamPrompter:
    """Point and box prompts for one SAM-family model (see ``loading.SAM_TYPES`` and
    ``loading.SAM3_TRACKER_TYPES``)."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.processor = loaded.processor

    @torch.inference_mode()
    def embed(self, image: np.ndarray) -> Embedded:
        """image: (H, W, 3) uint8 RGB."""
        model_type = self.loaded.model_type
        if model_type in SQUARE_FED:
            size = int(self.model.config.prompt_encoder_config.image_size)
            inputs = {"pixel_values": square_pixels(image, size, *normalisation(model_type))[None]}
        else:
            inputs = self.processor(images=image, return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.loaded.device, self.loaded.dtype)
        height, width = image.shape[:2]
        padded = (int(pixels.shape[-2]), int(pixels.shape[-1]))
        resized = padded
        if "reshaped_input_sizes" in inputs:
            resized = tuple(int(v) for v in inputs["reshaped_input_sizes"][0])
        features = self.model.get_image_embeddings(pixels)
        return Embedded(features, (height, width), resized, padded)

    @torch.inference_mode()
    def predict(
        self,
        embedded: Embedded,
        *,
        points: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
        multimask: bool = True,
    ) -> Prediction:
        """points: (P, 2) (x, y) one positive point per prompt, or boxes: (P, 4) (x0, y0, x1, y1),
        both in frame pixels."""
        scale = np.array(
            [
                embedded.resized[1] / embedded.original[1],
                embedded.resized[0] / embedded.original[0],
            ],
            np.float32,
        )
        kwargs: dict[str, Any] = {"multimask_output": multimask}
        device, dtype = self.loaded.device, self.loaded.dtype
        if points is not None:
            scaled = torch.from_numpy(points.astype(np.float32) * scale)
            kwargs["input_points"] = scaled.view(1, -1, 1, 2).to(device, dtype)
            kwargs["input_labels"] = torch.ones(1, len(points), 1, dtype=torch.int64, device=device)
        if boxes is not None:
            scaled = torch.from_numpy(boxes.astype(np.float32) * np.tile(scale, 2))
            kwargs["input_boxes"] = scaled.view(1, -1, 4).to(device, dtype)
        if self.loaded.model_type == "sam_hq":
            features, intermediate = embedded.features
            output = self.model(
                image_embeddings=features, intermediate_embeddings=intermediate, **kwargs
            )
        else:
            output = self.model(image_embeddings=embedded.features, **kwargs)
        return Prediction(output.pred_masks[0].float(), output.iou_scores[0].float())

    def valid_region(self, embedded: Embedded, logits: torch.Tensor) -> torch.Tensor:
        """(..., h, w) low-res logits cropped to the part that covers the frame (no padding)."""
        rows, cols = self._low_res_extent(embedded, logits)
        return logits[..., : math.ceil(rows), : math.ceil(cols)]

    def upsample(self, embedded: Embedded, logits: torch.Tensor) -> torch.Tensor:
        """(K, h, w) low-res logits -> (K, H, W) logits at the frame's size, padding dropped.

        One bilinear resize of the valid low-res region (the same geometry as resizing to the
        padded model input, cropping, and resizing again, at a fraction of the cost).
        """
        if len(logits) == 0:
            return logits.new_zeros((0, *embedded.original))
        rows, cols = self._low_res_extent(embedded, logits)
        crop = logits[:, : math.ceil(rows), : math.ceil(cols)]
        height, width = embedded.original
        size = (
            max(height, round(crop.shape[-2] * height / rows)),
            max(width, round(crop.shape[-1] * width / cols)),
        )
        full = F.interpolate(crop[:, None], size, mode="bilinear", align_corners=False)
        return full[:, 0, :height, :width]

    @staticmethod
    def _low_res_extent(embedded: Embedded, logits: torch.Tensor) -> tuple[float, float]:
        """Rows and columns (fractional) of the low-res map that cover the resized frame."""
        low_h, low_w = logits.shape[-2:]
        return (
            embedded.resized[0] * low_h / embedded.padded[0],
            embedded.resized[1] * low_w / embedded.padded[1],
        )
