"""SAM 2 (transformers ``Sam2VideoModel``) behind the ``Propagator`` protocol.

Frames are streamed into a SAM 2 inference session. ``memorize`` starts a fresh session whose
first frame is conditioned on the given hard masks (one SAM 2 object per deva object), so the
SAM 2 memory bank holds the latest merged frame plus the frames propagated since (DEVA merges
every few frames, so this stays short). ``align`` runs the same on a throw-away session.
Per-object mask logits become probabilities by DEVA's soft aggregation (spec §1.7).

Frames are fed without the transformers processors (they need torchvision): see
``sam_prompt.sam2_pixels``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deva.propagation.base import check_image
from deva.propagation.network.aggregate import masks_to_probabilities
from deva.segmenters.hf import LoadedModel
from deva.segmenters.sam_prompt import sam2_pixels


class Sam2Propagator:
    """Args: loaded: a ``sam2_video`` model from ``hf.load_model`` (no processor needed)."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.image_size = int(self.model.config.image_size)
        self.reset()

    @property
    def object_ids(self) -> list[int]:
        return [i for i in self._ids if i not in self._hidden]

    def reset(self) -> None:
        self._session: Any = None
        self._ids: list[int] = []
        self._hidden: set[int] = set()  # forgotten since the last memorize: computed, not output

    @torch.inference_mode()
    def propagate(self, image: np.ndarray) -> np.ndarray:
        check_image(image)
        if not self.object_ids:
            return np.ones((1, *image.shape[:2]), np.float32)
        output = self.model(inference_session=self._session, frame=self._pixels(image))
        self._prune(output.frame_idx)
        return self._probabilities(output.pred_masks, self._ids, image.shape[:2])

    @torch.inference_mode()
    def memorize(self, image: np.ndarray, masks: np.ndarray, object_ids: Sequence[int]) -> None:
        check_image(image)
        self._ids = [int(i) for i in object_ids]
        self._hidden = set()
        self._session = self._conditioned(image, masks, self._ids) if self._ids else None

    @torch.inference_mode()
    def align(
        self, src_image: np.ndarray, src_masks: np.ndarray, dst_image: np.ndarray
    ) -> np.ndarray:
        check_image(src_image)
        check_image(dst_image)
        if len(src_masks) == 0:
            return np.ones((1, *dst_image.shape[:2]), np.float32)
        ids = list(range(1, len(src_masks) + 1))
        session = self._conditioned(src_image, src_masks, ids)
        output = self.model(inference_session=session, frame=self._pixels(dst_image))
        return self._probabilities(output.pred_masks, ids, dst_image.shape[:2])

    def forget(self, object_ids: Sequence[int]) -> None:
        self._hidden |= {int(i) for i in object_ids} & set(self._ids)
        if not self.object_ids:
            self.reset()

    def _conditioned(self, image: np.ndarray, masks: np.ndarray, ids: list[int]) -> Any:
        """A new session whose frame 0 is ``image`` with one mask input per object."""
        from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession

        height, width = image.shape[:2]
        session = Sam2VideoInferenceSession(
            video_height=height,
            video_width=width,
            inference_device=self.loaded.device,
            inference_state_device=self.loaded.device,
            video_storage_device=self.loaded.device,
            dtype=self.loaded.dtype,
        )
        frame = session.add_new_frame(self._pixels(image))
        size = (self.image_size, self.image_size)
        for object_id, mask in zip(ids, masks, strict=True):
            small = F.interpolate(
                torch.from_numpy(np.asarray(mask, np.float32))[None, None],
                size,
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
            session.add_mask_inputs(session.obj_id_to_idx(object_id), frame, (small >= 0.5).float())
        session.obj_with_new_inputs = list(ids)
        self.model(inference_session=session, frame_idx=frame)
        return session

    def _pixels(self, image: np.ndarray) -> torch.Tensor:
        """(3, S, S) normalised model input."""
        return sam2_pixels(image, self.image_size).to(self.loaded.device, self.loaded.dtype)

    def _probabilities(
        self, logits: torch.Tensor, ids: list[int], shape: tuple[int, ...]
    ) -> np.ndarray:
        """(N, 1, h, w) per-object logits -> (1 + K, H, W) aggregated probabilities of the
        objects that are not hidden, in id order."""
        shown = [slot for slot, i in enumerate(ids) if i not in self._hidden]
        if not shown:
            return np.ones((1, *shape), np.float32)
        full = F.interpolate(
            logits[shown].float(), tuple(shape), mode="bilinear", align_corners=False
        )
        probs = masks_to_probabilities(torch.sigmoid(full[:, 0])[None], dim=1)[0]
        return probs.cpu().numpy().astype(np.float32)

    def _prune(self, frame: int) -> None:
        """Keep the session bounded: only the memory frames SAM 2 can still read."""
        session = self._session
        config = self.model.config
        keep_from = frame - max(config.num_maskmem, config.max_object_pointers_in_encoder)
        for old in [i for i in session.processed_frames if i < frame and i != 0]:
            del session.processed_frames[old]
        for outputs in session.output_dict_per_obj.values():
            stale = [i for i in outputs["non_cond_frame_outputs"] if i < keep_from]
            for old in stale:
                del outputs["non_cond_frame_outputs"][old]
        for tracked in session.frames_tracked_per_obj.values():
            for old in [i for i in tracked if i < keep_from]:
                del tracked[old]
