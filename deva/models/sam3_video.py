"""SAM 3 video as a baseline (``deva sam3-video``): the model's own detector + tracker
(transformers ``Sam3VideoModel``) end to end on a text prompt, written in deva's output format
so it can be compared with deva's fusion on the same clip and the same metrics.

Frames are streamed into one SAM 3 video session (deva prepares the pixels: the processors need
torchvision). Each phrase of the prompt is one SAM 3 text prompt; category = the phrase's
index. Per frame, objects are the model's (ids + 1), minus the ones it suppresses or removed
during its hot start; overlaps go to the object with the highest mask logit (as SAM 3's own
post-processing). The session is pruned as the SAM-family propagators' are: one frame of
pixels, the tracked outputs the tracker can still read, the latest conditioning frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deva.models.loading import LoadedModel
from deva.models.pixels import normalisation, square_pixels
from deva.propagation.sam_video import memory_bounds, new_session, prune_session
from deva.types import Frame, FrameResult, ObjectInfo

TEXT_LENGTH = 32


class Sam3VideoBaseline:
    """loaded: a ``sam3_video`` model whose processor is its tokenizer; names: the phrases."""

    def __init__(self, loaded: LoadedModel, names: list[str]) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.names = list(names)
        self.category_names = dict(enumerate(self.names))
        self.image_size = int(self.model.config.detector_config.vision_config.image_size)
        self.mean, self.std = normalisation(loaded.model_type)
        self.window, self.max_cond_frames = memory_bounds(self.model.config.tracker_config)
        self._session: Any = None
        self._frame = -1

    def start(self, height: int, width: int) -> None:
        """A new session for a video of this size, with the prompt's phrases."""
        session, device = new_session(self.loaded, height, width), self.loaded.device
        for name in self.names:
            prompt = session.add_prompt(name)
            tokens = self.loaded.processor(
                name, padding="max_length", max_length=TEXT_LENGTH, return_tensors="pt"
            ).to(device)
            session.prompt_input_ids[prompt] = tokens["input_ids"]
            session.prompt_attention_masks[prompt] = tokens["attention_mask"]
        self._session = session
        self._frame = -1

    @torch.inference_mode()
    def step(self, frame: Frame) -> FrameResult:
        """The model's objects on the next frame."""
        height, width = frame.shape
        if self._session is None:
            self.start(height, width)
        session = self._session
        pixels = square_pixels(frame.image, self.image_size, self.mean, self.std)
        self._frame += 1  # explicit: the session numbers frames by count, and is pruned
        output = self.model(
            inference_session=session,
            frame=pixels.to(self.loaded.device, self.loaded.dtype),
            frame_idx=self._frame,
        )
        prune_session(session, self._frame, self.window, self.max_cond_frames)
        hidden = set(output.suppressed_obj_ids or ()) | set(session.hotstart_removed_obj_ids)
        shown = sorted(i for i in output.obj_id_to_mask if i not in hidden)
        ids = np.zeros((height, width), np.int32)
        objects: list[ObjectInfo] = []
        if shown:
            low = torch.cat([output.obj_id_to_mask[i] for i in shown]).float()
            logits = F.interpolate(low[:, None], (height, width), mode="bilinear")[:, 0]
            best, winner = logits.max(dim=0)
            winner = np.where((best > 0).cpu().numpy(), winner.cpu().numpy() + 1, 0)
            for slot, object_id in enumerate(shown, start=1):
                mask = winner == slot
                if not mask.any():
                    continue
                ids[mask] = object_id + 1
                prompt = session.obj_id_to_prompt_id.get(object_id)
                objects.append(
                    ObjectInfo(
                        id=object_id + 1,
                        category_id=None if prompt is None else int(prompt),
                        score=float(output.obj_id_to_score.get(object_id, 0.0)),
                        area=int(mask.sum()),
                        bbox=_bbox(mask),
                    )
                )
        return FrameResult(frame.index, frame.name, ids, tuple(objects))


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))


def run_sam3_video(
    source: str | Path,
    output: str | Path,
    *,
    prompt: str,
    model: str | None = None,
    device: str = "auto",
    video: bool = True,
) -> int:
    """Run SAM 3 video on ``source`` and write masks/, annotations.json (and overlay.mp4) to
    ``output``, as ``deva track`` does. Returns the number of frames written."""
    from deva.device import resolve_device
    from deva.io.frames import open_frames
    from deva.io.writer import ResultWriter
    from deva.models import loading
    from deva.models.builders import DEFAULT_MODELS
    from deva.segmenters.grounded import parse_prompt

    names = parse_prompt(prompt)
    frames = open_frames(source)
    loaded = loading.load_model(
        model or DEFAULT_MODELS["sam3"],
        accepted=loading.SAM3_VIDEO_TYPES,
        role="--model (SAM 3 video)",
        device=resolve_device(device),
    )
    baseline = Sam3VideoBaseline(loaded, names)
    with ResultWriter(
        output, fps=frames.fps, video=video, category_names=baseline.category_names
    ) as writer:
        for frame in frames:
            writer.write(frame, baseline.step(frame))
    return writer.num_frames
