"""Panoptic mode: Mask2Former / OneFormer / EoMT universal segmentation from transformers,
turned into a ``Segmentation`` with category ids, scores and thing/stuff flags.

``is_thing`` comes, in order, from: the processor's metadata ``thing_ids`` (OneFormer), a
``thing_ids`` list in the model config, or the COCO-panoptic layout (133 labels: the first 80
are things). Otherwise it is None (one fusion group for all segments).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from deva.models.loading import LoadedModel
from deva.types import Segmentation, SegmentInfo

COCO_PANOPTIC_LABELS = 133
COCO_PANOPTIC_THINGS = 80


@dataclass(frozen=True)
class PanopticSettings:
    """threshold: minimum class score of a query's segment; mask_threshold: per-pixel mask
    probability; overlap_threshold: a segment must keep this fraction of its mask after overlaps
    (transformers' post_process_panoptic_segmentation knobs and defaults; EoMT uses 0.8)."""

    threshold: float = 0.5
    mask_threshold: float = 0.5
    overlap_threshold: float = 0.8


class PanopticSegmenter:
    """Universal-segmentation models behind the ``ImageSegmenter`` protocol."""

    def __init__(self, loaded: LoadedModel, settings: PanopticSettings | None = None) -> None:
        self.loaded = loaded
        self.settings = settings or PanopticSettings()
        id2label = getattr(loaded.model.config, "id2label", None) or {}
        self.category_names = {int(k): str(v) for k, v in id2label.items()}
        self.thing_ids = thing_ids(loaded)

    @torch.inference_mode()
    def segment(
        self, image: np.ndarray, *, frame_index: int, unsegmented: np.ndarray | None = None
    ) -> Segmentation:
        loaded, settings = self.loaded, self.settings
        height, width = image.shape[:2]
        extra = {"task_inputs": ["panoptic"]} if loaded.model_type == "oneformer" else {}
        inputs = loaded.processor(images=image, return_tensors="pt", **extra).to(loaded.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(loaded.dtype)
        outputs = loaded.model(**inputs)
        for name in ("class_queries_logits", "masks_queries_logits"):
            setattr(outputs, name, getattr(outputs, name).float())
        post = getattr(loaded.processor, "image_processor", loaded.processor)
        stuff = set(self.category_names) - self.thing_ids if self.thing_ids else set()
        kwargs: dict = {"label_ids_to_fuse": stuff, "target_sizes": [(height, width)]}
        if loaded.model_type == "eomt":
            kwargs = {"stuff_classes": sorted(stuff), "target_sizes": [(height, width)]}
        if loaded.model_type == "oneformer":
            outputs.masks_queries_logits = frame_sized_logits(
                outputs.masks_queries_logits, height, width
            )
            kwargs["target_sizes"] = None
        result = post.post_process_panoptic_segmentation(
            outputs,
            threshold=settings.threshold,
            mask_threshold=settings.mask_threshold,
            overlap_mask_area_threshold=settings.overlap_threshold,
            **kwargs,
        )[0]
        return self._to_segmentation(result, height, width)

    def _to_segmentation(self, result: dict, height: int, width: int) -> Segmentation:
        segmentation = result.get("segmentation")
        if segmentation is None or not result["segments_info"]:
            return Segmentation.empty(height, width)
        raw = segmentation.cpu().numpy().astype(np.int64)
        present = set(np.unique(raw).tolist())
        ids = np.zeros((height, width), np.int32)
        infos: list[SegmentInfo] = []
        for info in result["segments_info"]:
            if info["id"] not in present:  # EoMT numbers segments from 0 (background -1)
                continue
            present.discard(info["id"])  # fused stuff may list one segment id twice
            new_id = len(infos) + 1
            ids[raw == info["id"]] = new_id
            label = int(info["label_id"])
            infos.append(
                SegmentInfo(
                    id=new_id,
                    category_id=label,
                    score=float(info.get("score", 1.0)),
                    is_thing=(label in self.thing_ids) if self.thing_ids else None,
                )
            )
        return Segmentation(ids=ids, segments=tuple(infos))


def thing_ids(loaded: LoadedModel) -> set[int]:
    """Label ids that are things (see module docstring); empty = unknown."""
    metadata = getattr(getattr(loaded.processor, "image_processor", None), "metadata", None)
    if isinstance(metadata, dict) and metadata.get("thing_ids"):
        return {int(i) for i in metadata["thing_ids"]}
    config = loaded.model.config
    if getattr(config, "thing_ids", None):
        return {int(i) for i in config.thing_ids}
    if len(getattr(config, "id2label", None) or {}) == COCO_PANOPTIC_LABELS:
        return set(range(COCO_PANOPTIC_THINGS))
    return set()


def frame_sized_logits(logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """OneFormer's PIL post-processing resizes the mask probabilities with torchvision (bilinear,
    antialiased) when given target sizes; without torchvision deva does that resize itself and
    hands back the logits of the resized probabilities, so the post-processing's own sigmoid
    yields the same probabilities (resizing logits instead would move the 0.5 contour)."""
    probs = F.interpolate(
        logits.sigmoid(), (height, width), mode="bilinear", align_corners=False, antialias=True
    )
    return torch.logit(probs, eps=1e-7)
