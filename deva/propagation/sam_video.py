"""SAM-family video models (transformers ``Sam2VideoModel``, ``EdgeTamVideoModel``,
``Sam3TrackerVideoModel``) behind the ``Propagator`` protocol, with one running session.

Frames are streamed into one inference session for as long as any object is tracked, so the
model reads its own memory bank (its latest frames, object pointers and conditioning frames).
``memorize`` adds the merged masks as mask prompts on the current frame: each listed object gets
a new conditioning frame there, objects not listed leave the session, new ids join it. The
session stays bounded on any video length: only the current frame's pixels are kept, tracked
outputs older than the model can read (``num_maskmem`` / ``max_object_pointers_in_encoder``
frames) are dropped, and each object keeps its latest ``max_cond_frame_num`` conditioning
frames (``num_maskmem`` where the model would read them all). ``align`` runs on a throw-away
session. Per-object mask logits become probabilities by DEVA's soft aggregation (spec §1.7).

Frames are fed without the transformers processors (they need torchvision): see
``deva.models.pixels``.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deva.models.loading import LoadedModel
from deva.models.pixels import normalisation, square_pixels
from deva.propagation.base import check_image
from deva.propagation.network.aggregate import masks_to_probabilities


class SamVideoPropagator:
    """Args: loaded: a SAM-family video model from ``load_model`` (see ``VIDEO_FAMILIES``)."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.model = loaded.model
        config = self.model.config
        self.image_size = int(config.image_size)
        self.mean, self.std = normalisation(loaded.model_type)
        self.window, self.max_cond_frames = memory_bounds(config)
        self.reset()

    @property
    def object_ids(self) -> list[int]:
        return list(self._ids)

    def reset(self) -> None:
        self._session: Any = None
        self._ids: list[int] = []
        self._frame = -1  # index of the session's current frame
        self._current: np.ndarray | None = None  # that frame's image

    @torch.inference_mode()
    def propagate(self, image: np.ndarray) -> np.ndarray:
        check_image(image)
        if not self._ids:
            self._current = None
            return np.ones((1, *image.shape[:2]), np.float32)
        self._frame += 1
        output = self.model(
            inference_session=self._session, frame=self._pixels(image), frame_idx=self._frame
        )
        self._current = image.copy()
        self._prune()
        return self._probabilities(output.pred_masks, self._session, self._ids, image.shape[:2])

    @torch.inference_mode()
    def memorize(self, image: np.ndarray, masks: np.ndarray, object_ids: Sequence[int]) -> None:
        check_image(image)
        ids = [int(i) for i in object_ids]
        if not ids:
            self.reset()
            return
        if self._session is None:
            self._session = self._new_session(image)
            self._frame = -1
        else:
            remove_objects(self._session, set(self._session.obj_ids) - set(ids))
        if self._current is None or not np.array_equal(image, self._current):
            self._frame += 1
            self._session.add_new_frame(self._pixels(image), self._frame)
            self._current = image.copy()
        self._condition(self._session, self._frame, masks, ids)
        self._ids = ids
        self._prune()

    @torch.inference_mode()
    def align(
        self, src_image: np.ndarray, src_masks: np.ndarray, dst_image: np.ndarray
    ) -> np.ndarray:
        check_image(src_image)
        check_image(dst_image)
        if len(src_masks) == 0:
            return np.ones((1, *dst_image.shape[:2]), np.float32)
        ids = list(range(1, len(src_masks) + 1))
        session = self._new_session(src_image)
        session.add_new_frame(self._pixels(src_image), 0)
        self._condition(session, 0, src_masks, ids)
        output = self.model(inference_session=session, frame=self._pixels(dst_image), frame_idx=1)
        return self._probabilities(output.pred_masks, session, ids, dst_image.shape[:2])

    def forget(self, object_ids: Sequence[int]) -> None:
        gone = {int(i) for i in object_ids} & set(self._ids)
        if not gone:
            return
        self._ids = [i for i in self._ids if i not in gone]
        if not self._ids:
            self.reset()
            return
        remove_objects(self._session, gone)

    def _new_session(self, image: np.ndarray) -> Any:
        return new_session(self.loaded, *image.shape[:2])

    def _condition(self, session: Any, frame: int, masks: np.ndarray, ids: list[int]) -> None:
        """Make ``frame`` a conditioning frame of every object in ``ids`` with its mask (hard at
        0.5), replacing what the session tracked there, and encode it into memory."""
        size = (self.image_size, self.image_size)
        for object_id, mask in zip(ids, masks, strict=True):
            small = F.interpolate(
                torch.from_numpy(np.asarray(mask, np.float32))[None, None],
                size,
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
            slot = session.obj_id_to_idx(object_id)
            session.frames_tracked_per_obj[slot].pop(frame, None)
            session.output_dict_per_obj[slot]["non_cond_frame_outputs"].pop(frame, None)
            session.add_mask_inputs(slot, frame, (small >= 0.5).float())
        session.obj_with_new_inputs = list(ids)
        self.model(inference_session=session, frame_idx=frame)
        for slot in range(session.get_obj_num()):
            session.remove_mask_inputs(slot, frame)  # consumed: its output is in memory now

    def _pixels(self, image: np.ndarray) -> torch.Tensor:
        """(3, S, S) normalised model input."""
        pixels = square_pixels(image, self.image_size, self.mean, self.std)
        return pixels.to(self.loaded.device, self.loaded.dtype)

    @staticmethod
    def _probabilities(
        logits: torch.Tensor, session: Any, ids: list[int], shape: tuple[int, ...]
    ) -> np.ndarray:
        """(N, 1, h, w) logits in session order -> (1 + K, H, W) aggregated probabilities of
        ``ids``, in that order."""
        slots = [session.obj_id_to_idx(i) for i in ids]
        full = F.interpolate(
            logits[slots].float(), tuple(shape), mode="bilinear", align_corners=False
        )
        probs = masks_to_probabilities(torch.sigmoid(full[:, 0])[None], dim=1)[0]
        return probs.cpu().numpy().astype(np.float32)

    def _prune(self) -> None:
        prune_session(self._session, self._frame, self.window, self.max_cond_frames)


def remove_objects(session: Any, gone: set[int]) -> None:
    """Remove the objects ``gone`` from a transformers SAM-family video session and renumber
    the rest (the session numbers its objects 0..N-1 and has no removal of its own)."""
    keep = [i for i in session.obj_ids if i not in gone]
    if len(keep) == len(session.obj_ids):
        return
    old = [session._obj_id_to_idx[i] for i in keep]
    for name in (
        "point_inputs_per_obj",
        "mask_inputs_per_obj",
        "output_dict_per_obj",
        "frames_tracked_per_obj",
    ):
        table = getattr(session, name)
        setattr(session, name, {new: table[slot] for new, slot in enumerate(old)})
    session._obj_id_to_idx = OrderedDict((i, new) for new, i in enumerate(keep))
    session._obj_idx_to_id = OrderedDict(enumerate(keep))
    session.obj_ids = list(keep)
    session.obj_with_new_inputs = [i for i in session.obj_with_new_inputs if i not in gone]


def memory_bounds(config: Any) -> tuple[int, int]:
    """(frames of tracked outputs the model reads, conditioning frames kept per object) of a
    SAM-family video config; a model that reads every conditioning frame keeps num_maskmem."""
    window = max(int(config.num_maskmem), int(config.max_object_pointers_in_encoder))
    most = int(config.max_cond_frame_num)
    return window, most if most > 0 else max(1, int(config.num_maskmem))


def prune_session(session: Any, frame: int, window: int, max_cond_frames: int) -> None:
    """Keep a SAM-family video session bounded at ``frame``: drop what the model can no longer
    read (other frames' pixels, tracked outputs older than ``window`` frames, all but the latest
    ``max_cond_frames`` conditioning frames of each object)."""
    for old in [i for i in session.processed_frames if i != frame]:
        del session.processed_frames[old]
    keep_from = frame - window
    for slot, outputs in session.output_dict_per_obj.items():
        tracked = outputs["non_cond_frame_outputs"]
        for old in [i for i in tracked if i < keep_from]:
            del tracked[old]
        conditioning = outputs["cond_frame_outputs"]
        for old in sorted(conditioning)[:-max_cond_frames]:
            del conditioning[old]
        seen = session.frames_tracked_per_obj.get(slot, {})
        for old in [i for i in seen if i < keep_from]:
            del seen[old]


def new_session(loaded: LoadedModel, height: int, width: int) -> Any:
    """An empty streaming session of a transformers SAM-family video model (its own
    ``<Name>InferenceSession`` class), everything on the model's device."""
    model_class = type(loaded.model)
    module = importlib.import_module(model_class.__module__)
    session_class = getattr(module, model_class.__name__.replace("Model", "InferenceSession"))
    device = loaded.device
    return session_class(
        video_height=height,
        video_width=width,
        inference_device=device,
        inference_state_device=device,
        video_storage_device=device,
        dtype=loaded.dtype,
    )
