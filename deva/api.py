"""The one-call Python API: ``deva.track(video)`` as a notebook would use it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from deva.config import TrackerConfig
from deva.errors import DevaError
from deva.io.frames import FrameSource, open_frames
from deva.io.init_masks import InitMasks
from deva.propagation.base import Propagator
from deva.segmenters.base import ImageSegmenter
from deva.tracker import GivenMasks, Tracker
from deva.types import Frame, FrameResult

Source = str | Path | Iterable[np.ndarray]


def make_segmenter(
    name: str,
    *,
    source: FrameSource,
    detections: str | Path | None = None,
    allow_missing: bool = False,
) -> ImageSegmenter:
    """A segmenter by name; ``precomputed`` needs ``detections`` (a folder)."""
    factories: dict[str, Callable[[], ImageSegmenter]] = {
        "motion": _motion,
        "precomputed": lambda: _precomputed(detections, source, allow_missing),
    }
    if name not in factories:
        raise DevaError(f"unknown segmenter {name!r}; available: {', '.join(factories)}")
    return factories[name]()


def make_propagator(
    name: str, *, checkpoint: str | Path | None = None, device: str = "auto"
) -> Propagator:
    """A propagator by name: ``flow`` (optical flow, no weights) or ``network`` (the DEVA
    propagation network; needs ``checkpoint``, a file such as DEVA-propagation.pth or a
    Hugging Face hub id)."""
    factories: dict[str, Callable[[], Propagator]] = {
        "flow": _flow,
        "network": lambda: _network(checkpoint, device),
    }
    if name not in factories:
        raise DevaError(f"unknown propagator {name!r}; available: {', '.join(factories)}")
    if checkpoint is not None and name != "network":
        raise DevaError(f"--checkpoint is only used by the network propagator, not {name}")
    return factories[name]()


def choose_segmenter(
    segmenter: str | ImageSegmenter | None,
    *,
    source: FrameSource,
    detections: str | Path | None = None,
    init_masks: bool = False,
    allow_missing: bool = False,
) -> ImageSegmenter | None:
    """The image segmenter of a run. ``None`` chooses: ``precomputed`` with detections, no
    segmenter at all for semi-supervised VOS (given masks only), else ``motion``."""
    if segmenter is not None and not isinstance(segmenter, str):
        return segmenter
    if segmenter is None:
        if detections is None and init_masks:
            return None
        segmenter = "precomputed" if detections is not None else "motion"
    if detections is not None and segmenter != "precomputed":
        raise DevaError(f"--detections is only used by the precomputed segmenter, not {segmenter}")
    return make_segmenter(
        segmenter, source=source, detections=detections, allow_missing=allow_missing
    )


SEGMENTER_NAMES = ("motion", "precomputed")
PROPAGATOR_NAMES = ("flow", "network")


def track(
    source: Source | FrameSource,
    *,
    segmenter: str | ImageSegmenter | None = None,
    propagator: str | Propagator = "flow",
    detections: str | Path | None = None,
    init_masks: str | Path | None = None,
    config: TrackerConfig | None = None,
) -> Iterator[FrameResult]:
    """Track every object in a video; yields one FrameResult per frame as it is processed.

    source: a video file, a folder of frames, a glob, or an iterable of (H, W, 3) RGB arrays.
    segmenter / propagator: a name (see SEGMENTER_NAMES / PROPAGATOR_NAMES) or your own object
        following the ImageSegmenter / Propagator protocol; segmenter None = choose (see
        ``choose_segmenter``).
    detections: the folder of precomputed detections (implies ``segmenter="precomputed"``).
    init_masks: semi-supervised VOS: a folder of palette PNGs named like the frames; with it
        and no segmenter named, only the given objects are propagated.
    """
    frames = source if isinstance(source, FrameSource) else open_frames(source)
    segmenter = choose_segmenter(
        segmenter, source=frames, detections=detections, init_masks=init_masks is not None
    )
    if isinstance(propagator, str):
        propagator = make_propagator(propagator)
    given = InitMasks(init_masks, frame_name=frames.name) if init_masks is not None else None
    return Tracker(segmenter, propagator, config).run(frames, given_masks=given)


def track_to_folder(
    tracker: Tracker,
    frames: FrameSource,
    output: str | Path,
    *,
    video: bool = True,
    on_result: Callable[[FrameResult], None] | None = None,
    given_masks: GivenMasks | None = None,
) -> int:
    """Track ``frames`` and write masks/, annotations.json and overlay.mp4 to ``output``.

    Frames are held only until their result comes out (semi-online results lag a clip), so
    memory stays bounded. ``on_result`` is called after each frame is written (progress bars).
    Returns the number of frames written.
    """
    from deva.io.writer import ResultWriter

    pending: dict[int, Frame] = {}

    def remembered() -> Iterator[Frame]:
        for frame in frames:
            pending[frame.index] = frame
            yield frame

    with ResultWriter(output, fps=frames.fps, video=video) as writer:
        for result in tracker.run(remembered(), given_masks=given_masks):
            writer.write(pending.pop(result.frame_index), result)
            if on_result is not None:
                on_result(result)
    return writer.num_frames


def _motion() -> ImageSegmenter:
    from deva.segmenters.motion import MotionSegmenter

    return MotionSegmenter()


def _precomputed(
    detections: str | Path | None, source: FrameSource, allow_missing: bool
) -> ImageSegmenter:
    from deva.segmenters.precomputed import PrecomputedSegmenter

    if detections is None:
        raise DevaError("the precomputed segmenter needs --detections DIR")
    return PrecomputedSegmenter(detections, frame_name=source.name, allow_missing=allow_missing)


def _network(checkpoint: str | Path | None, device: str) -> Propagator:
    if checkpoint is None:
        raise DevaError(
            "the network propagator needs --checkpoint: the official DEVA-propagation.pth "
            "(or a Hugging Face hub id, or a checkpoint from deva train)"
        )
    from deva.device import resolve_device
    from deva.propagation.network.checkpoint import build_network
    from deva.propagation.network.propagator import NetworkPropagator

    torch_device = resolve_device(device)
    return NetworkPropagator(build_network(checkpoint, torch_device), device=torch_device)


def _flow() -> Propagator:
    from deva.propagation.flow import FlowPropagator

    return FlowPropagator()
