"""Builds the learned segmenters and the SAM 2 propagator from ``ModelOptions`` (loading through
``hf.load_model``). Imported lazily by ``deva.api``."""

from __future__ import annotations

from deva.device import resolve_device
from deva.propagation.base import Propagator
from deva.segmenters.base import ImageSegmenter
from deva.segmenters.options import DEFAULT_DETECTOR, ModelOptions

DEFAULT_MODELS = {
    "auto": "facebook/sam-vit-huge",  # spec default SAM variant: original ViT-H
    "text": "facebook/sam-vit-huge",
    "panoptic": "facebook/mask2former-swin-large-coco-panoptic",
    "sam2": "facebook/sam2.1-hiera-tiny",
}


def build_segmenter(name: str, options: ModelOptions) -> ImageSegmenter:
    """``auto`` | ``text`` | ``panoptic`` with its model(s) loaded on the chosen device."""
    from deva.segmenters import hf

    device = resolve_device(options.device)
    model = options.model or DEFAULT_MODELS[name]
    if name == "panoptic":
        from deva.segmenters.panoptic import PanopticSegmenter

        loaded = hf.load_model(
            model,
            accepted=hf.PANOPTIC_TYPES,
            role="--model (panoptic)",
            device=device,
            half=options.half,
        )
        return PanopticSegmenter(loaded)
    from deva.segmenters.sam_prompt import SamPrompter

    if name == "text":
        from deva.segmenters.grounded import (
            TextDetector,
            TextPromptSegmenter,
            TextSettings,
            parse_prompt,
        )

        parse_prompt(options.prompt or "")  # an empty prompt fails before any loading
        detector = hf.load_model(
            options.detector or DEFAULT_DETECTOR,
            accepted=hf.DETECTOR_TYPES,
            role="--detector",
            device=device,
            half=options.half,
        )
        sam = hf.load_model(
            model, accepted=hf.SAM_TYPES, role="--model (SAM)", device=device, half=options.half
        )
        threshold = options.box_threshold
        return TextPromptSegmenter(
            TextDetector(detector),
            SamPrompter(sam),
            options.prompt or "",
            TextSettings(box_threshold=threshold, text_threshold=threshold),
        )
    from deva.segmenters.sam_auto import AutomaticSegmenter, AutoSettings

    sam = hf.load_model(
        model, accepted=hf.SAM_TYPES, role="--model (SAM)", device=device, half=options.half
    )
    settings = AutoSettings(
        points_per_side=options.points_per_side,
        points_per_batch=options.points_per_batch,
        pred_iou_threshold=options.pred_iou_threshold,
        suppress_small=options.suppress_small,
    )
    return AutomaticSegmenter(SamPrompter(sam), settings)


def build_sam2_propagator(model: str | None, device: str = "auto", half: bool = True) -> Propagator:
    """The SAM 2 video propagator (hub id or folder of a ``sam2_video`` model)."""
    from deva.propagation.sam2 import Sam2Propagator
    from deva.segmenters import hf

    loaded = hf.load_model(
        model or DEFAULT_MODELS["sam2"],
        accepted=hf.VIDEO_TYPES,
        role="--sam2-model",
        device=resolve_device(device),
        half=half,
        with_processor=False,
    )
    return Sam2Propagator(loaded)
