"""Builds the learned segmenters and the SAM-family propagators from options (loading through
``loading.load_model``). Imported lazily by ``deva.api``; the one place that imports both
``deva.segmenters`` and ``deva.propagation`` model code."""

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
    "edgetam": "yonigozlan/EdgeTAM-hf",  # the transformers port of facebook/EdgeTAM
    "sam3": "facebook/sam3",  # gated: Meta's SAM licence must be accepted on the hub
}


def build_segmenter(name: str, options: ModelOptions) -> ImageSegmenter:
    """``auto`` | ``text`` | ``panoptic`` with its model(s) loaded on the chosen device."""
    from deva.models import loading

    device = resolve_device(options.device)
    model = options.model or DEFAULT_MODELS[name]
    if name == "panoptic":
        from deva.segmenters.panoptic import PanopticSegmenter

        loaded = loading.load_model(
            model,
            accepted=loading.PANOPTIC_TYPES,
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
        detector = loading.load_model(
            options.detector or DEFAULT_DETECTOR,
            accepted=loading.DETECTOR_TYPES,
            role="--detector",
            device=device,
            half=options.half,
        )
        sam = loading.load_model(
            model,
            accepted=loading.SAM_TYPES,
            role="--model (SAM)",
            device=device,
            half=options.half,
        )
        threshold = options.box_threshold
        return TextPromptSegmenter(
            TextDetector(detector),
            SamPrompter(sam),
            options.prompt or "",
            TextSettings(box_threshold=threshold, text_threshold=threshold),
        )
    from deva.segmenters.sam_auto import AutomaticSegmenter, AutoSettings

    sam = loading.load_model(
        model, accepted=loading.SAM_TYPES, role="--model (SAM)", device=device, half=options.half
    )
    settings = AutoSettings(
        points_per_side=options.points_per_side,
        points_per_batch=options.points_per_batch,
        pred_iou_threshold=options.pred_iou_threshold,
        suppress_small=options.suppress_small,
    )
    return AutomaticSegmenter(SamPrompter(sam), settings)


def build_propagator(
    family: str, model: str | None, device: str = "auto", half: bool = True
) -> Propagator:
    """A SAM-family video propagator (``sam2`` | ``edgetam`` | ``sam3``, see
    ``loading.VIDEO_FAMILIES``) from a hub id or folder; None: the family's default model."""
    from deva.models import loading
    from deva.propagation.sam_video import SamVideoPropagator

    loaded = loading.load_model(
        model or DEFAULT_MODELS[family],
        accepted=loading.VIDEO_FAMILIES[family],
        role=f"--propagator-model ({family})",
        device=resolve_device(device),
        half=half,
        with_processor=False,
    )
    return SamVideoPropagator(loaded)
