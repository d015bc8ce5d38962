"""Model input pixels prepared by deva itself, for the families whose transformers processors
need torchvision (SAM 2, EdgeTAM, the SAM 3 tracker and detector)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF_MEAN_STD = (0.5, 0.5, 0.5)
"""SAM 3 normalises to [-1, 1] (transformers' IMAGENET_STANDARD_MEAN / _STD)."""


def square_pixels(
    image: np.ndarray,
    size: int,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, size, size) float32, resized without keeping the aspect ratio
    (antialiased bilinear) and normalised, as the SAM 2 / SAM 3 processors do."""
    tensor = torch.tensor(image).permute(2, 0, 1).float() / 255.0
    resized = F.interpolate(
        tensor[None], (size, size), mode="bilinear", align_corners=False, antialias=True
    )[0]
    return (resized - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


HALF_NORMALISED = {"sam3", "sam3_video", "sam3_tracker", "sam3_tracker_video"}


def normalisation(model_type: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of a SAM-family model type's processor."""
    if model_type in HALF_NORMALISED:
        return HALF_MEAN_STD, HALF_MEAN_STD
    return IMAGENET_MEAN, IMAGENET_STD
