"""The demo clip (`deva demo`'s rendered shapes, 60 frames, motion segmenter, default settings):
J&F of each weight-free propagator against the clip's true masks.

    python -m bench.demo_quality

The README quotes it: the appearance propagator trails there (noise textures, rigid motion)
where optical flow follows exactly.
"""

from __future__ import annotations

import numpy as np

from deva.api import make_propagator
from deva.config import TrackerConfig
from deva.demo import render_demo
from deva.eval.davis import evaluate_sequence
from deva.io.frames import open_frames
from deva.segmenters.motion import MotionSegmenter
from deva.tracker import Tracker


def demo_jf(propagator: str) -> float:
    clip = render_demo()
    tracker = Tracker(MotionSegmenter(), make_propagator(propagator), TrackerConfig())
    pred = np.stack([r.ids for r in tracker.run(open_frames(list(clip.frames)))])
    return evaluate_sequence(pred, clip.masks, match="hungarian", name="demo").jf_mean


if __name__ == "__main__":
    for name in ("flow", "appearance"):
        print(f"{name}: J&F {demo_jf(name):.3f}")
