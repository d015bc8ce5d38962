"""Builds the learned segmenters and the SAM-family propagators from options (loading through
``loading.load_model``). Imported lazily by ``deva.api``; the one place that imports both
``deva.segmenters`` and ``deva.propagation`` model code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deva.device import resolve_device
from deva.errors import DevaError
from deva.propagation.base import Propagator
from deva.segmenters.base import ImageSegmenter
from deva.segmenters.options import DEFAULT_DETECTOR, ModelOptions

if TYPE_CHECKING:
    import torch

DEFAULT_MODELS = {
    "auto": "facebook/sam-vit-huge",  # spec default SAM variant: original ViT-H
    # text: Grounding DINO + SAM by default (Apache-2.0 weights, open); facebook/sam3 is the
    # stronger concept model but gated under Meta's SAM licence: pass it with --model
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
        return _text_segmenter(model, options, device)
    from deva.segmenters.sam_auto import AutomaticSegmenter, AutoSettings

    sam = loading.load_model(
        model,
        accepted={**loading.SAM_TYPES, **loading.SAM3_TRACKER_TYPES},
        role="--model (SAM)",
        device=device,
        half=options.half,
    )
    settings = AutoSettings(
        points_per_side=options.points_per_side,
        points_per_batch=options.points_per_batch,
        pred_iou_threshold=options.pred_iou_threshold,
        suppress_small=options.suppress_small,
    )
    return AutomaticSegmenter(SamPrompter(sam), settings)


def _text_segmenter(model: str, options: ModelOptions, device: torch.device) -> ImageSegmenter:
    """SAM 3 concepts when ``model`` is a SAM 3 model, else Grounded-SAM (detector + SAM)."""
    from deva.models import loading
    from deva.segmenters.grounded import (
        TextDetector,
        TextPromptSegmenter,
        TextSettings,
        parse_prompt,
    )
    from deva.segmenters.sam_prompt import SamPrompter

    names = parse_prompt(options.prompt or "")  # an empty prompt fails before any loading
    loaded = loading.load_model(
        model,
        accepted={**loading.SAM_TYPES, **loading.CONCEPT_TYPES},
        role="--model (SAM or SAM 3)",
        device=device,
        half=options.half,
    )
    defaults = ModelOptions()
    if loaded.model_type in loading.CONCEPT_TYPES:
        from deva.segmenters.concepts import ConceptSegmenter, ConceptSettings

        if options.detector is not None or options.box_threshold != defaults.box_threshold:
            raise DevaError(
                "--detector / --box-threshold are not used with a SAM 3 model (it finds the "
                "phrases itself); use --score-threshold"
            )
        return ConceptSegmenter(loaded, names, ConceptSettings(options.score_threshold))
    if options.score_threshold != defaults.score_threshold:
        raise DevaError(
            f"--score-threshold is only used with a SAM 3 model, not {loaded.model_type}; "
            "use --box-threshold"
        )
    detector = loading.load_model(
        options.detector or DEFAULT_DETECTOR,
        accepted=loading.DETECTOR_TYPES,
        role="--detector",
        device=device,
        half=options.half,
    )
    threshold = options.box_threshold
    return TextPromptSegmenter(
        TextDetector(detector),
        SamPrompter(loaded),
        options.prompt or "",
        TextSettings(box_threshold=threshold, text_threshold=threshold),
    )


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
