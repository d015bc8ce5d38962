"""Unsupervised DAVIS-2016 from per-frame saliency (spec §4.2): the salient object's soft maps
(e.g. from DIS) of 10 sampled frames are voted by associated consensus (spec §3.8, no scores:
the keyframe is the frame with most confident pixels) and propagated through the whole video.

Input:  ``IMAGES/<video>/<frame>.jpg``; saliency ``MASKS/<video>/<frame>.png`` (0..255).
Output: ``OUT/<video>/<frame>.png``, 8-bit 0/255 (255 = salient object).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deva.io.atomic import ensure_writable_dir
from deva.propagation.base import Propagator
from deva.tasks.dataset import Progress, open_video, video_folders
from deva.tasks.outputs import write_binary
from deva.tasks.referring import read_soft_mask, track_associated

__all__ = ["SALIENCY_FRAMES", "run_davis16_saliency"]

SALIENCY_FRAMES = 10


def run_davis16_saliency(
    images: str | Path,
    masks: str | Path,
    output: str | Path,
    *,
    propagator: Propagator,
    num_samples: int = SALIENCY_FRAMES,
    size: int = 480,
    progress: Progress | None = None,
) -> int:
    """Every video folder of ``masks``; returns the number of frames written."""
    images, masks_root, output = Path(images), Path(masks), ensure_writable_dir(output)
    videos = [open_video(images, name) for name in video_folders(masks_root, depth=1)]
    total, done = sum(v.frames.num_frames or 0 for v in videos), 0
    for video in videos:
        folder = ensure_writable_dir(output / video.name)
        source = masks_root / video.name
        name = video.frames.name
        for index, probs in track_associated(
            video,
            lambda i, source=source, name=name: read_soft_mask(source / f"{name(i)}.png")[None],
            propagator,
            num_samples=num_samples,
            size=size,
        ):
            write_binary(folder / f"{name(index)}.png", np.argmax(probs, axis=0) == 1)
            done += 1
            if progress is not None:
                progress(video.name, done, total)
    return done
