"""Automatic mode: SAM "segment everything" prompted only where nothing is tracked (spec §5.1).

Per frame: a regular point grid, minus the points that fall on tracked objects; each point asks
SAM for 3 candidate masks; candidates pass a predicted-IoU filter and a stability filter, then box
NMS; the survivors are made non-overlapping (small masks win, or with ``suppress_small`` large
masks win and masks that lose too much are dropped). Score = SAM's predicted IoU; no category.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deva.segmenters.mask_ops import (
    box_nms,
    grid_points,
    mask_boxes,
    points_in_unsegmented,
    resolve_overlaps,
    stability_scores,
    suppress_small,
)
from deva.segmenters.sam_prompt import Embedded, SamPrompter
from deva.types import Segmentation, SegmentInfo


@dataclass(frozen=True)
class AutoSettings:
    """Automatic-mask settings (spec Appendix A defaults).

    points_per_side: grid density (64 → 4096 prompts on an empty frame); fewer = faster, misses
        small objects. points_per_batch: prompts per decoder call (memory vs speed).
    pred_iou_threshold: keep candidates whose predicted IoU is above this (0.88).
    stability_threshold: keep candidates whose stability score (IoU of the mask at logit
        thresholds ±``stability_offset``) is at least this (0.95); measured on SAM's low-res
        (256²) logits, before upsampling, so rejected candidates are never upsampled.
    box_nms_threshold: drop a candidate whose box overlaps a better one by more IoU (0.7).
    suppress_small: larger masks win overlaps and a mask must keep ``overlap_threshold`` (0.8)
        of its pixels; default (False): smaller masks win.
    """

    points_per_side: int = 64
    points_per_batch: int = 64
    pred_iou_threshold: float = 0.88
    stability_threshold: float = 0.95
    stability_offset: float = 1.0
    box_nms_threshold: float = 0.7
    suppress_small: bool = False
    overlap_threshold: float = 0.8


class AutomaticSegmenter:
    """SAM automatic masks behind the ``ImageSegmenter`` protocol.

    ``last_num_points`` is the number of points prompted on the latest frame (after dropping the
    ones on tracked objects), for benchmarks and logs.
    """

    def __init__(self, prompter: SamPrompter, settings: AutoSettings | None = None) -> None:
        self.prompter = prompter
        self.settings = settings or AutoSettings()
        self.category_names: dict[int, str] = {}  # no categories in this mode
        self.last_num_points = 0

    def segment(
        self, image: np.ndarray, *, frame_index: int, unsegmented: np.ndarray | None = None
    ) -> Segmentation:
        height, width = image.shape[:2]
        grid = grid_points(self.settings.points_per_side, height, width)
        points = points_in_unsegmented(grid, unsegmented)
        self.last_num_points = len(points)
        if len(points) == 0:
            return Segmentation.empty(height, width)
        embedded = self.prompter.embed(image)
        masks, scores = self._candidates(embedded, points)
        if len(masks) == 0:
            return Segmentation.empty(height, width)
        kept = box_nms(mask_boxes(masks), scores, self.settings.box_nms_threshold)
        masks, scores = masks[kept], scores[kept]
        if self.settings.suppress_small:
            ids, order = suppress_small(masks, self.settings.overlap_threshold)
        else:
            ids, order = resolve_overlaps(masks)
        infos = [SegmentInfo(id=k + 1, score=float(scores[i])) for k, i in enumerate(order)]
        return Segmentation(ids=ids, segments=tuple(infos))

    def _candidates(self, embedded: Embedded, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, H, W) bool masks and (K,) predicted IoUs that pass both filters."""
        settings = self.settings
        masks: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        for start in range(0, len(points), settings.points_per_batch):
            batch = points[start : start + settings.points_per_batch]
            prediction = self.prompter.predict(embedded, points=batch, multimask=True)
            logits = prediction.logits.flatten(0, 1)
            iou = prediction.scores.flatten()
            stability = stability_scores(
                self.prompter.valid_region(embedded, logits).cpu().numpy(),
                0.0,
                settings.stability_offset,
            )
            good = (iou.cpu().numpy() > settings.pred_iou_threshold) & (
                stability >= settings.stability_threshold
            )
            if not good.any():
                continue
            chosen = torch.from_numpy(np.flatnonzero(good)).to(logits.device)
            with torch.inference_mode():
                hard = self.prompter.upsample(embedded, logits[chosen]).cpu().numpy() > 0.0
            nonempty = hard.reshape(len(hard), -1).any(axis=1)
            masks.append(hard[nonempty])
            scores.append(iou.cpu().numpy()[good][nonempty])
        if not masks:
            return np.zeros((0, *embedded.original), bool), np.zeros(0, np.float32)
        return np.concatenate(masks), np.concatenate(scores)
