"""Quick probe of one appearance-propagator setting: mean IoU over the first N frames of a clip.

The design choices quoted in the README and in deva/propagation/*.py ("30 frames" figures: the
feature layers, the flow partner, stride 16 vs 8) were measured with this, for example

    python -m bench.appearance_probe '{"flow_weight": 0.5}' breakdance 30
    python -m bench.appearance_probe '{"taps": [6, 13, 16]}' bmx-trees 30

Settings are ``AppearancePropagator`` keyword arguments plus ``taps`` and ``output_stride`` of
the ``FeatureExtractor``. Propagation only from the first frame's true mask, one thread.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from bench.tracking import frames_of, ground_truth
from deva.propagation.appearance import AppearancePropagator
from deva.propagation.features import FeatureExtractor


def probe(settings: dict, sequence: str, frames: int) -> float:
    """Mean IoU of the propagated first-frame mask over frames 1..frames-1."""
    settings = dict(settings)
    extractor = FeatureExtractor(
        short_side=int(settings.get("feature_size", 480)),
        taps=tuple(settings.pop("taps", (6, 13))),
        output_stride=int(settings.pop("output_stride", 16)),
        precision=str(settings.pop("precision", "auto")),
    )
    propagator = AppearancePropagator(**settings, extractor=extractor)
    truth = ground_truth(sequence) > 0
    ious = []
    for frame in frames_of(sequence):
        if frame.index >= frames:
            break
        if frame.index == 0:
            propagator.memorize(frame.image, truth[0][None], [1])
            continue
        mask = propagator.propagate(frame.image).argmax(axis=0) == 1
        union = (mask | truth[frame.index]).sum()
        ious.append((mask & truth[frame.index]).sum() / max(union, 1))
    return float(np.mean(ious))


if __name__ == "__main__":
    torch.set_num_threads(1)
    settings, sequence, frames = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    print(f"{sequence} {settings}: mean IoU {probe(settings, sequence, frames):.3f}")
